"""Shared test helpers: free ports and a subprocess runner for the CLI."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on right now (never 6379: Redis owns it here)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port != 6379:
            return port


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
