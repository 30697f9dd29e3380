"""Model families for AutoML: a search space each, and training in steps Tune can judge.

A family knows three things: how to *suggest* hyperparameters (define-by-run, for a TPE
searcher: only the chosen family's parameters exist in a trial), how to *build* its model,
and how to *train in steps* (boosting iterations, trees, epochs), each step ending with a
model that can be evaluated and checkpointed -- that is what lets ASHA stop bad trials early
and a restarted trial resume from its last step. Scikit-learn models are Pipelines (their
preprocessing inside, so the registry stores one skops file that takes raw columns); the torch
MLP keeps its scaling in buffers (a state_dict is the whole model).

The task (binary, multiclass, regression) travels with the data (:class:`TrainData`), so a
family builds the classifier or the regressor of its kind; logistic regression only
classifies and ridge only regresses (:func:`families_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from raymlops.exceptions import ValidationError
from raymlops.training.objectives import TASKS, Task, scores_and_predictions

__all__ = ["FAMILIES", "TrainData", "families_for", "max_steps", "suggest", "train_steps",
           "validation_auc", "validation_scores"]

# Every family (for name checks); which tasks each applies to is _APPLIES_TO.
FAMILIES = ("logreg", "ridge", "hgb", "rf", "mlp")
_APPLIES_TO: dict[str, tuple[Task, ...]] = {
    "logreg": ("binary", "multiclass"),
    "ridge": ("regression",),
    "hgb": TASKS,
    "rf": TASKS,
    "mlp": TASKS,
}


def families_for(task: Task) -> tuple[str, ...]:
    """The families that can learn ``task``."""
    if task not in TASKS:
        raise ValidationError(f"unknown task {task!r}; use one of {list(TASKS)}", field="task")
    return tuple(f for f in FAMILIES if task in _APPLIES_TO[f])


@dataclass(frozen=True)
class TrainData:
    """Train/validation frames (split by time by the caller) and the columns by kind."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_valid: pd.DataFrame
    y_valid: np.ndarray
    numeric: list[str]
    categorical: list[str]
    task: Task = "binary"  # what the labels are: classes (2 or more) or numbers

    def columns_for(self, family: str) -> list[str]:
        """The MLP takes numbers only; the Pipelines take every column."""
        return list(self.numeric) if family == "mlp" else [*self.categorical, *self.numeric]


def suggest(trial: Any, families: list[str]) -> dict[str, Any]:
    """Define-by-run search space for Optuna's TPE: the family, then only its parameters."""
    family = trial.suggest_categorical("family", families)
    if family == "logreg":
        trial.suggest_float("C", 1e-3, 10.0, log=True)
    elif family == "ridge":
        trial.suggest_float("alpha", 1e-3, 100.0, log=True)
    elif family == "hgb":
        trial.suggest_float("learning_rate", 0.02, 0.3, log=True)
        trial.suggest_int("max_leaf_nodes", 8, 64, log=True)
        trial.suggest_int("min_samples_leaf", 10, 200, log=True)
        trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True)
    elif family == "rf":
        trial.suggest_int("max_depth", 4, 20)
        trial.suggest_int("min_samples_leaf", 1, 50, log=True)
        trial.suggest_categorical("max_features", ["sqrt", "0.5"])
    elif family == "mlp":
        trial.suggest_int("hidden", 16, 128, log=True)
        trial.suggest_int("layers", 1, 3)
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        trial.suggest_float("dropout", 0.0, 0.3)
    else:
        raise ValidationError(f"unknown model family {family!r}; known: {list(FAMILIES)}", field="families")
    return {}


STEP_SIZE = {"hgb": 25, "rf": 25, "mlp": 1, "logreg": 1, "ridge": 1}
_ONE_STEP = ("logreg", "ridge")  # closed-form or solved to convergence: nothing to stop early


def max_steps(family: str, steps: int) -> int:
    """The linear models are one step; the iterative families take ``steps`` steps."""
    return 1 if family in _ONE_STEP else steps


def _preprocess(family: str, data: TrainData) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if family in _ONE_STEP:  # linear models: one column per category, scaled numbers
        cat = OneHotEncoder(handle_unknown="ignore")
        num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    else:
        cat = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                             encoded_missing_value=-1)
        # HGB handles NaN itself, so its numbers are only made float: StandardScaler keeps NaN,
        # accepts pandas' nullable Int columns (pd.NA), and trees ignore monotone scaling.
        num = SimpleImputer(strategy="median") if family == "rf" else StandardScaler()
    parts = []
    if data.categorical:
        parts.append(("cat", cat, list(data.categorical)))
    parts.append(("num", num, list(data.numeric)))
    return ColumnTransformer(parts, verbose_feature_names_out=False)


