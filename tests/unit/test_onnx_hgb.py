"""HistGradientBoosting compiled by raymlops' own TreeEnsemble converter, split by split.

The hard cases are the ones scikit-learn's predictor treats specially: categorical splits
(a set of categories goes left), missing values in both directions, negative codes and
categories never seen in training (both sent where missing values go)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from raymlops.registry.compiled import OnnxModel, compile_model
from raymlops.training.families import TrainData, train_steps

HGB = {"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 10, "l2_regularization": 0.1}


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    categories = [f"c{i}" for i in range(20)]
    effect = dict(zip(categories, np.random.default_rng(0).normal(size=20), strict=True))
    X = pd.DataFrame({"carrier": rng.choice(categories, n).astype(object),
                      "origin": rng.choice(["EWR", "JFK", "LGA"], n).astype(object),
                      "a": rng.normal(size=n), "b": rng.normal(size=n)})
    X.loc[::7, "b"] = np.nan
    X.loc[::13, "carrier"] = None
    signal = X["a"] + 0.5 * X["b"].fillna(0) + X["carrier"].map(effect).fillna(1.0) + (X["origin"] == "JFK")
    return X, signal


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_an_automl_pipeline_with_categories_and_missing_values_answers_exactly(task: str) -> None:
    X, signal = _frame(4000, 1)
    if task == "binary":
        y = (signal > 0.3).astype(np.int64).to_numpy()
    elif task == "multiclass":
        y = np.select([signal < -0.5, signal < 0.5, signal < 1.5], ["fog", "rain", "drizzle"], "sun")
    else:
        y = (20 + 5 * signal).to_numpy()
    data = TrainData(X[:3000], y[:3000], X[3000:], y[3000:], ["a", "b"], ["carrier", "origin"], task)
    *_, (_, model, _) = train_steps("hgb", HGB, data, 3, seed=1)
    check = X[3000:].copy()
    check.loc[check.index[:40], "carrier"] = "a carrier never seen"
    kind = "regression" if task == "regression" else "classification"
    blob, report = compile_model(model, check, kind, y=y[3000:])
    assert blob is not None and report.serves, report.reason
    if task == "regression":
        assert report.max_rel_diff <= 1e-6
    else:
        assert report.label_agreement == 1.0 and report.max_abs_diff <= 1e-6
    compiled = OnnxModel(blob, kind="sklearn", input_names=list(check.columns),
                         classes=getattr(model, "classes_", np.array([])).tolist() or None, task=task)
    labels, _ = compiled.outputs(check.head(40))  # the unseen carrier, alone
    assert labels.tolist() == model.predict(check.head(40)).tolist() or task == "regression"


@pytest.mark.parametrize("missing_left", [True, False])
def test_categorical_codes_negative_unseen_and_missing_go_where_scikit_learn_sends_them(missing_left) -> None:
    rng = np.random.default_rng(2)
    n = 3000
    codes = rng.integers(0, 12, n).astype(np.float64)
    x = rng.normal(size=n)
    target = np.isin(codes, [1, 4, 7, 9]).astype(float) * 2 + x
    # missing codes carry a label that pulls the tree's missing direction one way or the other
    missing = rng.random(n) < 0.1
    codes[missing] = np.nan
    target[missing] = 3.0 if missing_left else -3.0
    X = np.column_stack([codes, x])
    model = HistGradientBoostingRegressor(max_iter=30, categorical_features=[0], random_state=0).fit(X, target)
    directions = {bool(node["missing_go_to_left"]) for (tree,) in model._predictors for node in tree.nodes
                  if node["is_categorical"] and not node["is_leaf"]}
    assert missing_left in directions  # the case this parameter is about occurs in the trees
    probe = np.array([[c, v] for c in [-5, -1, 0, 1, 4, 11, 12, 40, np.nan] for v in (-1.0, 0.0, 1.5)])
    frame = pd.DataFrame(np.vstack([X[:200], probe]), columns=["code", "x"])
    blob, report = compile_model(model, frame, "regression")
    assert report.serves, report.reason
    compiled = OnnxModel(blob, kind="sklearn", input_names=["code", "x"], classes=None, task="regression",
                         matrix_input=True)
    np.testing.assert_allclose(compiled.predict(frame), model.predict(frame.to_numpy()), rtol=1e-6, atol=1e-9)


def test_a_bare_classifier_on_a_float_matrix_with_missing_values() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 5))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X, y)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    blob, report = compile_model(model, frame, "classification", y=y)
    assert report.serves and report.label_agreement == 1.0 and report.max_abs_diff <= 1e-6, report


def test_rounded_numbers_that_sit_on_thresholds_answer_exactly() -> None:
    """Rounded readings (temperatures to 0.01, pressures to 0.1) repeat, so HGB's bin
    thresholds fall on data values; scaled in float32 such a value crosses its threshold
    (labels agreed on 99.4% before the Pipeline's numbers went through the graph in double)."""
    rng = np.random.default_rng(0)
    n = 8000
    X = pd.DataFrame({"carrier": rng.choice([f"c{i}" for i in range(16)], n).astype(object),
                      "distance": rng.integers(80, 5000, n).astype(float),
                      "temp": np.round(rng.normal(55, 17, n), 2), "pressure": np.round(rng.normal(1017, 7, n), 1)})
    signal = (X["distance"] > 1000) * 0.5 + (X["temp"] - 55) / 17 + (X["pressure"] - 1017) / 7
    y = (signal + rng.normal(size=n) > 0.5).astype(int).to_numpy()
    data = TrainData(X[:6000], y[:6000], X[6000:], y[6000:], ["distance", "temp", "pressure"], ["carrier"], "binary")
    *_, (_, model, _) = train_steps("hgb", HGB, data, 3, seed=1)
    blob, report = compile_model(model, X[6000:][data.columns_for("hgb")], "classification", y=y[6000:])
    assert report.serves and report.label_agreement == 1.0 and report.max_abs_diff <= 1e-6, report.reason
