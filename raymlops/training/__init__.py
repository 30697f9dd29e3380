"""Training: record runs in MLflow the same way for every path (AutoML, continuous training,
the demo). Re-exports only; see :mod:`raymlops.training.tracking` and
:mod:`raymlops.training.plots`.

The re-exports load on first use (PEP 562): a Tune trial worker imports
``raymlops.training.automl`` to run its trial and needs neither MLflow nor matplotlib, which
the eager imports cost it (~1.4 s of its start on 2 cores).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "confusion_matrix_figure": "plots",
    "feature_importance_figure": "plots",
    "residual_figure": "plots",
    "roc_pr_figures": "plots",
    "Task": "tracking",
    "TrackedRun": "tracking",
    "ensure_experiment": "tracking",
    "log_training_run": "tracking",
    "tracking_client": "tracking",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