def _estimator(family: str, params: dict[str, Any], data: TrainData, seed: int) -> Any:
    from sklearn import ensemble
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    regression = data.task == "regression"
    if family == "logreg":
        est = LogisticRegression(C=params["C"], max_iter=500)
    elif family == "ridge":
        est = Ridge(alpha=params["alpha"])
    elif family == "hgb":
        hgb = ensemble.HistGradientBoostingRegressor if regression else ensemble.HistGradientBoostingClassifier
        est = hgb(
            learning_rate=params["learning_rate"], max_leaf_nodes=params["max_leaf_nodes"],
            min_samples_leaf=params["min_samples_leaf"], l2_regularization=params["l2_regularization"],
            early_stopping=False, warm_start=True, max_iter=STEP_SIZE["hgb"], random_state=seed,
            categorical_features=list(range(len(data.categorical))) or None,
        )
    else:
        forest = ensemble.RandomForestRegressor if regression else ensemble.RandomForestClassifier
        max_features = params["max_features"]
        est = forest(
            max_depth=params["max_depth"], min_samples_leaf=params["min_samples_leaf"],
            max_features=float(max_features) if max_features != "sqrt" else "sqrt",
            warm_start=True, n_estimators=STEP_SIZE["rf"], n_jobs=1, random_state=seed,
        )
    # the step is named "clf" for regressors too: checkpoints and train_steps address it so
    return Pipeline([("prep", _preprocess(family, data)), ("clf", est)])


def train_steps(
    family: str, params: dict[str, Any], data: TrainData, steps: int, *, seed: int = 0,
    start_model: Any = None, start_step: int = 0,
) -> Iterator[tuple[int, Any, dict[str, float]]]:
    """Yield ``(step, model, step_metrics)`` after each step, from ``start_step`` on.

    ``start_model`` is the model a checkpoint saved after ``start_step`` steps: boosting and
    forests continue with warm start, the MLP continues its epochs, so a retried trial does
    not redo finished work.
    """
    if family not in FAMILIES:
        raise ValidationError(f"unknown model family {family!r}; known: {list(FAMILIES)}", field="family")
    if family not in families_for(data.task):
        raise ValidationError(f"model family {family!r} does not learn a {data.task} task; use one of "
                              f"{list(families_for(data.task))}", field="family")
    total = max_steps(family, steps)
    X = data.X_train[data.columns_for(family)]
    if family == "mlp":
        yield from _mlp_steps(params, X, data.y_train, data.task, total, seed, start_model, start_step)
        return
    model = start_model if start_model is not None else _estimator(family, params, data, seed)
    for step in range(start_step, total):
        if family == "hgb":
            model.set_params(clf__max_iter=STEP_SIZE["hgb"] * (step + 1))
        elif family == "rf":
            model.set_params(clf__n_estimators=STEP_SIZE["rf"] * (step + 1))
        model.fit(X, data.y_train)
        yield step + 1, model, {}


def _mlp_steps(params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, task: Task, total: int, seed: int,
               start_model: Any, start_step: int) -> Iterator[tuple[int, Any, dict[str, float]]]:
    import torch

    from raymlops.training.torch_mlp import TabularMLP, fit_epoch, pick_device

    torch.manual_seed(seed)
    device = pick_device()
    array = np.asarray(X, dtype=np.float32)
    model = start_model
    if model is None:
        # the classes are the training labels, sorted (what scikit-learn's classes_ are)
        classes = None if task == "regression" else np.unique(np.asarray(y)).tolist()
        model = TabularMLP(array.shape[1], hidden=int(params["hidden"]), layers=int(params["layers"]),
                           dropout=float(params["dropout"]), columns=[str(c) for c in X.columns],
                           task=task, classes=classes)
        model.set_scaling(array)
        if task == "regression":
            model.set_target_scaling(np.asarray(y, dtype=np.float64))
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))
    generator = torch.Generator().manual_seed(seed + start_step)
    for step in range(start_step, total):
        loss = fit_epoch(model, array, y, optimizer, batch_size=512, generator=generator)
        yield step + 1, model, {"train_loss": loss, "cuda": float(device.type == "cuda")}


def validation_auc(model: Any, family: str, data: TrainData) -> float:
    """ROC AUC of a binary classifier on the validation window."""
    from sklearn.metrics import roc_auc_score

    proba = model.predict_proba(data.X_valid[data.columns_for(family)])[:, 1]
    return float(roc_auc_score(data.y_valid, proba))


def validation_scores(model: Any, family: str, data: TrainData) -> tuple[dict[str, float], np.ndarray]:
    """(every metric of ``data.task``, predictions) on the validation window from one pass
    (``predict_proba`` for classifiers, ``predict`` for regressors), so a trial's run needs
    no second look at the model."""
    return scores_and_predictions(model, data.task, data.X_valid[data.columns_for(family)], data.y_valid)


ScoreFn = Callable[[Any, str, TrainData], float]
