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
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from raymlops.registry import RegistryClient
client = RegistryClient.connect()
rng = np.random.default_rng(0)
X = pd.DataFrame({"temp": rng.normal(size=200), "visib": rng.normal(size=200)})
y = (X["temp"] > 0).astype(int)
client.register("flights-delay", LogisticRegression().fit(X, y), input_example=X.head(3),
                aliases=["champion"])
client.register("flights-delay", LogisticRegression(C=0.01).fit(X, y), input_example=X.head(3),
                aliases=["challenger"])
print("registered")
"""


def test_serve_commands_end_to_end(cli) -> None:
    cli.json("up")
    proc = subprocess.run([sys.executable, "-c", REGISTER], env=cli.env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr

    entry = cli.json("serve", "deploy", "flights-delay@champion", "--max-batch-size", "8")
    port = cli.env["RAYMLOPS_SERVE_PORT"]
    assert entry["status"] == "RUNNING" and entry["version"] == 1
    assert entry["url"] == f"http://127.0.0.1:{port}/models/flights-delay"

    payload = {"dataframe_records": [{"temp": 1.5, "visib": 0.0}, {"temp": -1.5, "visib": 0.0}]}
    r = httpx.post(f"{entry['url']}/invocations", json=payload, timeout=60)
    assert r.status_code == 200 and r.json()["predictions"] == [1, 0]
    assert r.headers["x-model-version"] == "1"

    cli.run("models", "promote", "flights-delay")  # challenger (v2) -> champion: hot swap
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = httpx.post(f"{entry['url']}/invocations", json=payload, timeout=60)
        if r.headers.get("x-model-version") == "2":
            break
        time.sleep(0.1)
    assert r.status_code == 200 and r.headers["x-model-version"] == "2"

    (status,) = cli.json("serve", "status")
    assert status["model"] == "flights-delay" and status["version"] == 2
    assert status["ref"] == "champion" and status["swaps"] >= 1
    table = cli.run("serve", "status").stdout
    assert "flights-delay" in table and "v2" in table and "@champion" in table
    platform = cli.json("status")
    assert any(a["name"] == "model-flights-delay" for a in platform["serve_applications"])

    missing = cli.run("serve", "deploy", "no-such-model", check=False)
    assert missing.returncode == 1 and "no-such-model" in missing.stderr

    assert cli.json("serve", "undeploy", "flights-delay")["undeployed"] is True
    assert cli.json("serve", "status") == []
    with pytest.raises(httpx.HTTPError):
        r = httpx.post(f"{entry['url']}/invocations", json=payload, timeout=10)
        r.raise_for_status()


def test_serve_config_yaml_deploys_with_rays_own_cli(cli, repo_root) -> None:
    """`serve deploy cluster/serve_flights.yaml` (port rewritten to this test's) serves too."""
    import yaml

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
