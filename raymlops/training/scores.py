"""Validation scores of a classifier, as the tracking helper and older callers ask for them.

The metric code itself lives in :mod:`raymlops.training.objectives` (one table of metrics,
their directions and tasks); these are the classification entry points kept for callers that
predate tasks, which infer binary or multiclass from the number of classes. Like objectives,
this module imports only numpy and scikit-learn's metrics (trial workers import it).
"""

from __future__ import annotations

import numpy as np

from raymlops.training.objectives import Task, as_array, probabilities, task_scores

__all__ = ["as_array", "classification_metrics", "classification_task", "probabilities",
           "scores_from_probabilities"]


def classification_task(classes: np.ndarray) -> Task:
    """binary for two classes, multiclass otherwise."""
    return "binary" if len(classes) == 2 else "multiclass"


def classification_metrics(y: np.ndarray, y_pred: np.ndarray, proba: np.ndarray,
                           classes: np.ndarray) -> dict[str, float]:
    """Every metric of the binary or multiclass task (see ``objectives.metrics_for``)."""
    classes = np.asarray(classes)
    return task_scores(classification_task(classes), y, y_pred, proba, classes)


def scores_from_probabilities(y: np.ndarray, proba: np.ndarray, classes: np.ndarray
                              ) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, predicted labels) from one ``predict_proba`` pass.

    The labels are the most probable class, which is what scikit-learn classifiers'
    ``predict`` returns, so a trial needs one pass over the validation rows instead of two.
    """
    classes = np.asarray(classes)
    y_pred = classes[np.argmax(proba, axis=1)]
    return classification_metrics(np.asarray(y), y_pred, proba, classes), y_pred
