"""GCS fault tolerance with Redis (127.0.0.1:6379, a key namespace of this head's own): the GCS
is killed while a model serves under load; every request still succeeds; once the GCS is
back, the registry and feature store answer with every write acknowledged before the kill,
and `raymlops down` deletes the namespace's keys."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from tests.e2e.test_serve_cli import REGISTER

pytestmark = pytest.mark.timeout(600)
PUSH = """
import datetime as dt, pandas as pd
from raymlops.features.client import FeatureStoreClient
fs = FeatureStoreClient.connect()
now = pd.Timestamp(dt.datetime.now(dt.timezone.utc))
rows = pd.DataFrame({"origin": ["JFK"], "time_hour": [now], "temp": [71.5], "dewp": [50.0],
                     "humid": [40.0], "wind_dir": [180.0], "wind_speed": [10.0], "wind_gust": [12.0],
                     "precip": [0.0], "pressure": [1012.0], "visib": [10.0]})
print(fs.push("weather", rows, to_offline=False))
"""


class _Load:
    """Requests in a loop on two threads; every answer that is not a 200 is a failure."""

    def __init__(self, url: str) -> None:
        self.url, self.ok, self.failed = url, 0, []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        payload = {"dataframe_records": [{"temp": 1.5, "visib": 0.0}]}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url, json=payload)
                    if r.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append(r.status_code)
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))

    def __enter__(self) -> _Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def _gcs_process(port: str) -> psutil.Process:
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "gcs_server" and any(a == f"--gcs_server_port={port}" for a in cmd):
            return proc
    raise AssertionError(f"no gcs_server on port {port}")


def test_gcs_killed_while_serving_recovers_from_redis(cli, tmp_path: Path, repo_root) -> None:
    cli.env["RAYMLOPS_GCS_STORAGE"] = "redis"
    cli.json("up")
    namespace = json.loads((cli.root / "run" / "head.json").read_text())["gcs_namespace"]
    keys = redis.Redis(host="127.0.0.1", port=6379)
    assert namespace and list(keys.scan_iter(match=f"RAY{namespace}@*"))
    cli.run("features", "apply", str(repo_root / "examples" / "flights" / "features.yaml"))
    for script in (REGISTER, PUSH):
        proc = subprocess.run([sys.executable, "-c", script], env=cli.env, capture_output=True,
                              text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
    entry = cli.json("serve", "deploy", "flights-delay@champion")

    gcs = _gcs_process(cli.env["RAYMLOPS_GCS_PORT"])
    cmdline, environ = gcs.cmdline(), gcs.environ()
    restarted = None
    try:
        with _Load(f"{entry['url']}/invocations") as load:
            while load.ok < 20:
                time.sleep(0.1)
            gcs.kill()
            gcs.wait(timeout=30)
            before = load.ok
            time.sleep(5)  # serving with no GCS at all
            during = load.ok - before
            restarted = subprocess.Popen(cmdline, env=environ, start_new_session=True,
                                         stdout=(tmp_path / "gcs.out").open("w"),
                                         stderr=subprocess.STDOUT)
            models = cli.json("models", "list")  # a new driver, through the restarted GCS
            after = load.ok
            time.sleep(2)
        assert load.failed == [] and during > 0 and load.ok > after
        assert [(m["name"], m["aliases"]) for m in models] == [
            ("flights-delay", {"champion": 1, "challenger": 2})]
        views = {v["name"]: v for v in cli.json("features", "list") if v["kind"] == "feature_view"}
        assert views["weather"]["online_rows"] == 1  # the push acknowledged before the kill
        assert cli.json("serve", "status")[0]["version"] == 1
    finally:
        if restarted is not None:
            restarted.kill()
            restarted.wait(timeout=30)
    cli.run("down")
    assert list(keys.scan_iter(match=f"RAY{namespace}@*")) == []
