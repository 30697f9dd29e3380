"""The flights example as training data: rows by month, point-in-time features, a time split.

A model of "departure delayed by more than 15 minutes" sees what is known when the flight is
scheduled: the flight's own fields (hour, distance, carrier, origin), the weather at its
origin as of the scheduled departure, and its plane (FeatureService ``delay_model``). Train and
validation windows are whole months in time order, so nothing from the future leaks in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from raymlops.training.families import TrainData

__all__ = ["CATEGORICAL", "ENTITY_TIMESTAMP", "LABEL", "OWN_NUMERIC", "SERVICE", "flights_frame",
           "model_inputs", "train_data"]

SERVICE = "delay_model"
ENTITY_TIMESTAMP = "sched_dep_ts"
LABEL = "delayed"
OWN_NUMERIC = ["hour", "distance"]
CATEGORICAL = ["carrier", "origin"]
ENTITY_COLUMNS = ["origin", "tailnum", ENTITY_TIMESTAMP]


def flights_frame(features: Any, months: Iterable[int] | int) -> pd.DataFrame:
    """Flights of ``months`` (cancelled ones dropped: no label) with the service's features.

    ``features`` is a FeatureStoreClient or a resolved ``HistoricalFeatures``.
    """
    from raymlops.datasets.flights import load_flights, month_slice

    table = month_slice(load_flights(), months)
    columns = list(dict.fromkeys([*ENTITY_COLUMNS, *OWN_NUMERIC, *CATEGORICAL, LABEL, "month"]))
    frame = table.select(columns).to_pandas()
    frame = frame[frame[LABEL].notna()].sort_values(ENTITY_TIMESTAMP, kind="stable").reset_index(drop=True)
    if hasattr(features, "join"):
        return features.join(frame, ENTITY_TIMESTAMP)
    return features.get_historical_features(SERVICE, frame, ENTITY_TIMESTAMP, engine="local")


def feature_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) model inputs: own fields + every ``view__feature`` column."""
    numeric = OWN_NUMERIC + [c for c in frame.columns if "__" in c]
    return numeric, list(CATEGORICAL)


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with model inputs as float64 numbers and plain-object categories (other
    columns, such as the label, kept): what every family was trained on."""
    numeric, categorical = feature_columns(frame)
    out = frame.copy()
    out[numeric] = out[numeric].astype("float64")
    out[categorical] = out[categorical].astype(object)
    return out


def train_data(train: pd.DataFrame, valid: pd.DataFrame) -> TrainData:
    """Model inputs as float64 numbers + string categories; labels as 0/1."""
    numeric, categorical = feature_columns(train)

    def inputs(frame: pd.DataFrame) -> pd.DataFrame:
        return model_inputs(frame)[categorical + numeric]

    return TrainData(inputs(train), train[LABEL].astype(np.int64).to_numpy(),
                     inputs(valid), valid[LABEL].astype(np.int64).to_numpy(), numeric, categorical)
