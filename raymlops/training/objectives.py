"""What a model is trained for: its task, the metrics that judge it, and which way is better.

One table of metrics (:data:`METRICS`) says, for each metric, which tasks it applies to and
whether higher or lower is better. Everything that ranks or gates models reads it -- the
search (Tune's ``mode``, the best trial), continuous training's promotion gate, the training
spec's validation -- so a metric's direction is written down once, and a model is never
ranked by a number that does not apply to its task (f1 of a regressor, rmse of a classifier).

Scores are computed here the same way wherever a model is judged: a search trial scores its
model in its Tune worker after every step, and the tracking helper scores a model it is
handed, so a trial's MLflow run shows exactly the numbers the searcher saw. This module
imports only numpy and scikit-learn's metrics: trial workers import it and must not pay for
pandas-heavy or MLflow imports.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from sklearn import metrics as skm

from raymlops.exceptions import ValidationError

__all__ = [
    "METRICS",
    "TASKS",
    "Direction",
    "MetricSpec",
    "Task",
    "as_array",
    "check_metric",
    "default_families",
    "default_metric",
    "direction",
    "is_better",
    "log_loss",
    "metrics_for",
    "probabilities",
    "registry_task",
    "score_model",
    "scores_and_predictions",
    "task_scores",
    "with_unseen_classes",
]

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = get_args(Task)
Direction = Literal["max", "min"]

_CLASSIFICATION: tuple[Task, ...] = ("binary", "multiclass")


@dataclass(frozen=True)
class MetricSpec:
    """A metric's direction and the tasks it is defined for."""

    direction: Direction
    tasks: tuple[Task, ...]


METRICS: dict[str, MetricSpec] = {
    "roc_auc": MetricSpec("max", _CLASSIFICATION),  # one-vs-rest macro for multiclass
    "pr_auc": MetricSpec("max", _CLASSIFICATION),  # average precision, one-vs-rest macro
    "log_loss": MetricSpec("min", _CLASSIFICATION),
    "accuracy": MetricSpec("max", _CLASSIFICATION),
    "f1": MetricSpec("max", ("binary",)),  # of the positive class (classes_[1])
    "f1_macro": MetricSpec("max", _CLASSIFICATION),
    "brier": MetricSpec("min", _CLASSIFICATION),  # mean squared distance to the one-hot truth
    "rmse": MetricSpec("min", ("regression",)),
    "mae": MetricSpec("min", ("regression",)),
    "r2": MetricSpec("max", ("regression",)),
}

_DEFAULT_METRIC: dict[Task, str] = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
_DEFAULT_FAMILIES: dict[Task, tuple[str, ...]] = {
    "binary": ("logreg", "hgb", "rf", "mlp"),
    "multiclass": ("logreg", "hgb", "rf", "mlp"),
    "regression": ("ridge", "hgb", "rf", "mlp"),
}


def _check_task(task: Any) -> Task:
    if task not in TASKS:
        raise ValidationError(f"unknown task {task!r}; use one of {list(TASKS)}", field="task")
    return task  # type: ignore[no-any-return]


def metrics_for(task: Task) -> list[str]:
    """The metrics defined for ``task``, in the table's order."""
    _check_task(task)
    return [name for name, spec in METRICS.items() if task in spec.tasks]


def direction(metric: str) -> Direction:
    """"max" when higher is better, "min" when lower is (what Tune's ``mode`` takes)."""
    spec = METRICS.get(metric)
    if spec is None:
        raise ValidationError(f"unknown metric {metric!r}; known: {sorted(METRICS)}", field="metric")
    return spec.direction


def check_metric(task: Task, metric: str) -> str:
    """``metric`` if it judges models of ``task``; else a ValidationError naming those that do."""
    valid = metrics_for(task)
    if metric not in valid:
        what = "unknown metric" if metric not in METRICS else "metric"
        raise ValidationError(f"{what} {metric!r} does not apply to a {task} task; use one of {valid}",
                              field="metric")
    return metric


