"""Batch scoring's frame per task: binary as before, one proba column per class for a
multi-class model, floats and no score for a regressor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from raymlops.registry.formats import Predictor, serialize
from raymlops.serving.batch import score_frame
from raymlops.tabular_input import ROW_ID


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({ROW_ID: np.arange(300), "station": rng.choice(["SEA", "PDX"], 300),
                         "temp": rng.normal(10, 5, 300), "wind": rng.gamma(2, 2, 300)})


def _predictor(model, task: str) -> Predictor:
    _, meta = serialize(model, task=task, feature_names=["temp", "wind"])
    return Predictor(model, meta, "m", 3)


def test_a_multiclass_model_gets_one_proba_column_per_class(frame) -> None:
    y = np.select([frame["temp"] < 5, frame["wind"] > 5], ["snow", "rain"], "sun")
    model = LogisticRegression(max_iter=500).fit(frame[["temp", "wind"]], y)
    out = score_frame(_predictor(model, "classification"), frame, ["station"])
    assert list(out.columns) == [ROW_ID, "station", "prediction", "score", "proba_rain", "proba_snow",
                                 "proba_sun", "model_name", "model_version"]
    proba = model.predict_proba(frame[["temp", "wind"]])
    np.testing.assert_allclose(out[["proba_rain", "proba_snow", "proba_sun"]].to_numpy(), proba)
    assert all(out[f"proba_{c}"].dtype == np.float64 for c in model.classes_)
    assert out["prediction"].tolist() == model.predict(frame[["temp", "wind"]]).tolist()
    np.testing.assert_allclose(out["score"], proba.max(axis=1))


def test_binary_and_regression_frames_are_unchanged(frame) -> None:
    y = (frame["temp"] > 10).astype(int).to_numpy()
    binary = score_frame(_predictor(LogisticRegression().fit(frame[["temp", "wind"]], y), "classification"),
                         frame, [])
    assert list(binary.columns) == [ROW_ID, "prediction", "score", "model_name", "model_version"]
    assert set(binary["prediction"]) <= {0, 1} and binary["score"].between(0, 1).all()
    reg = LinearRegression().fit(frame[["temp", "wind"]], frame["temp"] * 3)
    out = score_frame(_predictor(reg, "regression"), frame, [])
    assert out["prediction"].dtype == np.float64 and out["score"].isna().all()
    assert list(out.columns) == list(binary.columns)
