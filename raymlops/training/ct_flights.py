"""Continuous training wired to the flights example: months are the periods."""

from __future__ import annotations

from typing import Any

import pandas as pd

from raymlops.config import Settings
from raymlops.training.automl import SearchConfig, SearchResult, preload_search_driver, run_search
from raymlops.training.ct import ContinuousTrainer, CTPolicy
from raymlops.training.flights import (
    CATEGORICAL,
    ENTITY_TIMESTAMP,
    LABEL,
    SERVICE,
    feature_columns,
    flights_frame,
    model_inputs,
    train_data,
)

__all__ = ["flights_trainer", "months_in"]


def months_in(window: list[str]) -> list[int]:
    """Months of 2013 a lineage data window (ISO start, ISO end, UTC) covers.

    Flights belong to their *local* month (New York): the last February departure, at 23:59
    local, is 04:59 UTC on March 1st, which must not pull March into the window.
    """
    from raymlops.datasets.flights import LOCAL_TZ

    start, end = (pd.Timestamp(t).tz_convert(LOCAL_TZ) for t in window[:2])
    return list(range(start.month, end.month + 1))


def flights_trainer(policy: CTPolicy, settings: Settings, features: Any = None) -> ContinuousTrainer:
    """A ContinuousTrainer over monthly flights (features resolved once, months cached)."""
    preload_search_driver(settings)  # overlaps with the feature retrieval and the first cycle's drift
    if features is None:
        from raymlops.features.client import FeatureStoreClient

        features = FeatureStoreClient.connect(settings).historical_features(SERVICE)
    cache: dict[int, pd.DataFrame] = {}

    def data(months: list[int]) -> pd.DataFrame:
        for m in months:
            if m not in cache:
                cache[m] = flights_frame(features, m)
        return pd.concat([cache[m] for m in months], ignore_index=True)

    def search(warm: list[dict[str, Any]], train_rows: pd.DataFrame, valid_rows: pd.DataFrame,
               parent_version: int | None, refit_rows: pd.DataFrame | None = None) -> SearchResult:
        from raymlops.training.train_config import window_bounds

        config = SearchConfig(name=policy.model, families=policy.families, num_samples=policy.trials,
                              max_steps=policy.max_steps, warm_start=warm, alias="challenger",
                              experiment="raymlops-ct-training")
        if refit_rows is None:
            refit_rows = pd.concat([train_rows, valid_rows], ignore_index=True)
        return run_search(config, train_data(train_rows, valid_rows), settings=settings,
                          refit_data=train_data(refit_rows, valid_rows),
                          data_window=window_bounds(refit_rows, ENTITY_TIMESTAMP),
                          feature_views=features.view_versions(), parent_version=parent_version,
                          register_kwargs={"feature_service": SERVICE, "entity_timestamp": ENTITY_TIMESTAMP})

    sample = data([1]).head(1)
    numeric, _ = feature_columns(sample)
    return ContinuousTrainer(policy, settings, data, search, label=LABEL, timestamp=ENTITY_TIMESTAMP,
                             drift_columns=[*CATEGORICAL, *numeric], periods_in=months_in,
                             prepare=model_inputs)