def default_metric(task: Task) -> str:
    """roc_auc (binary), log_loss (multiclass: AUC averaged over classes hides a bad one), rmse."""
    return _DEFAULT_METRIC[_check_task(task)]


def default_families(task: Task) -> tuple[str, ...]:
    """Every model family that applies to ``task`` (logistic regression classifies, ridge regresses)."""
    return _DEFAULT_FAMILIES[_check_task(task)]


def registry_task(task: Task) -> Literal["classification", "regression"]:
    """The registry's and the tracking helper's word for ``task`` (they need no class count)."""
    return "regression" if _check_task(task) == "regression" else "classification"


def _number(value: Any) -> float | None:
    """A finite float, or None for None/NaN/inf/non-numbers."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_better(candidate: Any, incumbent: Any, metric: str, margin: float = 0.0) -> bool:
    """Whether ``candidate`` beats ``incumbent`` on ``metric`` by at least ``margin``.

    The gain is measured in the metric's direction (a lower log_loss gains); a tie is never
    better, so with ``margin=0`` the candidate must be strictly better. A missing (None/NaN)
    candidate never wins; a missing incumbent loses to any finite candidate.
    """
    sign = 1.0 if direction(metric) == "max" else -1.0
    if _number(margin) is None or margin < 0:
        raise ValidationError(f"margin must be a finite number >= 0, got {margin!r}", field="margin")
    new = _number(candidate)
    if new is None:
        return False
    old = _number(incumbent)
    if old is None:
        return True
    gain = sign * (new - old)
    return gain > 0 and gain >= margin


# -- scores ---------------------------------------------------------------------------------


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


def log_loss(y: Any, proba: np.ndarray, classes: Any) -> float:
    """Log loss with ``proba``'s columns in ``classes`` order, whatever that order is.

    Why not ``sklearn.metrics.log_loss(labels=classes)`` alone: it takes the columns to
    follow the *sorted* labels, which a model's ``classes_`` (or classes extended by
    :func:`with_unseen_classes`) need not be; the columns are sorted to match first.
    """
    classes = np.asarray(classes)
    order = np.argsort(classes, kind="stable")
    return float(skm.log_loss(y, proba[:, order], labels=classes[order]))


def _f1_macro(y: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over the classes seen in the truth or the predictions (scikit-learn's
    default), so a class absent from both neither counts as 0 nor warns."""
    return float(skm.f1_score(y, y_pred, average="macro", zero_division=0))


