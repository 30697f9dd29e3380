"""The FeatureStore actor: definitions, ingestion, materialization, pushes, online reads.

One named, detached actor (``raymlops-features``) so every driver and Serve replica sees the
same store. Durable state lives outside it: definitions in SQL, offline rows in Parquet, online
rows in the log/Redis backend, materialization watermarks in a small JSON file written
atomically. A restarted actor rebuilds everything from those.

Online reads apply the view's TTL: a value older than the TTL comes back null and is listed
in ``expired`` (Feast returns the stale value silently, feast#6821).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import deque
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from raymlops.config import load_settings
from raymlops.exceptions import ValidationError
from raymlops.features.definitions import Entity, FeatureRepo, FeatureService, FeatureView
from raymlops.features.definitions_store import DefinitionsStore
from raymlops.features.freshness import FreshnessTracker
from raymlops.features.offline import OfflineStore, validate_rows
from raymlops.features.online import Key, OnlineRow, make_backend
from raymlops.metrics import record

__all__ = ["FEATURES_ACTOR", "FeatureStore"]

FEATURES_ACTOR = "raymlops-features"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _us(value: Any) -> int:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValidationError(f"time {value} has no timezone; pass UTC times", field="time")
        return int((value - _EPOCH).total_seconds() * 1_000_000)
    return int(value)


def _table_rows(table: pa.Table, view: FeatureView, entity: Entity) -> list[tuple[Key, OnlineRow]]:
    """Arrow rows -> (key, (event_us, created_us, values)) for the online backend."""
    keys = list(entity.join_keys)
    event = table.column(view.event_timestamp).cast(pa.int64()).to_pylist()
    created = (table.column(view.created_timestamp).cast(pa.int64()).to_pylist()
               if view.created_timestamp else event)
    key_cols = [table.column(k).to_pylist() for k in keys]
    feat_cols = {f: table.column(f).to_pylist() for f in view.feature_names}
    out = []
    for i in range(table.num_rows):
        values = {f: col[i] for f, col in feat_cols.items()}
        out.append((tuple(c[i] for c in key_cols), (event[i], created[i], values)))
    return out


class FeatureStore:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = load_settings(**{k: v for k, v in settings.items() if v is not None})
        self.definitions = DefinitionsStore(self.settings.feature_registry_uri)
        self.offline = OfflineStore(self.settings.storage.child("offline"))
        # The 'log' online store is this actor's own files, on its node (the head: platform
        # actors are pinned there); on a cluster the shared one is the 'redis' backend.
        online_dir = self.settings.local_dir / "online"
        self.online = make_backend(
            self.settings.online_store, path=online_dir, redis_url=self.settings.redis_url,
            prefix=f"{self.settings.redis_prefix}:{self.settings.namespace}",
        )
        online_dir.mkdir(parents=True, exist_ok=True)
        self._watermarks: dict[str, dict[str, int]] = self.definitions.watermarks()
        # Change feed for replica-local caches: (seq, online view, key, row). A restarted
        # actor has a new epoch, which tells caches to take a fresh snapshot.
        self._epoch = uuid.uuid4().hex
        self._seq = 0
        self._changes: deque[tuple[int, str, Key, OnlineRow]] = deque(maxlen=200_000)
        self._changed = threading.Condition()
        self.freshness = FreshnessTracker(self._newest_event_per_view)

    # -- definitions --------------------------------------------------------------------------

    def ping(self) -> str:
        return "ok"

    def _newest_event_per_view(self) -> list[tuple[str, int]]:
        """Newest event time in each view's online rows (seeds staleness after a restart)."""
        out = []
        for d in self.definitions.list():
            if d.kind == "feature_view":
                rows = self.online.scan(self._online_name(d.name, d.version))
                if rows:
                    out.append((self._online_name(d.name, d.version),
                                max(r[0] for r in rows.values())))
        return out

    def apply(self, repo: dict[str, Any]) -> list[dict[str, Any]]:
        changes = self.definitions.apply(FeatureRepo.model_validate(repo))
        return [c.__dict__ for c in changes]

    def list_definitions(self) -> list[dict[str, Any]]:
        return [
            {"kind": d.kind, "name": d.name, "version": d.version, "spec": d.spec.model_dump(),
             "online_rows": self.online.count(self._online_name(d.name, d.version))
             if d.kind == "feature_view" else None}
            for d in self.definitions.list()
        ]

    def _view(self, name: str, version: int | None = None) -> tuple[FeatureView, Entity, int]:
        stored = self.definitions.get("feature_view", name, version)
        entity = self.definitions.get("entity", stored.spec.entity).spec
        return stored.spec, entity, stored.version

    @staticmethod
    def _online_name(view: str, version: int) -> str:
        return f"{view}__v{version}"

    # -- writes -----------------------------------------------------------------------------

    def ingest(self, view_name: str, table: pa.Table) -> int:
        """Validate then append rows to the offline store (nothing written on error)."""
        view, entity, version = self._view(view_name)
        return self.offline.ingest(view, entity, version, table)

    def push(self, view_name: str, table: pa.Table, to_offline: bool = True) -> dict[str, int]:
        """Streaming write: straight to the online store (newest wins), and offline too."""
        view, entity, version = self._view(view_name)
        table = validate_rows(table, view, entity)
        changed = self._write_online(self._online_name(view.name, version), _table_rows(table, view, entity))
        written = self.offline.ingest(view, entity, version, table) if to_offline else 0
        return {"rows": table.num_rows, "online_changed": changed, "offline_written": written}

    def materialize(
        self, start: dt.datetime | None = None, end: dt.datetime | None = None,
        views: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Offline -> online for [start, end); incremental: start defaults to the last end."""
        end = end or dt.datetime.now(dt.UTC)
        names = views or [d.name for d in self.definitions.list("feature_view")]
        report = []
        for name in names:
            view, entity, version = self._view(name)
            mark = self._watermarks.get(name, {})
            since = start
            if since is None and mark.get("version") == version and "end_us" in mark:
                since = _EPOCH + dt.timedelta(microseconds=mark["end_us"])
            table = self._latest_offline_rows(view, entity, version, since, end)
            changed = self._write_online(self._online_name(name, version), _table_rows(table, view, entity))
            self._watermarks[name] = {"version": version, "end_us": _us(end)}
            report.append({"view": name, "version": version, "latest_rows": table.num_rows,
                           "online_changed": changed,
                           "start": since.isoformat() if since else None, "end": end.isoformat()})
        self._save_watermarks()
        return report

    def _write_online(self, online_view: str, rows: list[tuple[Key, OnlineRow]]) -> int:
        """Durable write first, then publish to the change feed (caches apply newest-wins)."""
        changed = self.online.write(online_view, rows)
        self.freshness.written(online_view, (row[0] for _, row in rows))
        if changed:
            with self._changed:
                for key, row in rows:
                    self._seq += 1
                    self._changes.append((self._seq, online_view, key, row))
                self._changed.notify_all()
        return changed

    def service_snapshot(self, service: str) -> dict[str, Any]:
        """All online rows a service needs, with the feed position to follow from."""
        plan = self.resolve_service(service)
        with self._changed:
            epoch, seq = self._epoch, self._seq
        views = {}
        for item in plan["views"]:
            name = self._online_name(item["view"]["name"], item["version"])
            views[name] = {
                "view": item["view"]["name"],
                "keys": list(item["entity"]["join_keys"]),
                "features": item["features"],
                "ttl_us": int(item["view"]["ttl_seconds"] * 1_000_000) if item["view"]["ttl_seconds"] else None,
                "rows": list(self.online.scan(name).items()),
            }
        return {"epoch": epoch, "seq": seq, "views": views}

    def changes_since(self, epoch: str, seq: int, timeout_s: float = 10.0) -> dict[str, Any]:
        """Long-poll the change feed; ``reset`` when the caller must re-snapshot."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                if epoch != self._epoch or (self._changes and self._changes[0][0] > seq + 1 and seq < self._seq):
                    return {"epoch": self._epoch, "seq": self._seq, "reset": True, "changes": []}
                if self._seq > seq:
                    out = [c for c in self._changes if c[0] > seq]
                    return {"epoch": epoch, "seq": self._seq, "reset": False, "changes": out}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return {"epoch": epoch, "seq": seq, "reset": False, "changes": []}
                self._changed.wait(remaining)

    def _latest_offline_rows(
        self, view: FeatureView, entity: Entity, version: int,
        since: dt.datetime | None, end: dt.datetime,
    ) -> pa.Table:
        """Newest row per key in [since, end) of a view's offline Parquet files.

        Below ``materialize_local_below_bytes`` of files this actor scans them itself; above,
        Ray Data reads them across the cluster and each block keeps its newest row per key
        (``map_batches``), so what comes back here is at most keys x blocks rows, whatever the
        size of the offline table. Both paths give the same rows (tested).
        """
        from raymlops.features.offline import view_schema

        dataset = self.offline.dataset(view, entity, version)
        schema = view_schema(view, entity)
        if dataset is None:
            return schema.empty_table()
        ts_type = schema.field(view.event_timestamp).type
        end_s = pa.scalar(end.astimezone(dt.UTC), type=ts_type)
        since_s = pa.scalar(since.astimezone(dt.UTC), type=ts_type) if since else None
        lo = since.astimezone(dt.UTC).date().isoformat() if since else ""
        hi = end.astimezone(dt.UTC).date().isoformat()
        files = [  # partition pruning on the date folders
            f for f in self.offline.files(view.name, version)
            if lo <= f.rsplit("/", 2)[-2].removeprefix("date=") <= hi
        ]
        if not files:
            return schema.empty_table()
        fs = self.offline.filesystem
        if sum(i.size for i in fs.get_file_info(files)) < self.settings.materialize_local_below_bytes:
            # Small views: one in-process pyarrow scan takes well under a second, while a Ray
            # Data job pays seconds of start-up (planning, read tasks, workers) on a small box.
            ts = pads.field(view.event_timestamp)
            keep = ts < end_s if since_s is None else (ts < end_s) & (ts >= since_s)
            table = pads.dataset(files, format="parquet", schema=schema,
                                 filesystem=fs).to_table(filter=keep)
            return _latest_per_key(table, view, entity)
        import ray.data

        # Many small daily files: group them into a few read tasks, not one task per file.
        ds = ray.data.read_parquet(files, columns=schema.names, filesystem=fs,
                                   override_num_blocks=min(len(files), 16))

        def newest(batch: pa.Table) -> pa.Table:
            batch = batch.cast(schema)
            times = batch.column(view.event_timestamp)
            keep = pc.less(times, end_s)
            if since_s is not None:
                keep = pc.and_(keep, pc.greater_equal(times, since_s))
            return _latest_per_key(batch.filter(keep), view, entity)

        parts = ds.map_batches(newest, batch_format="pyarrow", batch_size=None).take_all()
        if not parts:
            return schema.empty_table()
        table = pa.Table.from_pylist(parts, schema=schema)
        return _latest_per_key(table, view, entity)

    def _save_watermarks(self) -> None:
        self.definitions.set_watermarks(self._watermarks)

    # -- reads ------------------------------------------------------------------------------

    def get_online_features(
        self, service: str, entity_rows: list[dict[str, Any]], now_us: int | None = None
    ) -> dict[str, Any]:
        """Features of ``service`` for each entity row; expired values null and flagged."""
        started = time.perf_counter()
        spec: FeatureService = self.definitions.get("feature_service", service).spec
        now_us = now_us if now_us is not None else _us(dt.datetime.now(dt.UTC))
        results: list[dict[str, Any]] = [dict(row) for row in entity_rows]
        expired: list[list[str]] = [[] for _ in entity_rows]
        misses: dict[str, int] = {}
        for view_name, picked in spec.selection().items():
            view, entity, version = self._view(view_name)
            names = picked or view.feature_names
            keys_missing = [k for k in entity.join_keys if any(k not in r for r in entity_rows)]
            if keys_missing:
                raise ValidationError(
                    f"entity rows lack join keys {keys_missing} needed by view {view_name!r}",
                    field="entity_rows", missing=keys_missing,
                )
            keys = [tuple(r[k] for k in entity.join_keys) for r in entity_rows]
            stored = self.online.read(self._online_name(view_name, version), keys)
            ttl_us = int(view.ttl_seconds * 1_000_000) if view.ttl_seconds else None
            for i, row in enumerate(stored):
                stale = row is not None and ttl_us is not None and now_us - row[0] > ttl_us
                for feature in names:
                    column = f"{view_name}__{feature}"
                    results[i][column] = None if (row is None or stale) else row[2].get(feature)
                    if stale:
                        expired[i].append(column)
                misses[view_name] = misses.get(view_name, 0) + (1 if stale else 0)
        for view_name, count in misses.items():
            record("raymlops_feature_ttl_misses_total", count, view=view_name)
        record("raymlops_feature_read_latency_ms", (time.perf_counter() - started) * 1000,
               service=service, path="actor")
        return {"rows": results, "expired": expired}

    def resolve_service(self, service: str) -> dict[str, Any]:
        """Everything a reader needs to join a service offline (views, versions, keys, TTLs)."""
        spec: FeatureService = self.definitions.get("feature_service", service).spec
        out = []
        for view_name, picked in spec.selection().items():
            view, entity, version = self._view(view_name)
            out.append({"view": view.model_dump(), "entity": entity.model_dump(), "version": version,
                        "features": picked or view.feature_names,
                        "offline": self.offline.storage.uri})
        return {"service": service, "views": out}

    def stats(self) -> dict[str, Any]:
        return {"watermarks": self._watermarks, "time": time.time()}


def _latest_per_key(table: pa.Table, view: FeatureView, entity: Entity) -> pa.Table:
    """Only the newest row per key (event time, then created time) reaches the online store."""
    if table.num_rows == 0:
        return table
    order = [(view.event_timestamp, "descending")]
    if view.created_timestamp:
        order.append((view.created_timestamp, "descending"))
    ordered = table.sort_by(order)
    keys = list(entity.join_keys)
    marker = "__raymlops_pos"
    numbered = ordered.append_column(marker, pa.array(range(ordered.num_rows), type=pa.int64()))
    first = numbered.group_by(keys, use_threads=False).aggregate([(marker, "min")])
    return ordered.take(first.column(f"{marker}_min"))
