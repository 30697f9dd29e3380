"""A spec's labelled rows by period, with their features, as model inputs.

:class:`LabelledData` is what training and continuous training read: the label source
(re-read by :meth:`refresh` when new labels may have arrived), cut into periods in the
spec's time zone; the feature service, if any, joined point-in-time (resolved once, joined
per period and cached); and the typing every model family was trained with (inputs as
float64 numbers or object categories, labels as the task needs). Nothing here knows a data
set: the spec says which columns mean what.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from raymlops.exceptions import ConfigError, ValidationError
from raymlops.training.periods import closed_periods, parse_period, period_index

__all__ = ["LabelledData", "split_by_time", "window_bounds"]


def split_by_time(frame: pd.DataFrame, valid_fraction: float, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows before the cut train, rows at or after it validate: no future in training."""
    if frame.empty:
        raise ValidationError("the training window has no rows", field="data")
    ordered = frame.sort_values(column, kind="stable")
    cut = ordered[column].iloc[int(len(ordered) * (1 - valid_fraction))]
    return ordered[ordered[column] < cut], ordered[ordered[column] >= cut]


def window_bounds(frame: pd.DataFrame, column: str) -> tuple[str, str]:
    return frame[column].min().isoformat(), frame[column].max().isoformat()


class LabelledData:
    """The spec's labelled rows, by period, features joined, typed for the models.

    ``features`` is a resolved ``HistoricalFeatures`` (or a FeatureStoreClient to resolve the
    spec's service from); without a service in the spec it is not needed.
    """

    def __init__(self, spec: Any, features: Any = None, rows: pd.DataFrame | None = None) -> None:
        self.spec = spec
        self.timestamp = spec.labels.timestamp
        self.label = spec.labels.label
        self._features = features
        self._rows = rows
        self._joined: dict[pd.Period, pd.DataFrame] = {}
        self._kinds: tuple[list[str], list[str]] | None = None

    # -- the source ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the label source again on next use (new labels may have arrived)."""
        self._rows = None
        self._joined.clear()

    @property
    def rows(self) -> pd.DataFrame:
        """Every labelled row (checked, UTC, time order), with its ``_period``."""
        if self._rows is None:
            from raymlops.training.labels import read_labels

            self._rows = read_labels(self.spec)
        if "_period" not in self._rows.columns:
            rows = self._rows.copy()
            rows["_period"] = period_index(rows[self.timestamp], self.spec.period, self.spec.timezone)
            self._rows = rows
        return self._rows

    def periods(self) -> list[pd.Period]:
        """Periods that have at least one labelled row, in time order."""
        return sorted(self.rows["_period"].unique())

    def closed(self, now: pd.Timestamp | None = None, grace: int = 0) -> list[pd.Period]:
        """Periods with labels whose end (plus ``grace`` periods) has passed."""
        rows = self.rows
        newest = rows[self.timestamp].max() if len(rows) else None
        return closed_periods(self.periods(), newest, self.spec.timezone, now=now, grace=grace)

    def counts(self) -> dict[str, int]:
        """Labelled rows per period name (what a decision records, to notice late labels)."""
        return {str(p): int(n) for p, n in self.rows["_period"].value_counts(sort=False).items()}

    def parse(self, name: str | pd.Period) -> pd.Period:
        return parse_period(name, self.spec.period)

    def periods_in(self, window: list[str]) -> list[pd.Period]:
        """Periods a lineage data window (ISO start, ISO end) covers, in the spec's zone."""
        start, end = (pd.Timestamp(t) for t in window[:2])
        stamps = pd.Series([start, end])
        stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps
        first, last = period_index(stamps, self.spec.period, self.spec.timezone)
        return list(pd.period_range(first, last, freq=first.freq))

    # -- rows with features ------------------------------------------------------------------

    def _service(self) -> Any:
        if self.spec.features.service is None:
            return None
        if self._features is None:  # the caller connects (workflow.labelled_data): no platform import here
            raise ConfigError(f"the spec names feature service {self.spec.features.service!r}: give LabelledData "
                              "a FeatureStoreClient or the service's HistoricalFeatures", field="features.service")
        if not hasattr(self._features, "join"):  # a client: resolve the service once
            self._features = self._features.historical_features(self.spec.features.service)
        return self._features

    def view_versions(self) -> dict[str, int]:
        service = self._service()
        return service.view_versions() if service is not None else {}

    def frame(self, periods: list[Any]) -> pd.DataFrame:
        """Labelled rows of ``periods`` (names or Periods) with their features, time order."""
        wanted = [self.parse(p) for p in periods]
        rows = self.rows
        for period in wanted:
            if period not in self._joined:
                part = rows[rows["_period"] == period].drop(columns="_period").reset_index(drop=True)
                service = self._service()
                self._joined[period] = part if service is None else service.join(part, self.timestamp)
        parts = [self._joined[p] for p in wanted]
        if not parts:
            return rows.head(0).drop(columns="_period")
        return pd.concat(parts, ignore_index=True).sort_values(self.timestamp, kind="stable").reset_index(drop=True)

    # -- model inputs ----------------------------------------------------------------------------

    def feature_columns(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        """(numeric, categorical) inputs: the spec's own columns, then the service's outputs.

        Text columns and the spec's ``categorical`` are categories; numbers and booleans are
        numeric. Decided on the first frame seen and kept, so every window types alike.
        """
        if self._kinds is None:
            service = self._service()
            own = list(self.spec.features.columns)
            joined = list(service.output_columns) if service is not None else []
            forced = set(self.spec.features.categorical)
            numeric, categorical = [], []
            for column in [*own, *joined]:
                values = frame[column]
                if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values):
                    raise ValidationError(f"input column {column!r} holds times; derive numbers from it "
                                          "(hour, day of week...) in the label table", field="features.columns")
                if column not in forced and (pd.api.types.is_numeric_dtype(values)
                                             or pd.api.types.is_bool_dtype(values)):
                    numeric.append(column)
                else:
                    categorical.append(column)
            self._kinds = (numeric, categorical)
        return list(self._kinds[0]), list(self._kinds[1])

    def model_inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame with inputs as float64 numbers and object categories (other columns, the
        label among them, kept): what every family was trained on."""
        numeric, categorical = self.feature_columns(frame)
        out = frame.copy()
        if numeric:
            out[numeric] = out[numeric].astype("float64")
        if categorical:
            out[categorical] = out[categorical].astype(object)
        return out

    def inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Only the model's input columns, typed (categories first, then numbers)."""
        numeric, categorical = self.feature_columns(frame)
        return self.model_inputs(frame)[categorical + numeric]

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        """The label column as the task needs it: 0/1 ints for a boolean binary label,
        float64 for regression, the values themselves otherwise."""
        y = frame[self.label]
        if self.spec.task == "regression":
            if not pd.api.types.is_numeric_dtype(y):
                raise ValidationError(f"label column {self.label!r} is not numeric; a regression needs "
                                      "numbers", field="labels.label")
            return y.astype("float64").to_numpy()
        if pd.api.types.is_bool_dtype(y):
            return y.astype(np.int64).to_numpy()
        if pd.api.types.is_numeric_dtype(y):
            return y.to_numpy()
        return y.astype(object).to_numpy()

    def train_data(self, train: pd.DataFrame, valid: pd.DataFrame) -> Any:
        """TrainData of the spec's task from two frames of this data."""
        from raymlops.training.families import TrainData

        numeric, categorical = self.feature_columns(train)
        y_train = self.labels(train)
        if self.spec.task != "regression":
            classes = pd.unique(pd.Series(y_train))
            need = "2" if self.spec.task == "binary" else "2 or more"
            if len(classes) < 2 or (self.spec.task == "binary" and len(classes) > 2):
                raise ValidationError(f"a {self.spec.task} task needs {need} label values in the training "
                                      f"rows; column {self.label!r} has {len(classes)}", field="labels.label")
        return TrainData(self.inputs(train), y_train, self.inputs(valid), self.labels(valid),
                         numeric, categorical, task=self.spec.task)

    def drift_columns(self) -> list[str]:
        """The model inputs (what drift is measured on unless the spec names others)."""
        if self.spec.ct.drift_columns:
            return list(self.spec.ct.drift_columns)
        sample = self.frame(self.periods()[:1])
        numeric, categorical = self.feature_columns(sample)
        return [*categorical, *numeric]
