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
