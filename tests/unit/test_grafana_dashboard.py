"""``cluster/grafana_raymlops.json`` queries only metrics we export, under the names
Prometheus stores them (Ray's ``ray_`` prefix; a histogram's _bucket/_sum/_count)."""

from __future__ import annotations

import json
import re

from tests.conftest import REPO
from tests.unit.test_metrics_catalog import defined_in_source

DASHBOARD = REPO / "cluster" / "grafana_raymlops.json"


def dashboard_exprs() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in data["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in data["templating"]["list"] if v["type"] == "query"]
    return exprs


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"(?<![\w$])(ray_raymlops_\w+|raymlops_\w+)", expr))


def exported_series() -> set[str]:
    """Prometheus names of everything the source defines (histograms: _bucket/_sum/_count)."""
    source = (REPO / "raymlops").rglob("*.py")
    histograms = {m for path in source for m in re.findall(
        r"""Histogram\(\s*["'](raymlops_\w+)""", path.read_text())}
    from raymlops.metrics import METRICS

    histograms |= {n for n, s in METRICS.items() if s.kind == "histogram"}
    out = set()
    for name in defined_in_source():
        if name in histograms:
            out |= {f"ray_{name}_bucket", f"ray_{name}_sum", f"ray_{name}_count"}
        else:
            out.add(f"ray_{name}")
    return out


def test_every_query_names_only_exported_metrics() -> None:
    exported, exprs = exported_series(), dashboard_exprs()
    assert len(exprs) >= 15
    unknown = {e: sorted(metric_names(e) - exported) for e in exprs if metric_names(e) - exported}
    assert unknown == {}
    assert all(metric_names(e) for e in exprs), "a query with no raymlops metric"


def test_the_check_catches_a_wrong_or_unprefixed_name() -> None:
    exported = exported_series()
    assert "ray_raymlops_request_latency_ms_bucket" in exported
    assert "ray_raymlops_request_latency_ms" not in exported  # histograms have no bare series
    assert metric_names("rate(raymlops_requests_total[1m])") - exported == {"raymlops_requests_total"}
    assert metric_names("sum(ray_raymlops_typo_total)") - exported == {"ray_raymlops_typo_total"}


def test_dashboard_covers_every_area() -> None:
    used = {n for e in dashboard_exprs() for n in metric_names(e)}
    for area in ("requests_total", "errors_total", "request_latency_ms", "feature_staleness",
                 "drift_score", "champion_version", "model_live_auc", "retrains_total",
                 "validation_violations_total", "serve_replicas"):
        assert any(area in n for n in used), area
