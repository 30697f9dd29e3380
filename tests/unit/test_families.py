"""Model families: each trains in steps, resumes from a saved step, stores safely, and
learns every task it applies to (binary, multiclass with string labels, regression)."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from raymlops.exceptions import ValidationError
from raymlops.registry.formats import deserialize, serialize
from raymlops.training.families import (
    FAMILIES,
    TrainData,
    families_for,
    max_steps,
    suggest,
    train_steps,
    validation_auc,
    validation_scores,
)
from raymlops.training.objectives import TASKS, default_families, metrics_for

PARAMS = {
    "logreg": {"C": 1.0},
    "ridge": {"alpha": 1.0},
    "hgb": {"learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 20, "l2_regularization": 0.1},
    "rf": {"max_depth": 6, "min_samples_leaf": 5, "max_features": "sqrt"},
    "mlp": {"hidden": 16, "layers": 2, "lr": 1e-2, "dropout": 0.0},
}


@pytest.fixture(scope="module")
def data() -> TrainData:
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame({"carrier": rng.choice(["AA", "UA", "DL"], n).astype(object),
                      "a": rng.normal(size=n), "b": rng.normal(size=n)})
    X.loc[::7, "a"] = np.nan  # missing values must not break any family
    signal = X["a"].fillna(0) + (X["carrier"] == "UA") + rng.normal(scale=0.5, size=n)
    y = (signal > 0.5).astype(np.int64).to_numpy()
    return TrainData(X[:2000], y[:2000], X[2000:], y[2000:], ["a", "b"], ["carrier"])


@pytest.mark.parametrize("family", families_for("binary"))
def test_each_family_learns_in_steps_and_round_trips_through_the_safe_formats(family, data) -> None:
    steps = list(train_steps(family, PARAMS[family], data, 3))
    assert [s for s, _, _ in steps] == list(range(1, max_steps(family, 3) + 1))
    model = steps[-1][1]
    auc = validation_auc(model, family, data)
    assert auc > 0.75  # the signal is strong; chance is 0.5
    blob, meta = serialize(model, task="classification")
    assert meta.format in ("skops", "torch_state_dict")
    again = deserialize(blob, meta)
    assert validation_auc(again, family, data) == pytest.approx(auc, abs=1e-9)


@pytest.mark.parametrize("family", ["hgb", "rf", "mlp"])
def test_resuming_from_a_saved_step_continues_instead_of_restarting(family, data) -> None:
    first = list(train_steps(family, PARAMS[family], data, 2))
    saved = first[0][1]
    blob, meta = serialize(saved, task="classification")
    resumed = list(train_steps(family, PARAMS[family], data, 2, start_model=deserialize(blob, meta), start_step=1))
    assert [s for s, _, _ in resumed] == [2]
    model = resumed[0][1]
    if family == "hgb":
        assert model[-1].n_iter_ == 50
    elif family == "rf":
        assert len(model[-1].estimators_) == 50


def test_the_space_only_holds_the_chosen_familys_parameters() -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    seen = {}
    for _ in range(40):
        trial = study.ask()
        suggest(trial, list(FAMILIES))
        seen.setdefault(trial.params["family"], set()).add(frozenset(trial.params))
        study.tell(trial, 0.5)
    assert set(seen) == set(FAMILIES)
    for family, keys in seen.items():
        assert keys == {frozenset({"family", *PARAMS[family]})}


def test_unknown_family_is_a_typed_error(data) -> None:
    with pytest.raises(ValidationError, match="xgb"):
        list(train_steps("xgb", {}, data, 1))


def test_each_task_has_its_families_and_the_defaults_are_among_them() -> None:
    assert families_for("binary") == families_for("multiclass") == ("logreg", "hgb", "rf", "mlp")
    assert families_for("regression") == ("ridge", "hgb", "rf", "mlp")
    assert set(FAMILIES) == {f for task in TASKS for f in families_for(task)}
    for task in TASKS:
        assert set(default_families(task)) <= set(families_for(task))
    assert max_steps("ridge", 8) == max_steps("logreg", 8) == 1


def _task_data(task: str, n: int = 900) -> TrainData:
    """A learnable signal from a numeric and a categorical column, labelled for ``task``."""
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"carrier": rng.choice(["AA", "UA", "DL"], n).astype(object),
                      "a": rng.normal(size=n), "b": rng.normal(size=n)})
    X.loc[::11, "b"] = np.nan
    signal = X["a"].to_numpy() + 0.5 * X["b"].fillna(0).to_numpy() + (X["carrier"] == "UA").to_numpy()
    if task == "binary":
        y = (signal > 0.5).astype(np.int64)
    elif task == "multiclass":  # the weather labels of the seattle example
        y = np.select([signal < -0.5, signal < 0.5, signal < 1.5], ["fog", "rain", "drizzle"], "sun")
    else:
        y = 20.0 + 5.0 * signal + rng.normal(scale=0.3, size=n)
    cut = n * 2 // 3
    return TrainData(X[:cut], y[:cut], X[cut:], y[cut:], ["a", "b"], ["carrier"], task)  # type: ignore[arg-type]


@pytest.mark.parametrize(("task", "family"), [(t, f) for t in TASKS for f in families_for(t)])
def test_each_family_learns_each_of_its_tasks(task, family) -> None:
    data = _task_data(task)
    *_, (step, model, _) = train_steps(family, PARAMS[family], data, 3, seed=1)
    assert step == max_steps(family, 3)
    scores, predicted = validation_scores(model, family, data)
    assert set(scores) == set(metrics_for(task))
    assert len(predicted) == len(data.y_valid)
    if task == "regression":
        assert predicted.dtype == np.float64 and not hasattr(model, "predict_proba")
        assert scores["r2"] > 0.2  # chance is 0; the MLP gets only the numeric columns
        kind = "regression"
    else:
        classes = np.unique(data.y_train)
        assert np.asarray(model.classes_).tolist() == classes.tolist()
        assert set(predicted.tolist()) <= set(classes.tolist())
        if task == "multiclass":
            assert predicted.dtype.kind == "U"  # labels, not class indices
            assert model.predict_proba(data.X_valid[data.columns_for(family)]).shape == (len(predicted), 4)
        assert scores["accuracy"] > 1.2 / len(classes)  # well above always guessing one class
        kind = "classification"
    blob, meta = serialize(model, task=kind)
    again = deserialize(blob, meta)
    assert validation_scores(again, family, data)[0] == pytest.approx(scores)


@pytest.mark.parametrize(("task", "family"), [("regression", "logreg"), ("binary", "ridge"),
                                              ("multiclass", "ridge")])
def test_a_family_that_does_not_learn_the_task_is_a_typed_error(task, family) -> None:
    with pytest.raises(ValidationError, match=f"does not learn a {task} task") as info:
        list(train_steps(family, PARAMS[family], _task_data(task, 60), 1))
    assert info.value.context["field"] == "family"


def test_train_data_defaults_to_binary_for_callers_from_before_tasks(data) -> None:
    assert data.task == "binary"
