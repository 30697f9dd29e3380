"""Shared test helpers: free ports and a subprocess runner for the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from raymlops._head import free_port  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
