"""Concept drift: model performance per time window, once labels arrive, against a baseline.

Data drift says the inputs moved; concept drift says the relation between inputs and label
moved, which only shows in performance on labelled data (for flights: the actual delays,
known after departure). Windows are calendar periods (monthly by default); a window drifts
when its metric falls below the training baseline by more than a tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from raymlops.exceptions import ValidationError

__all__ = ["concept_drift", "performance_by_window"]

_METRICS = {
    "roc_auc": (roc_auc_score, True),  # (function, higher is better)
    "pr_auc": (average_precision_score, True),
    "brier": (brier_score_loss, False),
}


def performance_by_window(
    df: pd.DataFrame, *, timestamp: str, label: str, score: str, freq: str = "MS",
) -> pd.DataFrame:
    """One row per window: rows, positive rate, ROC AUC, PR AUC, Brier (NaN if one class)."""
    for column in (timestamp, label, score):
        if column not in df.columns:
            raise ValidationError(f"column {column!r} is missing", field=column)
    data = df[[timestamp, label, score]].dropna()
    if data.empty:
        raise ValidationError("no labelled rows to evaluate", field=label)
    times = data[timestamp]
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    rows = []
    for start, window in data.groupby(times.dt.to_period(freq[0] if freq in ("MS", "M") else freq)):
        y, s = window[label].astype(int).to_numpy(), window[score].to_numpy(dtype=float)
        two_classes = len(np.unique(y)) == 2
        rows.append({
            "window": str(start),
            "rows": len(window),
            "positive_rate": float(y.mean()),
            "roc_auc": float(roc_auc_score(y, s)) if two_classes else float("nan"),
            "pr_auc": float(average_precision_score(y, s)) if two_classes else float("nan"),
            "brier": float(brier_score_loss(y, s)),
        })
    return pd.DataFrame(rows)


def concept_drift(
    windows: pd.DataFrame, baseline: float, metric: str = "roc_auc", tolerance: float = 0.02,
) -> dict[str, Any]:
    """Which windows fell below ``baseline`` by more than ``tolerance`` on ``metric``."""
    if metric not in _METRICS:
        raise ValidationError(f"unknown metric {metric!r}; use one of {sorted(_METRICS)}", field="metric")
    _, higher_better = _METRICS[metric]
    out = []
    for row in windows.to_dict("records"):
        value = row[metric]
        drop = (baseline - value) if higher_better else (value - baseline)
        drifted = bool(np.isfinite(value) and drop > tolerance)
        out.append({**row, "baseline": baseline, "drop": float(drop), "drift": drifted})
    return {
        "metric": metric,
        "baseline": baseline,
        "tolerance": tolerance,
        "windows": out,
        "drifted_windows": [w["window"] for w in out if w["drift"]],
    }
