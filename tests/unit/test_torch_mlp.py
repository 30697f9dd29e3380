"""TabularMLP for each task: what it predicts, and that the registry stores and rebuilds it
from its state_dict + init_kwargs (binary models stored before tasks existed included)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from raymlops.exceptions import ValidationError
from raymlops.registry.formats import ArtifactMeta, Predictor, deserialize, serialize
from raymlops.serving.batch import score_frame
from raymlops.tabular_input import ROW_ID
from raymlops.training.torch_mlp import TabularMLP, fit_epoch

COLUMNS = ["a", "b"]


def _frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n) * 10 + 3})
    X.loc[::9, "b"] = np.nan
    return X


def _trained(task: str, y: np.ndarray, X: pd.DataFrame, classes: list | None = None, epochs: int = 30) -> TabularMLP:
    torch.manual_seed(0)
    array = X.to_numpy(np.float32)
    model = TabularMLP(2, hidden=16, layers=2, dropout=0.0, columns=COLUMNS, task=task, classes=classes)
    model.set_scaling(array)
    if task == "regression":
        model.set_target_scaling(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        fit_epoch(model, array, y, optimizer, batch_size=128, generator=generator)
    return model


def _weather(X: pd.DataFrame) -> np.ndarray:
    return np.select([X["a"] < -0.5, X["a"] < 0.5], ["fog", "rain"], "sun")


def test_a_binary_model_keeps_the_state_dict_of_models_stored_before_tasks() -> None:
    model = TabularMLP(3, hidden=8, layers=2)
    assert list(model.state_dict()) == ["mean", "std", "net.0.weight", "net.0.bias", "net.3.weight",
                                        "net.3.bias", "net.6.weight", "net.6.bias"]
    assert model.net[-1].out_features == 1 and model.classes_.tolist() == [0, 1]
    # a version registered before tasks: init_kwargs without task/classes, same state_dict
    old = {"n_features": 3, "hidden": 8, "layers": 2, "dropout": 0.1, "columns": None}
    blob, meta = serialize(model, init_kwargs=old, task="classification")
    again = deserialize(blob, meta)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    assert again.task == "binary" and np.allclose(again.predict_proba(x), model.predict_proba(x))
    assert again.predict(x).dtype == np.int64


def test_binary_learns_and_predicts_its_labels() -> None:
    X = _frame()
    y = (X["a"] > 0).astype(np.int64).to_numpy()
    model = _trained("binary", y, X, classes=[0, 1])
    assert (model.predict(X) == y).mean() > 0.9
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(axis=1), 1)


def test_multiclass_softmax_over_string_labels_round_trips_through_the_registry() -> None:
    X = _frame()
    y = _weather(X)
    classes = np.unique(y)  # numpy strings: init_kwargs must still be plain JSON
    model = _trained("multiclass", y, X, classes=list(classes))
    assert model.net[-1].out_features == 3 and model.classes_.tolist() == ["fog", "rain", "sun"]
    json.dumps(model.init_kwargs)
    assert model.init_kwargs["classes"] == ["fog", "rain", "sun"] and model.init_kwargs["task"] == "multiclass"
    assert (model.predict(X) == y).mean() > 0.85

    blob, meta = serialize(model, task="classification")
    meta = ArtifactMeta.from_json(meta.to_json())  # what the registry stores and reads back
    predictor = Predictor(deserialize(blob, meta), meta, "weather", 1)
    proba = predictor.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.allclose(proba, model.predict_proba(X))
    assert predictor.predict(X).tolist() == model.predict(X).tolist()  # labels, not indices
    assert predictor.model.classes_.tolist() == ["fog", "rain", "sun"]  # what serving reports


def test_multiclass_labels_of_other_types_and_unknown_labels() -> None:
    X = _frame(200)
    y = np.where(X["a"] > 0, 7, np.where(X["b"] > 3, 2, 5)).astype(np.int64)
    model = _trained("multiclass", y, X, classes=np.unique(y), epochs=2)
    assert model.init_kwargs["classes"] == [2, 5, 7] and type(model.init_kwargs["classes"][0]) is int
    assert model.predict(X).dtype == np.int64
    with pytest.raises(ValueError, match="not one of the model's classes"):
        model.targets(np.array([2, 3]))
    with pytest.raises(ValueError, match="needs its classes"):
        TabularMLP(2, task="multiclass")


def test_regression_answers_in_the_target_unit_and_has_no_probabilities() -> None:
    X = _frame()
    y = 1000.0 + 250.0 * X["a"].to_numpy()  # far from 0 and 1: the target scaling matters
    model = _trained("regression", y, X, epochs=60)
    assert "target_mean" in model.state_dict() and float(model.target_mean) == pytest.approx(y.mean())
    predicted = model.predict(X)
    assert predicted.dtype == np.float64
    assert np.sqrt(np.mean((predicted - y) ** 2)) < 0.25 * y.std()
    assert not hasattr(model, "predict_proba") and not hasattr(model, "classes_")
    with pytest.raises(ValueError, match="no classes"):
        TabularMLP(2, task="regression", classes=[0, 1])

    blob, meta = serialize(model, task="regression")
    meta = ArtifactMeta.from_json(meta.to_json())
    predictor = Predictor(deserialize(blob, meta), meta, "price", 2)
    assert np.allclose(predictor.predict(X), predicted)
    with pytest.raises(ValidationError, match="no predict_proba"):
        predictor.predict_proba(X)
    scored = score_frame(predictor, X.assign(**{ROW_ID: np.arange(len(X))}), [])
    assert scored["prediction"].dtype == np.float64 and scored["score"].isna().all()
    assert not any(c.startswith("proba_") for c in scored.columns)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_the_winners_figures_render_for_an_mlp_of_each_task(task) -> None:
    """What a search computes for its best trial (permutation importance: the MLP has none)."""
    from raymlops.training.tracking import evaluation_files

    X = _frame(300)
    y = _weather(X) if task == "multiclass" else 5.0 * X["a"].to_numpy()
    model = _trained(task, y, X, classes=["fog", "rain", "sun"] if task == "multiclass" else None, epochs=5)
    files = evaluation_files(model, task="regression" if task == "regression" else "classification",
                             X_valid=X, y_valid=y)
    expected = {"residuals.png"} if task == "regression" else {"confusion_matrix.png", "roc_curve.png", "pr_curve.png"}
    assert expected | {"feature_importance.png", "feature_importance.json"} == set(files)
    assert json.loads(files["feature_importance.json"])["method"] == "permutation"
