"""End-to-end: the `raymlops` CLI and `ray job submit` in subprocesses, as a user runs them.

Each test gets its own storage root and free ports, so its head never collides with the
integration tests' cluster or a developer's running platform; a finalizer runs
`raymlops down` so a failing test leaves no head behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

BIN = Path(sys.executable).parent


@dataclass
class Cli:
    env: dict[str, str]
    root: Path

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(BIN / "raymlops"), *args], env=self.env, cwd=REPO,
            capture_output=True, text=True, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"raymlops {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str, check: bool = True) -> dict:
        proc = self.run(*args, "--json", check=check)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(
                f"raymlops {' '.join(args)} --json printed no JSON\nstdout:\n{proc.stdout}\n"
                f"stderr:\n{proc.stderr}"
            ) from None

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.env['RAYMLOPS_DASHBOARD_PORT']}"


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYMLOPS_", "RAY_"))}
    env.update(
        RAYMLOPS_STORAGE_ROOT=str(tmp_path / "root"),
        RAYMLOPS_GCS_PORT=str(free_port()),
        RAYMLOPS_DASHBOARD_PORT=str(free_port()),
        RAYMLOPS_SERVE_PORT=str(free_port()),
        COLUMNS="200",  # rich wraps tables at 80 columns when not on a terminal
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    handle = Cli(env=env, root=tmp_path / "root")
    yield handle
    handle.run("down", check=False, timeout=120)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
