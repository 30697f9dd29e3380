"""Drift gauges reach Ray's metrics agent: what Prometheus scrapes is what the report said."""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest

from raymlops.datasets.flights import load_weather
from raymlops.metrics import refresh_interval_s
from raymlops.monitoring.drift import drift_report
from raymlops.monitoring.drift_metrics import DRIFT_METRICS_ACTOR, export_drift_metrics

pytestmark = pytest.mark.timeout(240)
COLUMNS = ["temp", "dewp", "humid", "wind_speed", "pressure", "visib", "origin"]


def _scrape(port: int, dataset: str) -> dict[tuple[str, str | None], float]:
    """``{(metric, column): value}`` of this dataset's raymlops series on the agent."""
    from prometheus_client.parser import text_string_to_metric_families

    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name.startswith("ray_raymlops_") and sample.labels.get("dataset") == dataset:
                out[(sample.name, sample.labels.get("column"))] = sample.value
    return out


def _wait_for(port: int, dataset: str, want: dict, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    got: dict = {}
    while time.monotonic() < deadline:
        got = _scrape(port, dataset)
        if all(k in got and got[k] == pytest.approx(v) for k, v in want.items()):
            return got
        time.sleep(2)
    raise AssertionError(f"metrics agent never showed {want}; last scrape: {got}")


def test_january_vs_july_gauges_reach_the_metrics_agent_and_later_reports_replace_them(
        ray_cluster) -> None:
    weather = load_weather().to_pandas()
    jan = weather[weather["month"] == 1][COLUMNS]
    jul = weather[weather["month"] == 7][COLUMNS]
    dataset = f"weather-{uuid.uuid4().hex[:8]}"
    result = drift_report(jan, jul)
    assert result["dataset_drift"] is True
    assert export_drift_metrics(result, dataset) is True

    actor = ray_cluster.get_actor(DRIFT_METRICS_ACTOR, namespace="raymlops")
    held = ray_cluster.get(actor.latest.remote())
    scores = {tags["column"]: v for tags, v in held["raymlops_drift_score"]
              if tags["dataset"] == dataset}
    assert scores == pytest.approx({c: result["columns"][c]["statistic"] for c in COLUMNS})

    port = ray_cluster.nodes()[0]["MetricsExportPort"]
    want = {("ray_raymlops_dataset_drift", None): 1.0,
            ("ray_raymlops_drift_share_drifted", None): result["share_drifted"],
            ("ray_raymlops_drift_domain_classifier_auc", None): result["domain_classifier_auc"]}
    for column in COLUMNS:
        want[("ray_raymlops_drift_score", column)] = result["columns"][column]["statistic"]
        want[("ray_raymlops_drift_column_drift", column)] = float(result["columns"][column]["drift"])
    _wait_for(port, dataset, want)
    # Ray evicts a gauge series not set again within two report intervals; the holder's
    # timer keeps it alive, so it is still scraped well after that.
    time.sleep(4 * refresh_interval_s() + 5)
    assert _scrape(port, dataset) == pytest.approx(want)

    # The next report for the same dataset replaces the values (two halves of January).
    calm = drift_report(jan.iloc[::2], jan.iloc[1::2], domain_classifier=False)
    assert calm["dataset_drift"] is False
    assert export_drift_metrics(calm, dataset) is True
    _wait_for(port, dataset, {("ray_raymlops_dataset_drift", None): 0.0,
                              ("ray_raymlops_drift_share_drifted", None): calm["share_drifted"],
                              ("ray_raymlops_drift_score", "temp"):
                                  calm["columns"]["temp"]["statistic"]})
