"""Training: AutoML on Ray Tune, training specs for any labelled table, continuous training,
and one way to record runs in MLflow for every path. Re-exports only.

The re-exports load on first use (PEP 562): a Tune trial worker imports
``raymlops.training.automl`` to run its trial and needs neither MLflow nor matplotlib, which
the eager imports cost it (~1.4 s of its start on 2 cores).
"""

from __future__ import annotations

from raymlops._lazy import lazy_getattr

_EXPORTS = {
    "SearchConfig": "raymlops.training.automl",
    "SearchResult": "raymlops.training.automl",
    "run_search": "raymlops.training.automl",
    "TrainingSpec": "raymlops.training.spec",
    "load_spec": "raymlops.training.spec",
    "parse_spec": "raymlops.training.spec",
    "plan": "raymlops.training.workflow",
    "run_pending": "raymlops.training.workflow",
    "train": "raymlops.training.workflow",
    "CTPolicy": "raymlops.training.ct",
    "ContinuousTrainer": "raymlops.training.ct",
    "confusion_matrix_figure": "raymlops.training.plots",
    "feature_importance_figure": "raymlops.training.plots",
    "residual_figure": "raymlops.training.plots",
    "roc_pr_figures": "raymlops.training.plots",
    "EvaluationCancelled": "raymlops.training.tracking",
    "Scored": "raymlops.training.tracking",
    "Task": "raymlops.training.tracking",
    "TrackedRun": "raymlops.training.tracking",
    "ensure_experiment": "raymlops.training.tracking",
    "evaluation_files": "raymlops.training.tracking",
    "log_evaluation": "raymlops.training.tracking",
    "log_files": "raymlops.training.tracking",
    "log_training_run": "raymlops.training.tracking",
    "tracking_client": "raymlops.training.tracking",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
