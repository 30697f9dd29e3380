"""Shared by the serving integration tests: Serve on a free loopback port, a tiny model."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import numpy as np
import pandas as pd

from raymlops.config import Settings
from tests.conftest import free_port

PAYLOAD = {"inputs": {"temp": [30.0, 70.0], "hour": [2, 22]}}


def serve_settings(platform: Any) -> Settings:
    """The platform's settings with the port Serve listens on (started here on a free one).

    Serve's HTTP options are fixed when it starts, once per cluster: a second module reuses
    the port the first one picked.
    """
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        port = ray.get(controller.get_http_config.remote()).port
    except ValueError:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
    return platform.settings.model_copy(update={"serve_port": port, "serve_host": "127.0.0.1"})


def training_data(seed: int = 0, n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"temp": rng.normal(50, 10, n), "hour": rng.integers(0, 24, n)})
    y = ((X["temp"] - 50) / 10 + (X["hour"] - 12) / 6 + rng.normal(0, 0.5, n) > 0).astype(int)
    return X, y.to_numpy()


def register_classifier(settings: Settings, name: str, seed: int = 0, C: float = 1.0,
                        aliases: tuple[str, ...] = ("champion",)) -> int:
    from sklearn.linear_model import LogisticRegression

    from raymlops.registry import RegistryClient

    X, y = training_data(seed)
    model = LogisticRegression(C=C).fit(X, y)
    info = RegistryClient.connect(settings).register(
        name, model, input_example=X.head(5), aliases=list(aliases))
    return int(info["version"])


class Load:
    """Client threads recording (time received, status, version) of every response."""

    def __init__(self, url: str, threads: int = 2, payload: dict | None = None) -> None:
        self.url = url
        self.payload = payload or PAYLOAD
        self.results: list[tuple[float, int, int | None]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, json=self.payload)
                    status = r.status_code
                    version = r.json().get("version") if status == 200 else None
                except httpx.HTTPError:
                    status, version = -1, None
                with self._lock:
                    self.results.append((time.monotonic(), status, version))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def count(self) -> int:
        with self._lock:
            return len(self.results)

    def wait_for(self, predicate, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(list(self.results)):
                    return
            time.sleep(0.05)
        raise AssertionError(f"load never reached the expected state: {self.summary()}")

    def summary(self) -> dict:
        with self._lock:
            out: dict = {}
            for _, status, version in self.results:
                key = f"{status}/v{version}"
                out[key] = out.get(key, 0) + 1
            return out


def replica_series(name: str) -> list[tuple[dict[str, str], float]]:
    """``raymlops_serve_replicas`` series of model ``name`` as Ray's metrics agents export them
    (what Prometheus scrapes): (labels, value) per replica and version."""
    from raymlops.monitoring.scrape import scrape, targets_from_nodes

    return [(dict(s.labels), s.value) for s in scrape(targets_from_nodes())
            if s.name == "ray_raymlops_serve_replicas" and s.label("model") == name]


def replicas_per_version(name: str) -> dict[int, float]:
    """``sum by (version) (ray_raymlops_serve_replicas{model=name})``."""
    out: dict[int, float] = {}
    for labels, value in replica_series(name):
        out[int(labels["version"])] = out.get(int(labels["version"]), 0.0) + value
    return out


def wait_for_replicas(name: str, expected: dict[int, int], timeout_s: float = 120,
                      ) -> list[dict[int, float]]:
    """Wait until replicas per version equal ``expected`` (a version not named must read 0 or
    be gone); returns every distinct reading seen on the way, in order."""
    deadline, seen = time.monotonic() + timeout_s, []
    while True:
        now = replicas_per_version(name)
        if not seen or seen[-1] != now:
            seen.append(now)
        if {v: n for v, n in now.items() if n} == {v: n for v, n in expected.items() if n}:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"replicas per version never became {expected}; seen {seen}")
        time.sleep(1)
