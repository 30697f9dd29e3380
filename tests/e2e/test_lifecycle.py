"""`raymlops up && raymlops status && raymlops down`, twice, as a user runs it."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from raymlops._head import port_is_open
from raymlops.platform import platform_actor_specs

pytestmark = pytest.mark.timeout(300)


def _ray_processes_of(temp_dir: str) -> list[int]:
    import psutil

    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(temp_dir in part for part in proc.info["cmdline"] or []):
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


PER_USE_ACTOR = """
import ray
ray.init(address="{address}", namespace="raymlops", logging_level="ERROR", log_to_driver=False)

@ray.remote(num_cpus=0)
class Holder:
    def ping(self):
        return "ok"

h = Holder.options(name="raymlops-test-per-use", lifetime="detached").remote()
ray.get(h.ping.remote(), timeout=60)
"""


def _attached_down_stops_only_its_own(cli, address: str) -> None:
    """A second storage root attaches (`up --address`) and runs `down`: the actors the
    platform made per use (a pool, metrics...) go, the head and its declared actors stay."""
    import subprocess
    import sys

    from tests.e2e.conftest import _new_cli

    other = _new_cli(cli.root.parent / "attached")
    other.env["HOME"] = cli.env.get("HOME", str(Path.home()))
    assert other.json("up", "--address", address)["started_head"] is False
    made = subprocess.run([sys.executable, "-c", PER_USE_ACTOR.format(address=address)],
                          env=dict(cli.env, RAY_AUTH_MODE="token"), capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    down = other.json("down")
    assert down["head_stopped"] is False and "raymlops-test-per-use" in down["actors_killed"]
    assert not set(down["actors_killed"]) & {s.name for s in platform_actor_specs() if not s.on_demand}
    states = {a["name"]: a["state"] for a in cli.json("status")["actors"]}
    assert all(states[s.name] == "ALIVE" for s in platform_actor_specs() if not s.on_demand)


def test_up_status_down_twice(cli) -> None:
    gcs_port = int(cli.env["RAYMLOPS_GCS_PORT"])
    for round_ in range(2):
        first = cli.json("up")
        assert first["started_head"] is True, round_
        assert first["created_actors"] == [s.name for s in platform_actor_specs() if not s.on_demand]
        assert first["ray_address"] == f"127.0.0.1:{gcs_port}"

        second = cli.json("up")  # harmless: attaches, creates nothing
        assert second["started_head"] is False
        assert second["created_actors"] == []
        assert second["ray_address"] == first["ray_address"]

        report = cli.json("status")
        assert report["running"] is True
        assert report["ray_address"] == f"127.0.0.1:{gcs_port}"
        assert report["dashboard_url"] == cli.dashboard
        assert report["storage_root"] == str(cli.root.resolve())
        assert report["tracking_uri"].startswith("sqlite:///")
        assert {a["name"]: a["state"] for a in report["actors"]} == {
            s.name: "NOT STARTED" if s.on_demand else "ALIVE" for s in platform_actor_specs()
        }
        assert report["models"] == [] and report["features"] == []
        assert report["resources"]["CPU"]["total"] >= 1

        table = cli.run("status").stdout
        assert "raymlops-platform" in table and cli.dashboard in table

        # The dashboard and job API require Ray's token.
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{cli.dashboard}/api/jobs/", timeout=10)
        assert info.value.code == 401
        token = (Path.home() / ".ray" / "auth_token").read_text().strip()
        request = urllib.request.Request(
            f"{cli.dashboard}/api/jobs/", headers={"Authorization": f"Bearer {token}"}
        )
        assert urllib.request.urlopen(request, timeout=10).status == 200

        from raymlops.config import load_settings

        if round_ == 0:
            _attached_down_stops_only_its_own(cli, first["ray_address"])
        temp_dir = str(load_settings(storage_root=cli.root).ray_temp_dir)
        assert _ray_processes_of(temp_dir), "the head's daemons should name its temp dir"
        down = cli.json("down")
        assert down["stopped"] is True and down["head_stopped"] is True
        assert not port_is_open("127.0.0.1", gcs_port)
        assert not port_is_open("127.0.0.1", int(cli.env["RAYMLOPS_DASHBOARD_PORT"]))
        gone = cli.run("status", check=False)
        assert gone.returncode == 1
        assert _ray_processes_of(temp_dir) == []  # nothing of ours is left running


def test_down_stops_only_its_own_head(cli, tmp_path) -> None:
    """Two platforms with different roots: `down` on one leaves the other running."""
    from tests.conftest import free_port
    from tests.e2e.conftest import Cli

    other_env = dict(cli.env)
    other_env.update(
        RAYMLOPS_STORAGE_ROOT=str(tmp_path / "other"),
        RAYMLOPS_GCS_PORT=str(free_port()),
        RAYMLOPS_DASHBOARD_PORT=str(free_port()),
    )
    other = Cli(env=other_env, root=tmp_path / "other")
    try:
        cli.json("up")
        other.json("up")
        cli.json("down")
        assert not port_is_open("127.0.0.1", int(cli.env["RAYMLOPS_GCS_PORT"]))
        assert port_is_open("127.0.0.1", int(other_env["RAYMLOPS_GCS_PORT"]))
        assert other.json("status")["running"] is True
    finally:
        other.run("down", check=False)


def test_up_refuses_a_busy_port_with_a_clear_error(cli) -> None:
    import socket

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", int(cli.env["RAYMLOPS_DASHBOARD_PORT"])))
        srv.listen()
        proc = cli.run("up", check=False)
    assert proc.returncode == 1
    assert "dashboard_port" in proc.stderr and "Traceback" not in proc.stderr
