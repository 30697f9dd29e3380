"""FeatureStoreClient: the Python API over the feature store actor.

Writes and online reads go through the actor (one writer, one online store); historical
retrieval reads the offline Parquet directly in the caller, by its URI under the storage root
(a local folder on one host, S3 or a shared mount on a cluster: the guard rails of
:mod:`raymlops.shared_state` refuse anything else there), and joins point-in-time correctly,
so large training sets never pass through the actor.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from raymlops._actor_client import ActorClient
from raymlops.features.actor import FEATURES_ACTOR
from raymlops.features.definitions import FeatureRepo, load_repo
from raymlops.features.retrieval import HistoricalFeatures

__all__ = ["FeatureStoreClient"]


class FeatureStoreClient(ActorClient):
    """Talks to the ``raymlops-features`` actor; create with ``FeatureStoreClient.connect()``."""

    ACTOR = FEATURES_ACTOR
    DEFAULT_TIMEOUT = 600  # materialization of a large view takes a while

    def apply(self, repo: FeatureRepo | str | Path) -> list[dict[str, Any]]:
        if not isinstance(repo, FeatureRepo):
            repo = load_repo(repo)
        return self._call("apply", repo.model_dump())

    def list(self) -> list[dict[str, Any]]:
        return self._call("list_definitions")

    def ingest(self, view: str, rows: pd.DataFrame | pa.Table) -> int:
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        return self._call("ingest", view, table)

    def push(self, view: str, rows: pd.DataFrame | pa.Table, to_offline: bool = True) -> dict[str, int]:
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        return self._call("push", view, table, to_offline)

    def materialize(self, start: dt.datetime | None = None, end: dt.datetime | None = None,
                    views: list[str] | None = None) -> list[dict[str, Any]]:
        return self._call("materialize", start, end, views)

    def get_online_features(self, service: str, entity_rows: list[dict[str, Any]],
                            now: dt.datetime | None = None) -> dict[str, Any]:
        from raymlops.features.actor import _us

        return self._call("get_online_features", service, entity_rows,
                          _us(now) if now is not None else None)

    def historical_features(self, service: str) -> HistoricalFeatures:
        """The service resolved once (definitions + offline rows), to join many batches."""
        return HistoricalFeatures.from_plan(self._call("resolve_service", service))

    def get_historical_features(
        self,
        service: str,
        entity_df: pd.DataFrame,
        timestamp_column: str = "event_timestamp",
        engine: str = "auto",
        distributed_above_rows: int = 500_000,
    ) -> pd.DataFrame:
        """Point-in-time-correct features of ``service`` for each row of ``entity_df``.

        ``engine``: "local" joins in this process, "ray" hash-shuffles both sides over the
        cluster (Ray tasks), "auto" picks Ray above ``distributed_above_rows`` entity rows.
        Both give identical results (tested).
        """
        from raymlops.exceptions import ValidationError

        if engine not in ("auto", "local", "ray"):
            raise ValidationError(f"engine must be auto, local or ray, not {engine!r}", field="engine")
        use_ray = engine == "ray" or (engine == "auto" and len(entity_df) > distributed_above_rows)
        features = self.historical_features(service)
        if not use_ray:
            return features.join(entity_df, timestamp_column)
        import ray.data

        from raymlops.features.pit_ray import point_in_time_join_ray

        result = entity_df
        for v in features.views:
            joined = point_in_time_join_ray(
                ray.data.from_pandas(result), v.rows, join_keys=list(v.entity.join_keys),
                feature_columns=v.features, entity_timestamp=timestamp_column,
                feature_timestamp=v.view.event_timestamp,
                created_timestamp=v.view.created_timestamp, ttl=v.view.ttl, prefix=v.view.name,
            )
            result = joined.to_pandas()
            result.index = entity_df.index
        return result
