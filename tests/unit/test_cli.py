"""The CLI as a library: help on every command, status when nothing runs, clean errors."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from raymlops.cli import app
from raymlops.cli.platform import render_status

runner = CliRunner()


def _all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd, prefix: list[str]) -> None:
        paths.append(prefix)
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*prefix, name])

    walk(root, [])
    return paths


def test_core_commands_exist() -> None:
    names = {p[0] for p in _all_command_paths() if p}
    assert {"up", "status", "down", "demo"} <= names


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "raymlops")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    cmd = typer.main.get_command(app)
    for part in path:
        cmd = cmd.commands[part]  # type: ignore[attr-defined]
    assert (cmd.help or "").strip(), f"{path} has no help text"


def test_status_when_nothing_runs_says_so_without_starting_ray(tmp_path) -> None:
    result = runner.invoke(app, ["--storage-root", str(tmp_path), "status", "--json"])
    assert result.exit_code == 1
    import json

    report = json.loads(result.output)
    assert report["running"] is False
    for key in ("ray_address", "dashboard_url", "serve_http", "storage_root", "tracking_uri", "actors"):
        assert key in report
    assert report["storage_root"] == str(tmp_path.resolve())


def test_down_with_nothing_started_is_harmless(tmp_path) -> None:
    result = runner.invoke(app, ["--storage-root", str(tmp_path), "down"])
    assert result.exit_code == 0
    assert "nothing was started" in result.output


def test_bad_setting_is_one_clear_line(tmp_path, monkeypatch) -> None:
    import subprocess
    import sys

    env = {"RAYMLOPS_DASHBOARD_PORT": "99999", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", "from raymlops.cli import main; main()", "status"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "ConfigError" in proc.stderr and "dashboard_port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_render_status_shows_every_section(capsys) -> None:
    report = {
        "running": True,
        "ray_address": "127.0.0.1:6385",
        "dashboard_url": "http://127.0.0.1:8265",
        "serve_http": None,
        "storage_root": "/r",
        "tracking_uri": "sqlite:////r/mlflow.db",
        "resources": {
            "nodes": 2,
            "CPU": {"total": 4.0, "available": 3.5},
            "GPU": {"total": 2.0, "available": 2.0},
            "memory": {"total": 2.0**31, "available": 2.0**30},
            "object_store_memory": {"total": 2.0**30, "available": 2.0**30},
        },
        "actors": [{"name": "raymlops-platform", "state": "ALIVE", "description": "d"}],
        "serve_applications": [],
    }
    from raymlops.cli._app import console

    with console.capture() as cap:
        render_status(report)
    out = cap.get()
    for text in ("127.0.0.1:6385", "http://127.0.0.1:8265", "raymlops-platform", "ALIVE",
                 "2/2 free", "3.5/4 free", "none deployed"):
        assert text in out, text
