"""A FeatureService resolved once into tables, joinable many times (batch predict, training).

``FeatureStoreClient.get_historical_features`` resolves a service and joins it in one call.
Batch prediction joins the same service onto thousands of batches in several worker
processes; resolving the service and reading the offline Parquet once per batch would
dominate the cost. A :class:`HistoricalFeatures` is that resolution, done once: the views'
definitions and their offline rows as pandas frames. It pickles (Ray puts it in the object
store once and every worker maps it), and ``join`` is the same point-in-time join the
client uses, so batch and training features are identical by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from raymlops.features.definitions import Entity, FeatureView
from raymlops.features.pit import output_columns, point_in_time_join

__all__ = ["HistoricalFeatures", "ViewRows"]


@dataclass(frozen=True)
class ViewRows:
    """One view of a service: its definition, the features picked and its offline rows."""

    view: FeatureView
    entity: Entity
    version: int
    features: list[str]
    rows: pd.DataFrame

    @property
    def output_columns(self) -> list[str]:
        return output_columns(self.features, self.view.name)


@dataclass(frozen=True)
class HistoricalFeatures:
    """The resolved service; ``join(entity_df, timestamp_column)`` adds its features."""

    service: str
    views: list[ViewRows] = field(default_factory=list)

    @classmethod
    def from_plan(cls, plan: dict[str, Any]) -> HistoricalFeatures:
        """Read every view's offline rows named by the feature store's ``resolve_service``."""
        from raymlops.features.offline import OfflineStore
        from raymlops.storage import Storage

        views = []
        for item in plan["views"]:
            view = FeatureView.model_validate(item["view"])
            entity = Entity.model_validate(item["entity"])
            store = OfflineStore(Storage.open(item["offline"]))
            rows = store.read(view, entity, item["version"]).to_pandas()
            views.append(ViewRows(view, entity, int(item["version"]), list(item["features"]), rows))
        return cls(plan["service"], views)

    @property
    def join_keys(self) -> list[str]:
        """Entity columns the caller must provide (in order of first use)."""
        keys: list[str] = []
        for v in self.views:
            keys.extend(k for k in v.entity.join_keys if k not in keys)
        return keys

    @property
    def output_columns(self) -> list[str]:
        return [c for v in self.views for c in v.output_columns]

    def view_versions(self) -> dict[str, int]:
        return {v.view.name: v.version for v in self.views}

    def join(self, entity_df: pd.DataFrame, timestamp_column: str) -> pd.DataFrame:
        """Point-in-time-correct features for each row (rows, order and index kept)."""
        result = entity_df
        for v in self.views:
            result = point_in_time_join(
                result, v.rows, join_keys=list(v.entity.join_keys), feature_columns=v.features,
                entity_timestamp=timestamp_column, feature_timestamp=v.view.event_timestamp,
                created_timestamp=v.view.created_timestamp, ttl=v.view.ttl, prefix=v.view.name,
            )
        return result
