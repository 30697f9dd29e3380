"""Artifact formats without Ray: safe round trips, digests, pickle policy, names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from raymlops.exceptions import UnsafeArtifactError, ValidationError
from raymlops.registry import formats
from raymlops.registry.formats import Predictor, deserialize, serialize
from raymlops.registry.names import parse_ref, validate_alias, validate_model_name


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"temp": rng.normal(50, 10, 400), "wind": rng.gamma(2, 5, 400)})
    y = (X["temp"] + rng.normal(0, 5, 400) > 50).astype(int).to_numpy()
    return X, y


class TinyNet(torch.nn.Module):
    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.init_kwargs = {"n_in": n_in, "hidden": hidden}
        self.body = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_sklearn_round_trip_is_skops_and_predicts_the_same(data) -> None:
    X, y = data
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
    blob, meta = serialize(model)
    assert meta.format == "skops" and meta.flavor == "sklearn"
    assert meta.task == "classification" and meta.feature_names == ["temp", "wind"]
    assert meta.sha256 == formats.digest(blob) and meta.size == len(blob)
    loaded = deserialize(blob, meta)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_torch_round_trip_uses_state_dict(data) -> None:
    X, _ = data
    net = TinyNet(2, 8)
    blob, meta = serialize(net, task="classification")
    assert meta.format == "torch_state_dict"
    assert meta.class_path == f"{__name__}:TinyNet" and meta.init_kwargs == {"n_in": 2, "hidden": 8}
    back = deserialize(blob, meta)
    x = torch.tensor(X.to_numpy(), dtype=torch.float32)
    assert torch.equal(back(x), net(x))
    pred = Predictor(back, meta, "m", 1)
    proba = pred.predict_proba(X.to_numpy())
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(np.unique(pred.predict(X.to_numpy()))) <= {0, 1}


def test_torch_without_init_kwargs_is_refused() -> None:
    net = torch.nn.Linear(2, 1)
    with pytest.raises(ValidationError, match="init_kwargs"):
        serialize(net)


def test_torch_class_path_must_be_a_module(data) -> None:
    blob, meta = serialize(TinyNet(2, 4))
    evil = formats.ArtifactMeta(**{**meta.__dict__, "class_path": "os:system", "init_kwargs": {}})
    with pytest.raises(UnsafeArtifactError, match="not a torch.nn.Module"):
        deserialize(blob, evil)


def test_tampered_bytes_are_refused(data) -> None:
    X, y = data
    blob, meta = serialize(LogisticRegression().fit(X, y))
    tampered = bytearray(blob)
    tampered[len(tampered) // 2] ^= 0xFF
    with pytest.raises(UnsafeArtifactError, match="digest"):
        deserialize(bytes(tampered), meta)


class NotSklearn:
    def predict(self, X):
        return np.zeros(len(X))


def test_pickle_needs_opt_in_to_register_and_trust_to_load(data) -> None:
    with pytest.raises(ValidationError, match="pickle"):
        serialize(NotSklearn())
    blob, meta = serialize(NotSklearn(), allow_pickle=True)
    assert meta.format == "pickle"
    with pytest.raises(UnsafeArtifactError, match="pickle"):
        deserialize(blob, meta)
    assert isinstance(deserialize(blob, meta, trusted_source=True), NotSklearn)


class Doubler(BaseEstimator, TransformerMixin):
    """A transformer from outside scikit-learn: its skops file names a foreign type."""

    def fit(self, X: object, y: object = None) -> Doubler:
        return self

    def transform(self, X: object) -> object:
        return X * 2


@pytest.mark.parametrize("skops_layout", ["internals", "public API"])
def test_skops_with_foreign_types_is_refused_unless_the_source_is_trusted(data, monkeypatch, skops_layout) -> None:
    X, y = data
    model = make_pipeline(Doubler(), LogisticRegression()).fit(X, y)
    blob, meta = serialize(model)
    if skops_layout == "public API":  # the fallback when skops' internals move
        monkeypatch.setitem(__import__("sys").modules, "skops.io._audit", None)
    with pytest.raises(UnsafeArtifactError, match="test_registry_formats.Doubler"):
        deserialize(blob, meta)
    loaded = deserialize(blob, meta, trusted_source=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_gradient_boosting_pipeline_round_trips_through_skops(data) -> None:
    X, y = data
    model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=30)).fit(X, y)
    blob, meta = serialize(model)
    np.testing.assert_array_equal(deserialize(blob, meta).predict_proba(X), model.predict_proba(X))


def test_predictor_selects_and_checks_columns(data) -> None:
    X, y = data
    model = LogisticRegression().fit(X, y)
    blob, meta = serialize(model, feature_names=["temp", "wind"])
    pred = Predictor(deserialize(blob, meta), meta, "m", 3)
    shuffled = X[["wind", "temp"]].assign(extra=1)
    np.testing.assert_array_equal(pred.predict(shuffled), model.predict(X))
    from raymlops.exceptions import SchemaMismatchError

    with pytest.raises(SchemaMismatchError, match="wind"):
        pred.predict(X[["temp"]])


@pytest.mark.parametrize("name", ["flights", "delay-model_v2.1", "A"])
def test_valid_names(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a b", "x/y", "a" * 129, None, 3])
def test_invalid_names(name) -> None:
    with pytest.raises(ValidationError, match="invalid model name"):
        validate_model_name(name)


@pytest.mark.parametrize("alias", ["v3", "V10", "latest", "1abc", "a b", ""])
def test_invalid_aliases(alias: str) -> None:
    with pytest.raises(ValidationError):
        validate_alias(alias)


def test_parse_ref() -> None:
    assert parse_ref(3) == 3 and parse_ref("3") == 3 and parse_ref("v3") == 3
    assert parse_ref("champion") == "champion" and parse_ref("@challenger") == "challenger"
    for bad in (0, -1, True, 1.5, "v0"):
        with pytest.raises(ValidationError):
            parse_ref(bad)


def test_same_model_gives_same_bytes(data) -> None:
    """Retries re-serialize; identical digests let the registry recognise them."""
    import time

    X, y = data
    model = LogisticRegression().fit(X, y)
    first, _ = serialize(model)
    time.sleep(1.1)  # zip timestamps have 2 s resolution: cross a boundary at least sometimes
    second, _ = serialize(model)
    assert first == second
