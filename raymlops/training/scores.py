"""Validation scores of a classifier, computed the same way wherever a model is judged.

A search trial scores its model in its Tune worker after every step, and the tracking helper
scores a model it is handed; both come here, so a trial's MLflow run shows exactly the numbers
the searcher saw. This module imports only numpy and scikit-learn's metrics: a trial worker
must not pay for importing MLflow (seconds per worker).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

__all__ = ["as_array", "classification_metrics", "probabilities", "scores_from_probabilities"]


def as_array(values: Any) -> np.ndarray:
    """numpy from whatever a wrapper returns (lists, pandas, torch tensors on any device)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def probabilities(model: Any, X: Any) -> np.ndarray:
    """predict_proba as float64 rows summing to 1 (float32 outputs miss 1 by ~1e-7)."""
    proba = as_array(model.predict_proba(X)).astype(float)
    if proba.ndim == 1:  # a wrapper returning P(positive) only
        proba = np.column_stack([1.0 - proba, proba])
    sums = proba.sum(axis=1, keepdims=True)
    return proba / sums if np.allclose(sums, 1.0, atol=1e-4) else proba


def classification_metrics(y: np.ndarray, y_pred: np.ndarray, proba: np.ndarray,
                           classes: np.ndarray) -> dict[str, float]:
    """log_loss, accuracy, roc_auc, pr_auc, f1, brier (one-vs-rest macro for 3+ classes)."""
    onehot = (y[:, None] == classes[None, :]).astype(int)
    out = {"log_loss": skm.log_loss(y, proba, labels=classes),
           "accuracy": skm.accuracy_score(y, y_pred)}
    if len(classes) == 2:
        truth, score = onehot[:, 1], proba[:, 1]
        out |= {"roc_auc": skm.roc_auc_score(truth, score),
                "pr_auc": skm.average_precision_score(truth, score),
                "f1": skm.f1_score(y, y_pred, pos_label=classes[1]),
                "brier": skm.brier_score_loss(truth, score)}
    else:  # one-vs-rest macro averages over the classes present in y (others are undefined)
        present = [k for k in range(len(classes)) if 0 < onehot[:, k].sum() < len(y)]
        out |= {"roc_auc": np.mean([skm.roc_auc_score(onehot[:, k], proba[:, k]) for k in present]),
                "pr_auc": np.mean([skm.average_precision_score(onehot[:, k], proba[:, k])
                                   for k in present]),
                "f1": skm.f1_score(y, y_pred, labels=classes, average="macro"),
                "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))}
    return {k: float(v) for k, v in out.items()}


def scores_from_probabilities(y: np.ndarray, proba: np.ndarray, classes: np.ndarray
                              ) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, predicted labels) from one ``predict_proba`` pass.

    The labels are the most probable class, which is what scikit-learn classifiers'
    ``predict`` returns, so a trial needs one pass over the validation rows instead of two.
    """
    y_pred = np.asarray(classes)[np.argmax(proba, axis=1)]
    return classification_metrics(np.asarray(y), y_pred, proba, np.asarray(classes)), y_pred
