"""``raymlops train CONFIG.yaml``: a search config plus the data window it trains on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError as PydanticError

from raymlops.config import Settings
from raymlops.exceptions import ConfigError, ValidationError
from raymlops.training.automl import SearchConfig, SearchResult, preload_search_driver, run_search

__all__ = ["DataWindow", "TrainConfig", "load_train_config", "split_by_time", "train"]


class DataWindow(BaseModel):
    """Which months of the flights example to use; the newest ``valid_fraction`` validates."""

    model_config = ConfigDict(extra="forbid")

    months: list[int] = Field(default_factory=lambda: [1, 2], description="Months of 2013 (1-12).")
    valid_fraction: float = Field(0.25, gt=0, lt=1, description="Newest share of rows that validates.")


class TrainConfig(SearchConfig):
    data: DataWindow = Field(default_factory=DataWindow, description="Training window.")


def load_train_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file {path}", field="config")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return TrainConfig.model_validate(raw)
    except (yaml.YAMLError, PydanticError) as exc:
        raise ConfigError(f"{path}: {exc}", field="config") from None


def split_by_time(frame: pd.DataFrame, valid_fraction: float, column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows before the cut train, rows at or after it validate: no future in training."""
    if frame.empty:
        raise ValidationError("the training window has no rows", field="data")
    ordered = frame.sort_values(column, kind="stable")
    cut = ordered[column].iloc[int(len(ordered) * (1 - valid_fraction))]
    return ordered[ordered[column] < cut], ordered[ordered[column] >= cut]


def window_bounds(frame: pd.DataFrame, column: str) -> tuple[str, str]:
    return frame[column].min().isoformat(), frame[column].max().isoformat()


def train(config: TrainConfig, settings: Settings, on_trial: Any = None,
          parent_version: int | None = None) -> SearchResult:
    """Point-in-time training data from the feature store, then the search."""
    from raymlops.features.client import FeatureStoreClient
    from raymlops.training.flights import ENTITY_TIMESTAMP, SERVICE, flights_frame, train_data

    preload_search_driver(settings)  # overlaps with the feature retrieval
    features = FeatureStoreClient.connect(settings).historical_features(SERVICE)
    frame = flights_frame(features, config.data.months)
    train_rows, valid_rows = split_by_time(frame, config.data.valid_fraction, ENTITY_TIMESTAMP)
    search = SearchConfig.model_validate(config.model_dump(exclude={"data"}))
    return run_search(
        search, train_data(train_rows, valid_rows), settings=settings,
        data_window=window_bounds(frame, ENTITY_TIMESTAMP), feature_views=features.view_versions(),
        register_kwargs={"feature_service": SERVICE, "entity_timestamp": ENTITY_TIMESTAMP},
        on_trial=on_trial, parent_version=parent_version,
    )
