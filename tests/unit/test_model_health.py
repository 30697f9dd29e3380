"""Model health arithmetic: Prometheus-style p99 from buckets, windowed rates and error rates
per model version, the since-start fallback, and the CT record's drift and last retrain."""

from __future__ import annotations

import pytest

from raymlops.config import load_settings
from raymlops.monitoring.health import histogram_quantile, model_health, serving_health
from raymlops.monitoring.scrape import Sample


def test_histogram_quantile_matches_prometheus() -> None:
    buckets = {1.0: 50, 5.0: 90, 10.0: 100, float("inf"): 100}
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.99, buckets) == pytest.approx(9.5)  # 5 + 5 * (99-90)/10
    assert histogram_quantile(0.99, {1.0: 0, float("inf"): 10}) == 1.0  # +Inf: lower bound
    assert histogram_quantile(0.99, {}) is None and histogram_quantile(0.5, {1.0: 0}) is None


def _samples(ok: float, bad: float, fast: float, slow: float, version: str = "3") -> list[Sample]:
    m = (("model", "m"),)
    return [
        Sample("ray_raymlops_requests_total", (*m, ("status", "200"), ("version", version)), ok),
        Sample("ray_raymlops_requests_total", (*m, ("status", "422"), ("version", version)), bad),
        Sample("ray_raymlops_request_latency_ms_bucket", (*m, ("le", "10.0"), ("version", version)), fast),
        Sample("ray_raymlops_request_latency_ms_bucket", (*m, ("le", "100.0"), ("version", version)), fast + slow),
        Sample("ray_raymlops_request_latency_ms_bucket", (*m, ("le", "+Inf"), ("version", version)), fast + slow),
    ]


def _run(first: list[Sample], second: list[Sample]) -> list[dict]:
    feed, clock = iter([first, second]), iter([0.0, 2.0])
    return serving_health(lambda: next(feed), 2.0, clock=lambda: next(clock), sleep=lambda s: None)


def test_windowed_rate_p99_and_error_rate_per_version() -> None:
    (row,) = _run(_samples(100, 0, 100, 0), _samples(190, 10, 100, 100))
    assert (row["model"], row["version"], row["window"]) == ("m", "3", "2s")
    assert row["requests_per_s"] == 50.0 and row["error_rate"] == 0.1
    assert row["p99_ms"] == pytest.approx(99.1)  # all window requests were in the slow bucket


def test_no_traffic_in_the_window_falls_back_to_since_start() -> None:
    (row,) = _run(_samples(90, 10, 100, 0), _samples(90, 10, 100, 0))
    assert row["window"] == "since start" and row["requests_per_s"] == 0.0
    assert row["error_rate"] == 0.1 and row["p99_ms"] == pytest.approx(9.9)


def test_model_health_joins_the_ct_record(tmp_path) -> None:
    from raymlops.training.ct import Event, log_event

    settings = load_settings(storage_root=tmp_path / "root")
    log_event(settings, "m", Event(1, "2013-03", "drift", "promoted", "drifted", 1, 2, challenger=2,
                                   share_drifted=0.75, dataset_drift=True))
    log_event(settings, "m", Event(2, "2013-04", None, "none", "calm", 2, 2, share_drifted=0.1,
                                   dataset_drift=False))
    feed = iter([_samples(1, 0, 1, 0), _samples(1, 0, 1, 0)])
    rows = model_health(settings, ["m", "idle"], window_s=0, scrape=lambda: next(feed))
    assert [(r["model"], r["version"]) for r in rows] == [("idle", None), ("m", "3")]
    m = rows[1]
    assert m["drift"]["verdict"] == "ok" and m["drift"]["period"] == "2013-04"
    assert (m["last_retrain"]["decision"], m["last_retrain"]["trigger"]) == ("promoted", "drift")
    assert rows[0]["drift"] is None and rows[0]["last_retrain"] is None


