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


@pytest.mark.parametrize("shutdown_fails", [False, True])
def test_the_cli_leaves_ray_itself_and_keeps_the_commands_exit_code(
        tmp_path, monkeypatch, shutdown_fails: bool) -> None:
    """Ray's exit hook sleeps 0.5 s for driver logs raymlops never streams: main() disconnects
    first; a failing disconnect never changes what the command returned."""
    import sys
    import types

    from rich.console import Console

    from raymlops.cli import _app

    calls: list[str] = []

    def shutdown() -> None:
        calls.append("shutdown")
        if shutdown_fails:
            raise RuntimeError("GCS gone")

    fake_ray = types.SimpleNamespace(is_initialized=lambda: True, shutdown=shutdown)
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    monkeypatch.setattr(sys, "argv", ["raymlops", "--storage-root", str(tmp_path), "down"])
    # main() swaps stdout and remembers the real one: all restored after the test
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(_app, "_OUT", _app._OUT)
    monkeypatch.setattr(_app, "console", Console())  # a throwaway one for main() to point
    _app.main()  # `down` with nothing started: returns normally, exit code 0
    assert calls == ["shutdown"]
    monkeypatch.setattr(sys, "argv", ["raymlops", "no-such-command"])
    with pytest.raises(SystemExit) as info:
        _app.main()
    assert info.value.code == 2 and calls == ["shutdown", "shutdown"]


def test_usage_errors_are_usage_not_tracebacks_and_help_goes_to_stdout(tmp_path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from raymlops.cli import main; main()",
                               *args], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    for args, words in ((["no-such-command"], "No such command"), (["up", "--bogus"],
                                                                     "No such option")):
        proc = run(*args)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr and "Usage:" in proc.stderr
        assert "Traceback" not in proc.stderr
    helped = run("models", "--help")
    assert helped.returncode == 0 and "models [OPTIONS] COMMAND" in helped.stdout  # not stderr


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
