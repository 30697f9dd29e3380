"""Shared test helpers: free ports and a subprocess runner for the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from raymlops._head import free_port  # noqa: F401  (re-exported for the tests)

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
