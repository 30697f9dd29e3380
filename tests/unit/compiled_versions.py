"""A small AutoML-style model (ColumnTransformer + estimator, one text and two number
columns), compiled and recorded as the registry records a version: shared by the tests of
the serving hot path and of the compiled model running alone."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd

from raymlops.registry.client import _infer_signature
from raymlops.registry.compiled import compile_model
from raymlops.registry.formats import ArtifactMeta, serialize
from raymlops.training.families import TrainData, train_steps

PARAMS = {"logreg": {"C": 1.0}, "hgb": {"learning_rate": 0.1, "max_leaf_nodes": 15,
                                         "min_samples_leaf": 10, "l2_regularization": 0.0}}


def compiled_version(family: str) -> tuple[Any, ArtifactMeta, bytes, bytes, pd.DataFrame]:
    """(model, its record with the compile report, model bytes, ONNX bytes, input rows)."""
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({"carrier": rng.choice(["AA", "UA", "DL"], n).astype(object),
                      "hour": rng.integers(5, 23, n).astype(np.float64),
                      "weather__temp": rng.normal(50, 10, n)})
    y = ((X["weather__temp"] > 50) ^ (X["carrier"] == "UA")).astype(int).to_numpy()
    data = TrainData(X[:400], y[:400], X[400:], y[400:], ["hour", "weather__temp"], ["carrier"],
                     "binary")
    *_, (_, model, _) = train_steps(family, PARAMS[family], data, 2, seed=0)
    columns = data.columns_for(family)
    sig = _infer_signature(model, X[columns].head(5)).to_dict()
    onnx, report = compile_model(model, X[columns], "classification")
    assert report.serves, report.reason
    blob, meta = serialize(model, feature_names=columns, signature=sig)
    # through JSON, as the registry stores it
    meta = dataclasses.replace(meta, compiled=json.loads(json.dumps(report.to_dict())))
    return model, meta, blob, onnx, X[columns]
