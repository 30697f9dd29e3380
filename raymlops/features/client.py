"""FeatureStoreClient: the Python API over the feature store actor.

Writes and online reads go through the actor (one writer, one online store); historical
retrieval reads the offline Parquet directly in the caller, by its URI under the storage root
(a local folder on one host, S3 or a shared mount on a cluster: the guard rails of
:mod:`raymlops.shared_state` refuse anything else there), and joins point-in-time correctly,
so large training sets never pass through the actor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from raymlops._actor_client import ActorClient
from raymlops.features.actor import FEATURES_ACTOR
from raymlops.features.definitions import FeatureRepo, load_repo
from raymlops.features.retrieval import HistoricalFeatures
from raymlops.features.retrieval_ray import BROADCAST_MAX_BYTES, RetrievalResult

if TYPE_CHECKING:
    import ray.data

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
        entity_df: pd.DataFrame | ray.data.Dataset,
        timestamp_column: str = "event_timestamp",
        engine: str = "auto",
        distributed_above_rows: int = 500_000,
        broadcast_max_bytes: int = BROADCAST_MAX_BYTES,
    ) -> pd.DataFrame | ray.data.Dataset:
        """Point-in-time-correct features of ``service`` for each row of ``entity_df``.

        A DataFrame gets a DataFrame back (rows, order and index kept). ``engine``: "local"
        joins in this process, "ray" joins its blocks on the cluster, "auto" picks Ray above
        ``distributed_above_rows`` entity rows. A Ray Dataset gets a lazy Dataset back, joined
        block by block as it is consumed (``engine`` must be "auto" or "ray"): the way to
        retrieve more rows than one process holds. Views whose offline rows exceed
        ``broadcast_max_bytes`` are shuffled by key instead of broadcast
        (:mod:`raymlops.features.retrieval_ray`). Every engine gives identical rows (tested).
        """
        from raymlops.exceptions import ValidationError
        from raymlops.features import retrieval_ray

        if engine not in ("auto", "local", "ray"):
            raise ValidationError(f"engine must be auto, local or ray, not {engine!r}", field="engine")
        features = self.historical_features(service)
        if not isinstance(entity_df, pd.DataFrame):
            if engine == "local":
                raise ValidationError("a Ray Dataset is joined on the cluster: engine must be "
                                      "auto or ray, not local", field="engine")
            return retrieval_ray.join_dataset(features, entity_df, timestamp_column,
                                              broadcast_max_bytes=broadcast_max_bytes)
        use_ray = engine == "ray" or (engine == "auto" and len(entity_df) > distributed_above_rows)
        if not use_ray:
            return features.join(entity_df, timestamp_column)
        return retrieval_ray.join_frame(features, entity_df, timestamp_column,
                                        broadcast_max_bytes=broadcast_max_bytes)

    def write_historical_features(
        self,
        service: str,
        entities: str | Path,
        output: str | Path,
        timestamp_column: str = "event_timestamp",
        *,
        overwrite: bool = False,
        broadcast_max_bytes: int = BROADCAST_MAX_BYTES,
        progress: Callable[[int, int], Any] | None = None,
    ) -> RetrievalResult:
        """Entity rows read from Parquet/CSV files (a local path or ``s3://`` URI), joined with
        ``service``'s features on the cluster, written as Parquet to ``output``: streamed block
        by block, so memory does not grow with the number of rows. Published whole or not at
        all; an existing output is refused unless ``overwrite``. ``progress(rows_done,
        rows_total)`` is called as parts finish."""
        from raymlops.features import retrieval_ray
        from raymlops.shared_state import require_reachable

        require_reachable(self.settings, {"entities": str(entities), "output": str(output)})
        return retrieval_ray.write_historical(
            self.historical_features(service), entities, output, timestamp_column,
            overwrite=overwrite, broadcast_max_bytes=broadcast_max_bytes, progress=progress)
