"""Training: record runs in MLflow the same way for every path (AutoML, continuous training,
the demo). Re-exports only; see :mod:`raymlops.training.tracking` and
:mod:`raymlops.training.plots`.
"""

from __future__ import annotations

from raymlops.training.plots import (
    confusion_matrix_figure,
    feature_importance_figure,
    residual_figure,
    roc_pr_figures,
)
from raymlops.training.tracking import (
    Task,
    TrackedRun,
    ensure_experiment,
    log_training_run,
    tracking_client,
)

__all__ = [
    "Task",
    "TrackedRun",
    "confusion_matrix_figure",
    "ensure_experiment",
    "feature_importance_figure",
    "log_training_run",
    "residual_figure",
    "roc_pr_figures",
    "tracking_client",
]
