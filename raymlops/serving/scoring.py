"""One scored unit of batch prediction: the output columns for a frame, and its part file's name.

Shared by the job that plans and checks the output (:mod:`raymlops.serving.batch`) and the
pool actors that write it (:mod:`raymlops.serving.scorer`), without either importing the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from raymlops.tabular_input import ROW_ID

__all__ = ["score_frame"]


def score_frame(predictor: Any, frame: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    """Predictions for ``frame``: row id, kept columns, prediction, score, model, version.

    ``score`` is the probability of the positive class for a binary classifier, of the
    predicted class for a multi-class one, and absent (NaN) for a regressor. A multi-class
    classifier also gets one ``proba_<class>`` column per class (float64, in ``classes_``
    order), so the whole distribution is kept for analysis (calibration, top-k) without
    scoring again.
    """
    out = frame[[ROW_ID, *keep]].reset_index(drop=True)
    task = predictor.meta.task
    columns: dict[str, np.ndarray] = {}
    if task == "classification":
        proba = np.asarray(predictor.predict_proba(frame), dtype=np.float64)
        known = predictor.classes
        if proba.shape[1] == 2:
            score = proba[:, 1]
            classes = known if known is not None else np.array([0, 1])
            prediction = np.asarray(classes)[(score >= 0.5).astype(int)]
        else:
            classes = np.asarray(known) if known is not None else np.arange(proba.shape[1])
            # the most probable class, as predict() gives it, without a second pass
            prediction = classes[np.argmax(proba, axis=1)]
            score = proba.max(axis=1)
            columns = {f"proba_{label}": proba[:, k] for k, label in enumerate(classes.tolist())}
    else:
        prediction = np.asarray(predictor.predict(frame))
        if task == "regression":
            prediction = prediction.astype(np.float64)
        score = np.full(len(frame), np.nan)
    out["prediction"] = np.asarray(prediction)
    out["score"] = np.asarray(score, dtype=np.float64)
    for name, values in columns.items():
        out[name] = values
    out["model_name"] = predictor.name
    out["model_version"] = np.int64(predictor.version)
    return out
