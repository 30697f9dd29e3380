"""Unit tests run without Ray: any ``ray.init`` here is a bug in the test or the code."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _forbid_ray_init(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def _refuse(*args, **kwargs):
        raise AssertionError("unit tests must not start or attach to Ray (ray.init called)")

    monkeypatch.setattr(ray, "init", _refuse)
    # A cluster left by integration tests in the same process must be invisible here.
    monkeypatch.setattr(ray, "is_initialized", lambda: False)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No RAYMLOPS_* from the developer's shell leaks into a unit test."""
    import os

    for key in list(os.environ):
        if key.startswith("RAYMLOPS_") or key == "RAY_ADDRESS":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RAYMLOPS_STORAGE_ROOT", str(tmp_path / "root"))
