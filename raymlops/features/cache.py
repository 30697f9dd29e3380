"""Replica-local online feature cache, kept fresh by the feature store actor's change feed.

A Serve replica (or any process) takes a snapshot of the rows its FeatureService needs, then
follows the actor's change feed on a background thread (long-poll, newest-wins applied
locally). A read is then a few dict lookups in the replica's own memory — microseconds, not
an actor round trip. If the actor restarts (new epoch) or the replica falls too far behind,
the feed says ``reset`` and the cache re-snapshots.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from raymlops.features.online import Key, OnlineRow
from raymlops.metrics import record

__all__ = ["OnlineFeatureCache"]


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class OnlineFeatureCache:
    def __init__(self, client: Any, service: str, poll_s: float = 10.0) -> None:
        self.client = client
        self.service = service
        self.poll_s = poll_s
        self._views: dict[str, dict[str, Any]] = {}
        self._epoch = ""
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name=f"features-{service}")
        self.updates = 0

    def start(self) -> OnlineFeatureCache:
        self._snapshot()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def seq(self) -> int:
        return self._seq

    def _snapshot(self) -> None:
        snap = self.client._call("service_snapshot", self.service)
        views = {}
        for name, info in snap["views"].items():
            data = {tuple(k): (r[0], r[1], r[2]) for k, r in info.pop("rows")}
            views[name] = {**info, "data": data}
        with self._lock:
            self._views, self._epoch, self._seq = views, snap["epoch"], snap["seq"]

    def _apply(self, changes: list[tuple[int, str, Key, OnlineRow]]) -> None:
        with self._lock:
            for _seq, name, key, row in changes:
                view = self._views.get(name)
                if view is None:
                    continue
                key = tuple(key)
                current = view["data"].get(key)
                if current is None or (row[0], row[1]) >= (current[0], current[1]):
                    view["data"][key] = tuple(row)
                    self.updates += 1

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                feed = self.client._call("changes_since", self._epoch, self._seq, self.poll_s,
                                         timeout=self.poll_s + 30)
            except Exception:  # noqa: BLE001 - actor restarting: retry shortly
                self._stop.wait(0.5)
                continue
            if feed["reset"]:
                try:
                    self._snapshot()
                except Exception:  # noqa: BLE001
                    self._stop.wait(0.5)
                continue
            if feed["changes"]:
                self._apply(feed["changes"])
            self._seq = feed["seq"]

    def get(self, entity_rows: list[dict[str, Any]], now: dt.datetime | int | None = None) -> dict[str, Any]:
        """Same answer as ``FeatureStoreClient.get_online_features``, from local memory."""
        from raymlops.exceptions import ValidationError

        started = time.perf_counter()
        if isinstance(now, dt.datetime):
            now_us = int(now.timestamp() * 1_000_000)
        else:
            now_us = now if now is not None else _now_us()
        results = [dict(r) for r in entity_rows]
        expired: list[list[str]] = [[] for _ in entity_rows]
        for view in self._views.values():
            keys = view["keys"]
            try:
                lookups = [tuple(r[k] for k in keys) for r in entity_rows]
            except KeyError as exc:
                raise ValidationError(f"entity rows lack join key {exc.args[0]!r}", field="entity_rows") from None
            data, ttl, prefix = view["data"], view["ttl_us"], view["view"]
            misses = 0
            for i, key in enumerate(lookups):
                row = data.get(key)
                stale = row is not None and ttl is not None and now_us - row[0] > ttl
                misses += stale
                values = None if (row is None or stale) else row[2]
                for feature in view["features"]:
                    column = f"{prefix}__{feature}"
                    results[i][column] = None if values is None else values.get(feature)
                    if stale:
                        expired[i].append(column)
            if misses:
                record("raymlops_feature_ttl_misses_total", misses, view=prefix)
        record("raymlops_feature_read_latency_ms", (time.perf_counter() - started) * 1000,
               service=self.service, path="cache")
        return {"rows": results, "expired": expired}