def _binary(y: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    if len(classes) != 2 or proba.shape[1] != 2:
        raise ValidationError(f"a binary task needs two classes, the model has {classes.tolist()}",
                              field="task")
    unknown = sorted(set(np.unique(y).tolist()) - set(classes.tolist()), key=str)
    if unknown:
        raise ValidationError(f"labels {unknown} are not among the binary model's classes "
                              f"{classes.tolist()}", field="y")
    truth, score = (y == classes[1]).astype(int), proba[:, 1]
    both = 0 < truth.sum() < len(truth)  # AUCs need both classes in the truth
    return {
        "roc_auc": skm.roc_auc_score(truth, score) if both else math.nan,
        "pr_auc": skm.average_precision_score(truth, score) if both else math.nan,
        "log_loss": log_loss(y, proba, classes),
        "accuracy": skm.accuracy_score(y, y_pred),
        "f1": skm.f1_score(y, y_pred, pos_label=classes[1], zero_division=0),
        "f1_macro": _f1_macro(y, y_pred),
        "brier": skm.brier_score_loss(truth, score),
    }


def with_unseen_classes(y: Any, proba: np.ndarray, classes: Any) -> tuple[np.ndarray, np.ndarray]:
    """(proba, classes) extended by the labels of ``y`` the model never saw, each with
    probability 0.

    Why: a rare class can appear only in the validation window (a month of snow); the
    scores then count its rows as the misses they are instead of failing on a label
    outside ``classes``.
    """
    classes = np.asarray(classes)
    known = set(classes.tolist())
    unseen = [label for label in np.unique(np.asarray(y)).tolist() if label not in known]
    if not unseen:
        return proba, classes
    wider = np.asarray([*classes.tolist(), *unseen])  # a dtype wide enough for every label
    return np.column_stack([proba, np.zeros((len(proba), len(unseen)))]), wider


def _multiclass(y: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    proba, classes = with_unseen_classes(y, proba, classes)
    onehot = (y[:, None] == classes[None, :]).astype(int)
    # one-vs-rest areas exist only for classes with positives and negatives in y
    present = [k for k in range(len(classes)) if 0 < onehot[:, k].sum() < len(y)]

    def macro(score: Any) -> float:
        return float(np.mean([score(onehot[:, k], proba[:, k]) for k in present])) if present else math.nan

    return {
        "roc_auc": macro(skm.roc_auc_score),
        "pr_auc": macro(skm.average_precision_score),
        "log_loss": log_loss(y, proba, classes),
        "accuracy": skm.accuracy_score(y, y_pred),
        "f1_macro": _f1_macro(y, y_pred),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
    }


def _regression(y: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y, y_pred = y.astype(float), y_pred.astype(float).reshape(len(y))
    with warnings.catch_warnings():  # r2 of fewer than two rows is NaN, which says enough
        warnings.simplefilter("ignore")
        r2 = skm.r2_score(y, y_pred)
    return {"rmse": skm.root_mean_squared_error(y, y_pred), "mae": skm.mean_absolute_error(y, y_pred),
            "r2": r2}


def task_scores(task: Task, y: Any, y_pred: Any, proba: Any = None, classes: Any = None) -> dict[str, float]:
    """Every metric of ``task`` (see :func:`metrics_for`) as floats; NaN where undefined.

    Classification needs ``proba`` (rows of ``predict_proba``) whose columns follow
    ``classes`` (the model's ``classes_``); labels may be of any type (strings included).
    Multiclass areas are one-vs-rest macro averages over the classes present in ``y``.
    Regression ignores ``proba`` and ``classes``.
    """
    _check_task(task)
    y, y_pred = as_array(y), as_array(y_pred)
    if task == "regression":
        out = _regression(y, y_pred)
    else:
        if proba is None:
            raise ValidationError(f"a {task} task is scored from probabilities; pass proba", field="proba")
        proba = as_array(proba).astype(float)
        classes = np.asarray(classes) if classes is not None else np.unique(y)
        out = (_binary if task == "binary" else _multiclass)(y, y_pred, proba, classes)
    return {name: float(value) for name, value in out.items()}


def scores_and_predictions(model: Any, task: Task, X: Any, y: Any) -> tuple[dict[str, float], np.ndarray]:
    """(every metric of ``task``, predictions) from one pass over ``X``.

    A classifier is asked for ``predict_proba`` only: its labels are the most probable of
    ``model.classes_``, which is what scikit-learn's ``predict`` returns, so a trial scores
    its model with one pass instead of two. A regressor is asked for ``predict``.
    """
    _check_task(task)
    if task == "regression":
        predicted = as_array(model.predict(X)).astype(float).reshape(-1)
        return task_scores(task, y, predicted), predicted
    proba = probabilities(model, X)
    known = getattr(model, "classes_", None)
    classes = np.asarray(known) if known is not None else np.unique(as_array(y))
    if proba.shape[1] != len(classes):
        raise ValidationError(f"predict_proba gave {proba.shape[1]} columns for classes {classes.tolist()}",
                              field="model")
    predicted = classes[np.argmax(proba, axis=1)]
    return task_scores(task, y, predicted, proba, classes), predicted


def score_model(model: Any, task: Task, X: Any, y: Any) -> dict[str, float]:
    """Every metric of ``task`` for ``model`` on ``(X, y)`` (see :func:`scores_and_predictions`)."""
    return scores_and_predictions(model, task, X, y)[0]
