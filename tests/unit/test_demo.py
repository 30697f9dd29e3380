"""The demo's failure path: a failing stage is one clear error and the platform is taken down."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from raymlops.config import load_settings
from raymlops.demo.run import DemoError, DemoOptions, run_demo


def test_a_failing_stage_names_itself_and_the_started_platform_is_stopped(monkeypatch, tmp_path) -> None:
    from raymlops import cluster
    from raymlops.datasets import flights

    settings = load_settings(storage_root=tmp_path)
    calls: list[str] = []
    monkeypatch.setattr(cluster, "up", lambda s: SimpleNamespace(settings=s, started_head=True, dashboard_url=None))
    monkeypatch.setattr(cluster, "down", lambda s: calls.append("down"))

    def broken(_root):
        raise OSError("disk full")

    monkeypatch.setattr(flights, "write_parquet", broken)
    said: list[str] = []
    with pytest.raises(DemoError, match=r"stage '1/5 platform, data and features' failed: OSError: disk full"):
        run_demo(settings, DemoOptions(months=1, trials=1), said.append)
    assert calls == ["down"]


def test_keep_running_leaves_the_platform_up_even_on_failure(monkeypatch, tmp_path) -> None:
    from raymlops import cluster
    from raymlops.datasets import flights

    calls: list[str] = []
    monkeypatch.setattr(cluster, "up", lambda s: SimpleNamespace(settings=s, started_head=True, dashboard_url=None))
    monkeypatch.setattr(cluster, "down", lambda s: calls.append("down"))
    monkeypatch.setattr(flights, "write_parquet", lambda root: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(DemoError):
        run_demo(load_settings(storage_root=tmp_path), DemoOptions(months=1, trials=1, keep_running=True),
                 lambda _: None)
    assert calls == []


def test_months_out_of_range_is_refused_before_anything_starts(tmp_path) -> None:
    with pytest.raises(DemoError, match="between 1 and 10"):
        run_demo(load_settings(storage_root=tmp_path), DemoOptions(months=11), lambda _: None)