def test_replicas_per_version_come_from_the_replica_gauge() -> None:
    """v3 answered but was swapped out (its replicas read 0); v4 holds both replicas and has
    no traffic yet: both rows, each with its replica count."""
    def replicas(version: str, replica: str, value: float) -> Sample:
        return Sample("ray_raymlops_serve_replicas", (("deployment", "Ingress"), ("model", "m"),
                      ("replica", replica), ("version", version)), value)

    gauge = [replicas("3", "a", 0), replicas("3", "b", 0), replicas("4", "a", 1),
             replicas("4", "b", 1), replicas("5", "c", 0)]  # v5: a replica's stale zero
    rows = _run(_samples(10, 0, 10, 0) + gauge, _samples(10, 0, 10, 0) + gauge)
    assert [(r["version"], r["replicas"], r["requests_total"], r["window"]) for r in rows] == [
        ("3", 0, 10, "since start"), ("4", 2, 0, None)]
    assert rows[1]["p99_ms"] is None and rows[1]["error_rate"] is None


def test_drift_verdict_is_the_newer_of_the_ct_record_and_a_drift_report(tmp_path) -> None:
    """`raymlops drift --model m` attributes its MLflow run to m; status shows whichever of that
    report and m's last CT cycle is newer, and nothing from another model's report."""
    import json
    import time

    import numpy as np
    import pandas as pd
    from rich.console import Console
    from typer.testing import CliRunner

    from raymlops.cli import app
    from raymlops.cli.platform import _health_table
    from raymlops.monitoring.drift_log import latest_drift
    from raymlops.monitoring.drift_publish import publish_drift
    from raymlops.training.ct import Event, log_event

    settings = load_settings(storage_root=tmp_path / "root")
    log_event(settings, "m", Event(1, "2013-03", None, "none", "calm", 1, 1, share_drifted=0.0,
                                   dataset_drift=False, at=time.time() - 60))
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"temp": rng.normal(35, 8, 400), "visib": rng.uniform(0, 10, 400)})
    cur = ref.assign(temp=ref["temp"] + 40,  # temp drifts, visib is the same values shuffled
                     visib=ref["visib"].sample(frac=1, random_state=0).to_numpy())
    ref.to_csv(tmp_path / "jan.csv", index=False)
    cur.to_csv(tmp_path / "jul.csv", index=False)
    feed = lambda: _samples(1, 0, 1, 0)  # noqa: E731
    assert latest_drift(settings, "m") is None

    argv = ["--storage-root", str(settings.storage_root), "drift", "--reference",
            str(tmp_path / "jan.csv"), "--current", str(tmp_path / "jul.csv"), "--model", "m"]
    refused = CliRunner().invoke(app, [*argv, "--no-log-mlflow", "--json"])
    assert refused.exit_code != 0 and "--model needs MLflow logging" in str(refused.exception)
    result = CliRunner().invoke(app, [*argv, "--json"])  # no platform: --model logs anyway
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["model"] == "m" and body["dataset_drift"] is True and body["mlflow_run_id"]
    # a calm report of another model, logged later, is not m's
    publish_drift(drift_report_of(ref, ref), settings=settings, dataset="other-data",
                  reference="a", current="b", log_mlflow=True, export_metrics=False,
                  model="other")

    (row,) = model_health(settings, ["m"], window_s=0, scrape=feed)
    assert row["drift"]["source"] == "drift report" and row["drift"]["verdict"] == "drifted"
    assert row["drift"]["run_id"] == body["mlflow_run_id"] and row["drift"]["period"] == "jul"
    console = Console(record=True, width=200)
    console.print(_health_table([row]))
    assert "drifted (50% of columns, jul, drift report)" in console.export_text()
    assert latest_drift(settings, "other")["verdict"] == "ok"

    # a CT cycle after the report: its verdict is the newer one
    log_event(settings, "m", Event(2, "2013-04", None, "none", "calm", 1, 1, share_drifted=0.0,
                                   dataset_drift=False))
    (row,) = model_health(settings, ["m"], window_s=0, scrape=feed)
    assert (row["drift"]["source"], row["drift"]["verdict"], row["drift"]["period"]) == (
        "ct", "ok", "2013-04")


def drift_report_of(ref, cur) -> dict:
    from raymlops.monitoring.drift import drift_report

    return drift_report(ref, cur, domain_classifier=False)
