"""A real Prometheus (Debian's package) scrapes a platform through Ray's service-discovery
file; after real traffic to a served model, ``raymlops_requests_total`` and
``raymlops_errors_total`` come back through Prometheus's HTTP API. On the same platform the
``raymlops-alerts`` actor fires a rule on those errors, posts a signed webhook to a local
receiver, and ``raymlops alerts history`` shows it -- the secret never printed."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from raymlops.config import load_settings
from raymlops.monitoring.alert_actions import SIGNATURE_HEADER, verify
from raymlops.monitoring.scrape import sd_file
from tests.conftest import free_port
from tests.e2e.test_serve_cli import REGISTER
from tests.unit.test_grafana_dashboard import dashboard_exprs

pytestmark = pytest.mark.timeout(600)
SECRET = "e2e-webhook-secret-value"


class _Hook(http.server.BaseHTTPRequestHandler):
    got: list[tuple[dict, bool]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = verify(body, self.headers.get(SIGNATURE_HEADER, ""), SECRET.encode())
        type(self).got.append((json.loads(body), ok))
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _start_prometheus(tmp_path: Path, sd: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (.ci/run installs Debian's package)"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "scrape_configs": [{"job_name": "ray", "file_sd_configs": [
            {"files": [str(sd)], "refresh_interval": "2s"}]}]}))
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=(tmp_path / "prom.log").open("w"), stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _query(base: str, promql: str) -> list[dict]:
    r = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]["result"]


def test_prometheus_scrapes_raymlops_metrics_and_alerts_fire(cli, tmp_path: Path) -> None:
    cli.json("up")
    proc = subprocess.run([sys.executable, "-c", REGISTER], env=cli.env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    entry = cli.json("serve", "deploy", "flights-delay@champion")
    good = {"dataframe_records": [{"temp": 1.5, "visib": 0.0}]}
    bad = {"dataframe_records": [{"temp": "hot", "visib": 0.0}]}
    for _ in range(10):
        assert httpx.post(f"{entry['url']}/invocations", json=good, timeout=60).status_code == 200
    for _ in range(3):
        assert httpx.post(f"{entry['url']}/invocations", json=bad, timeout=60).status_code == 422

    sd = sd_file(load_settings(storage_root=cli.root).ray_temp_dir)
    assert json.loads(sd.read_text())[0]["targets"], sd.read_text()
    prom, base = _start_prometheus(tmp_path, sd)
    try:
        deadline, got = time.monotonic() + 180, []
        while time.monotonic() < deadline:
            try:
                got = _query(base, 'sum by (model, status) '
                                   '(ray_raymlops_requests_total{model="flights-delay"})')
            except httpx.HTTPError:
                got = []
            if {r["metric"].get("status"): float(r["value"][1]) for r in got} == {"200": 10, "422": 3}:
                break
            time.sleep(2)
        assert {r["metric"].get("status"): float(r["value"][1]) for r in got} == {
            "200": 10, "422": 3}, (tmp_path / "prom.log").read_text()[-3000:]
        errors = _query(base, 'sum(ray_raymlops_errors_total{model="flights-delay",status="422"})')
        assert float(errors[0]["value"][1]) == 3
        # replicas per model version: the one replica holds v1
        replicas = _query(base, 'sum by (version) '
                                '(ray_raymlops_serve_replicas{model="flights-delay"})')
        assert {r["metric"]["version"]: float(r["value"][1]) for r in replicas} == {"1": 1.0}
        up = _query(base, 'up{job="ray"}')
        assert up and all(r["value"][1] == "1" for r in up)
        # Every Grafana query parses in a real Prometheus (a syntax error is an HTTP 400).
        exprs = dashboard_exprs()
        for expr in exprs[:-1]:  # the last is Grafana's label_values(), not PromQL
            _query(base, expr.replace("$model", ".*"))
        rps, deadline = [], time.monotonic() + 60  # rate() needs two scrapes of the series
        while not rps and time.monotonic() < deadline:
            rps = _query(base, exprs[0].replace("$model", ".*").replace("[1m]", "[5m]"))
            time.sleep(1)
        assert [r["metric"]["model"] for r in rps] == ["flights-delay"]
    finally:
        prom.terminate()
        prom.wait(timeout=30)

    _Hook.got = []
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    secret_file = tmp_path / "hook.key"
    secret_file.write_text(SECRET + "\n")
    rules = tmp_path / "alerts.yaml"
    rules.write_text(json.dumps({"interval_s": 3600, "rules": [{
        "name": "bad-requests", "for": "0s", "severity": "warning",
        "expr": {"metric": "raymlops_errors_total", "by": ["model"], "op": ">=", "threshold": 3},
        "actions": [{"type": "log"}, {"type": "webhook", "secret_file": str(secret_file),
                                      "url": f"http://127.0.0.1:{hook.server_port}/hook"}]}]}))
    try:
        started = cli.json("alerts", "start", "--rules", str(rules))
        assert [r["name"] for r in started["rules"]] == ["bad-requests"]
        deadline = time.monotonic() + 60  # the actor evaluates once at start, then on demand
        while not _Hook.got and time.monotonic() < deadline:
            cli.json("alerts", "tick")
            time.sleep(1)
        assert [(b["alert"], b["status"], b["labels"], ok) for b, ok in _Hook.got] == [
            ("bad-requests", "firing", {"model": "flights-delay"}, True)]
        assert cli.json("alerts", "tick") == []  # still firing: not sent again
        listed = cli.json("alerts", "list")
        assert [(a["alert"], a["state"]) for a in listed["active"]] == [("bad-requests", "firing")]
        (row,) = cli.json("alerts", "history")
        assert row["status"] == "firing" and row["value"] == 3
        assert [(a["action"], a["ok"]) for a in row["actions"]] == [("log", True), ("webhook", True)]
        shown = cli.run("alerts", "history").stdout + cli.run("status", "--json").stdout + \
            json.dumps(listed)
        assert "bad-requests" in shown and SECRET not in shown
    finally:
        hook.shutdown()
    # raymlops status: model health of the served version (no traffic during its window, so
    # since start: 13 requests, 3 of them 422), with the drift and retrain of its CT record.
    from raymlops.training.ct import Event, log_event

    log_event(load_settings(storage_root=cli.root), "flights-delay",
              Event(1, "2013-03", "drift", "promoted", "drifted", 1, 1, share_drifted=0.6,
                    dataset_drift=True))
    (health,) = cli.json("status")["model_health"]
    assert (health["model"], health["version"], health["window"]) == ("flights-delay", "1", "since start")
    assert health["requests_total"] == 13 and health["error_rate"] == round(3 / 13, 4)
    assert health["p99_ms"] > 0 and health["requests_per_s"] == 0 and health["replicas"] == 1
    assert health["drift"]["verdict"] == "drifted" and health["last_retrain"]["decision"] == "promoted"
    table = cli.run("status").stdout
    assert "model health" in table and "drifted (60% of columns, 2013-03)" in table

    logs = Path(load_settings(storage_root=cli.root).ray_temp_dir, "session_latest", "logs")
    leaked = [p.name for p in logs.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert list(logs.rglob("*.log")) and leaked == []
