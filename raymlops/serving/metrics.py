"""``raymlops_*`` serving metrics through ``ray.util.metrics`` (Prometheus via Ray's agent).

Each replica also keeps the same counts in plain dicts, so ``raymlops serve status`` and the
tests can read them from the replica without a Prometheus server.

Replicas per model version: every replica holding a model (the ingress when colocated, else
``Model``, and ``Canary`` / ``Shadow``) keeps ``raymlops_serve_replicas`` = 1 for its
(model, version, deployment, replica) series, so ``sum by (model, version)`` counts replicas
per version. On a hot swap the old version's series is set to 0 and no longer kept alive, and
a replica shutting down does the same; Ray's agent then evicts the series (a gauge not set for
two report intervals), as it does for a replica that died without shutting down.
"""

from __future__ import annotations

import threading
from collections import Counter as CountDict
from typing import Any

__all__ = ["LATENCY_BOUNDARIES_MS", "ServingMetrics", "replica_identity"]

LATENCY_BOUNDARIES_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def replica_identity() -> tuple[str, str]:
    """(deployment, replica id) of the Serve replica this code runs in; outside a replica
    (tests, a plain process) ``("local", "<pid>")``."""
    import os

    try:
        from ray import serve

        ctx = serve.get_replica_context()
        return ctx.replica_id.deployment_id.name, ctx.replica_id.unique_id
    except Exception:  # noqa: BLE001 - not in a replica
        return "local", str(os.getpid())


class ServingMetrics:
    """Requests, errors by status, latency and batch size, tagged with model and version."""

    def __init__(self, model: str) -> None:
        from ray.util.metrics import Counter, Histogram

        self.model = model
        self._requests = Counter(
            "raymlops_requests_total", description="Requests answered, by status.",
            tag_keys=("model", "version", "endpoint", "status"))
        self._errors = Counter(
            "raymlops_errors_total", description="Requests answered with a 4xx/5xx.",
            tag_keys=("model", "status", "error"))
        self._latency = Histogram(
            "raymlops_request_latency_ms", description="Request latency inside Serve (ms).",
            boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("model", "version", "endpoint"))
        self._batch = Histogram(
            "raymlops_batch_size", description="Requests per @serve.batch call.",
            boundaries=BATCH_BOUNDARIES, tag_keys=("model", "version"))
        self._lock = threading.Lock()
        self.counts: CountDict[str] = CountDict()

    def request(self, endpoint: str, version: int | None, status: int, latency_ms: float,
                error: str | None = None) -> None:
        v = str(version) if version is not None else "none"
        self._requests.inc(tags={"model": self.model, "version": v, "endpoint": endpoint,
                                 "status": str(status)})
        self._latency.observe(latency_ms, tags={"model": self.model, "version": v,
                                                "endpoint": endpoint})
        with self._lock:
            self.counts[f"status_{status}"] += 1
            self.counts["requests"] += 1
        if status >= 400:
            self._errors.inc(tags={"model": self.model, "status": str(status),
                                   "error": error or "error"})
            with self._lock:
                self.counts["errors"] += 1

    def batch(self, version: int, size: int) -> None:
        self._batch.observe(size, tags={"model": self.model, "version": str(version)})
        with self._lock:
            self.counts["batches"] += 1
            self.counts["batched_requests"] += size
            self.counts["max_batch"] = max(self.counts["max_batch"], size)

    def _replica_tags(self, version: int) -> dict[str, str]:
        deployment, replica = replica_identity()
        return {"model": self.model, "version": str(version), "deployment": deployment,
                "replica": replica}

    def serving(self, version: int, previous: int | None = None) -> None:
        """This replica now holds ``version`` (after its first load or a hot swap from
        ``previous``): the series for ``previous`` drops to 0, then the one for ``version``
        is 1 (in that order, so a report between the two never counts a replica twice)."""
        from raymlops.metrics import record, retire

        if previous is not None and previous != version:
            retire("raymlops_serve_replicas", **self._replica_tags(previous))
        record("raymlops_serve_replicas", 1, **self._replica_tags(version))

    def stopped(self, version: int) -> None:
        """This replica is shutting down: its series drops to 0 and ages out."""
        from raymlops.metrics import retire

        retire("raymlops_serve_replicas", **self._replica_tags(version))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.counts)
