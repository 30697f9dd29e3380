"""Feature freshness and TTL metrics of the feature store (``raymlops_feature_*``).

Why a separate tracker: staleness grows with wall time even when nothing is written, so it
must be re-computed on a timer, not only on writes. The store tells the tracker the newest
event time of every online write; a daemon thread turns that into
``raymlops_feature_staleness_seconds{view}`` every few seconds. After an actor restart the
newest event time per view is seeded once from the online store (the durable truth).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from raymlops.metrics import record

__all__ = ["FreshnessTracker", "view_of"]
log = logging.getLogger(__name__)


def view_of(online_view: str) -> str:
    """``weather__v2`` -> ``weather`` (the metric tag is the view's name, not its version)."""
    name, sep, version = online_view.rpartition("__v")
    return name if sep and version.isdigit() else online_view


class FreshnessTracker:
    """Newest event time per online view, exported as staleness seconds."""

    def __init__(self, seed: Callable[[], Iterable[tuple[str, int]]], interval_s: float = 5.0) -> None:
        self._seed = seed
        self._newest: dict[str, int] = {}
        self._lock = threading.Lock()
        self._interval_s = interval_s
        threading.Thread(target=self._run, daemon=True, name="feature-freshness").start()

    def written(self, online_view: str, event_us: Iterable[int]) -> None:
        """Rows with these event times reached ``online_view``."""
        newest = max(event_us, default=None)
        if newest is None:
            return
        with self._lock:
            if newest > self._newest.get(online_view, -(2**62)):
                self._newest[online_view] = newest

    def staleness_s(self, now: float | None = None) -> dict[str, float]:
        """Seconds since the newest event per view (latest written version wins per name)."""
        now_us = int((time.time() if now is None else now) * 1_000_000)
        with self._lock:
            items = sorted(self._newest.items())
        return {view_of(v): (now_us - us) / 1e6 for v, us in items}

    def _run(self) -> None:
        try:
            for online_view, newest in self._seed():
                self.written(online_view, [newest])
        except Exception as exc:  # noqa: BLE001 - no definitions yet / backend busy: writes fill it
            log.info("staleness not seeded from the online store: %s", exc)
        while True:
            for view, seconds in self.staleness_s().items():
                record("raymlops_feature_staleness_seconds", seconds, view=view)
            time.sleep(self._interval_s)
