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


def test_report_is_self_contained_with_both_plots_and_every_month() -> None:
    import re

    from raymlops.demo.report import render_report

    months = [{"month": m, "rows": 27_000 + m, "auc_frozen": 0.70 - m / 1000, "auc_loop": 0.71, "version": 1 + m % 2,
               "share_drifted": 0.5 if m % 2 else None, "dataset_drift": bool(m % 2),
               "decision": "promoted" if m == 4 else "none", "reason": "<why & how>"} for m in (3, 4, 5)]
    summary = {"months": months, "trials": 6, "mean_auc_frozen": 0.696, "mean_auc_loop": 0.71, "retrains": 1,
               "promotions": 1, "serving": {"requests": 1200, "failed": 0, "p50_ms": 9.5, "p99_ms": 40.0,
                                            "versions": {1: 900, 2: 300}}}
    page = render_report(summary)
    assert page.count("data:image/png;base64,") == 2
    assert not re.search(r"(src|href)=\"https?://", page)
    assert all(f"<td>{m}</td>" in page for m in (3, 4, 5))
    assert "&lt;why &amp; how&gt;" in page  # reasons are escaped
    assert "1,200 requests, 0 failed" in page
