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


def _new_cli(base: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYMLOPS_", "RAY_"))}
    env.update(
        RAYMLOPS_STORAGE_ROOT=str(base / "root"),
        RAYMLOPS_GCS_PORT=str(free_port()),
        RAYMLOPS_DASHBOARD_PORT=str(free_port()),
        RAYMLOPS_SERVE_PORT=str(free_port()),
        COLUMNS="200",  # rich wraps tables at 80 columns when not on a terminal
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return Cli(env=env, root=base / "root")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """A storage root and ports of this test's own: for tests of `up`/`down` themselves or of
    a head started differently (HAProxy mode, Redis GCS, fake multi-node, the demo's)."""
    handle = _new_cli(tmp_path)
    yield handle
    handle.run("down", check=False, timeout=120)


@pytest.fixture(scope="session")
def _shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    handle = _new_cli(tmp_path_factory.mktemp("e2e-shared"))
    handle.json("up")
    yield handle
    handle.run("down", check=False, timeout=120)


@pytest.fixture
def platform_cli(_shared_platform: Cli) -> Cli:
    """The CLI against one platform that `raymlops up` started once for these tests, as a user
    keeps one running: each test uses model names of its own on it. (A head costs ~15 s to
    start and stop on 2 cores.) The environment is this test's copy."""
    return Cli(env=dict(_shared_platform.env), root=_shared_platform.root)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(str(item.fspath)).parents]
    for item in mine:
        item.add_marker(pytest.mark.e2e)
        item.add_marker(pytest.mark.slow)
    # The tests on the shared platform run last and together, so its head is up only while
    # they run (its session fixture ends with the session).
    if mine:
        shared = [item for item in mine if "platform_cli" in getattr(item, "fixturenames", ())]
        rest = [item for item in items if item not in shared]
        items[:] = rest + shared


@pytest.fixture(scope="session")
def shared_flights_features(_shared_platform: Cli, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The flights feature repo applied and its weather and planes ingested, once, on the
    shared platform (with `raymlops features`, as a user loads them)."""
    import pyarrow.parquet as pq

    from raymlops.datasets.flights_features import DEFINITIONS, planes_rows, weather_rows

    folder = tmp_path_factory.mktemp("e2e-features")
    pq.write_table(weather_rows(), folder / "weather.parquet")
    pq.write_table(planes_rows(), folder / "planes.parquet")
    _shared_platform.json("features", "apply", str(DEFINITIONS))
    assert _shared_platform.json("features", "ingest", "weather", str(folder / "weather.parquet"))["rows"] > 0
    assert _shared_platform.json("features", "ingest", "planes", str(folder / "planes.parquet"))["rows"] > 0
    return _shared_platform
