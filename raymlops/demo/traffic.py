"""Online traffic for the demo: real March-December flights sent to the served model.

A background thread posts entity keys and request fields (origin, tailnum, hour, distance,
carrier) to ``/models/<name>/invocations``; weather and plane features come from the online
store inside the replica. Before each simulated hour the thread pushes that hour's weather
readings to the online store stamped *now* -- the replay's stand-in for a live weather feed,
so the 3-hour TTL holds as it would in production. It records latencies, status codes and
the versions that answered, so the summary can show hot swaps with no failed request.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["OnlineTraffic", "TrafficStats"]

REQUEST_FIELDS = ["origin", "tailnum", "hour", "distance", "carrier"]


@dataclass
class TrafficStats:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def failed(self) -> int:
        return sum(n for code, n in self.statuses.items() if code != 200)


class OnlineTraffic:
    """Sends ``rate`` requests/s of ``flights`` (rows in time order) until stopped.

    ``headers`` go with every request: the inference token's ``Authorization`` when the
    endpoints ask for one (``raymlops.serving.auth.client_headers(settings)``).
    """

    def __init__(self, url: str, flights: pd.DataFrame, weather: pd.DataFrame, features: Any,
                 rate: float = 20.0, rows_per_request: int = 1,
                 headers: dict[str, str] | None = None) -> None:
        import httpx

        self.url = url
        self.client = httpx.Client(timeout=30.0, headers=headers)
        self.features, self.weather = features, weather
        self.rate, self.rows_per_request = rate, rows_per_request
        self.stats = TrafficStats()
        self._flights = flights
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def set_flights(self, flights: pd.DataFrame) -> None:
        with self._lock:
            self._flights = flights

    def send(self, rows: pd.DataFrame) -> dict[str, Any]:
        """One request (also used by the demo to print a few answers)."""
        records = rows[REQUEST_FIELDS].astype({"hour": "float64", "distance": "float64"}).to_dict("records")
        started = time.perf_counter()
        response = self.client.post(self.url, json={"dataframe_records": records},
                                    params={"probabilities": "true"})
        latency = (time.perf_counter() - started) * 1000
        self.stats.latencies_ms.append(latency)
        self.stats.statuses[response.status_code] += 1
        if response.status_code != 200:
            self.stats.errors.append(f"{response.status_code}: {response.text[:200]}")
            return {"status": response.status_code}
        body = response.json()
        self.stats.versions[int(body.get("version", -1))] += 1
        return body

    def push_weather(self, hour: pd.Timestamp) -> None:
        """The readings of ``hour`` arrive now (event time = now, so the TTL judges them fresh)."""
        rows = self.weather[self.weather["time_hour"] == hour]
        if rows.empty:
            return
        rows = rows.copy()
        rows["time_hour"] = pd.Timestamp.now(tz="UTC").floor("s")
        self.features.push("weather", rows, to_offline=False)

    def _run(self) -> None:
        position = 0
        pause = 1.0 / self.rate
        while not self._stop.is_set():
            with self._lock:
                flights = self._flights
            if flights.empty:
                self._stop.wait(0.2)
                continue
            batch = flights.iloc[position % len(flights): position % len(flights) + self.rows_per_request]
            hour = batch["time_hour"].iloc[0]
            if position % 50 == 0:
                try:
                    self.push_weather(hour)
                except Exception as exc:  # noqa: BLE001 - recorded; traffic goes on
                    self.stats.errors.append(f"weather push: {exc}")
            try:
                self.send(batch)
            except Exception as exc:  # noqa: BLE001 - a transport error counts as a failure
                self.stats.statuses[599] += 1
                self.stats.errors.append(f"{type(exc).__name__}: {exc}")
            position += self.rows_per_request
            self._stop.wait(pause)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="demo-traffic")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.client.close()
