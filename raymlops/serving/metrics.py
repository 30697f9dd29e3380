"""``raymlops_*`` serving metrics through ``ray.util.metrics`` (Prometheus via Ray's agent).

Each replica also keeps the same counts in plain dicts, so ``raymlops serve status`` and the
tests can read them from the replica without a Prometheus server.
"""

from __future__ import annotations

import threading
from collections import Counter as CountDict
from typing import Any

__all__ = ["LATENCY_BOUNDARIES_MS", "ServingMetrics"]

LATENCY_BOUNDARIES_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


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

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.counts)
