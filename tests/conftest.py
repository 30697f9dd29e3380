"""Shared test helpers: free ports and a subprocess runner for the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from raymlops._ports import free_port  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parents[1]
PG_URI = "postgresql://postgres@127.0.0.1:5432/test"


def require_service(port: int, name: str) -> None:
    """PostgreSQL and Redis run on every dev and CI machine (.ci/run starts them if not):
    a test that needs one fails loudly rather than skipping silently."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        pytest.fail(f"{name} is not listening on 127.0.0.1:{port}; start it (see .ci/run)")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory):
    """A real S3 store (SeaweedFS) on loopback for the whole session, bucket ``contract``."""
    from tests.s3_store import start_s3_store

    store = start_s3_store(tmp_path_factory.mktemp("s3"))
    store.make_bucket("contract")
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The same test on a local folder and on S3 (AWS_* set for this test only)."""
    from raymlops.storage import Storage

    if request.param == "local":
        return Storage.open(tmp_path / "root")
    store = request.getfixturevalue("s3_store")
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    return Storage.open(f"s3://contract/{tmp_path.name}")


@pytest.fixture
def fresh_pg_url():
    """A PostgreSQL database of the test's own, dropped afterwards: its URL."""
    import uuid

    import psycopg

    require_service(5432, "PostgreSQL")
    name = f"rmo_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URI, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield PG_URI.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_URI, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
