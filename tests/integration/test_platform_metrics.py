"""The platform's own ``raymlops_*`` metrics reach Ray's metrics agent (what Prometheus
scrapes): feature reads (latency, TTL misses, staleness), champion version, promotions and
rollbacks from the registry actor, and values a short-lived driver publishes."""

from __future__ import annotations

import datetime as dt
import time

from raymlops.metrics import publish
from raymlops.monitoring.scrape import scrape, targets_from_nodes
from tests.integration.serving_helpers import register_classifier

MODEL = "metrics-model"


def _wait_for(check, what: str, timeout_s: float = 120) -> dict:
    deadline, seen = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        seen = {}
        for s in scrape(targets_from_nodes()):
            key = (s.name, *(v for k, v in s.labels if k in {"model", "view", "path", "kind", "status"}))
            seen[key] = seen.get(key, 0) + s.value
        if check(seen):
            return seen
        time.sleep(2)
    raise AssertionError(f"metrics agent never showed {what}; last: {sorted(seen.items())}")


def test_platform_metrics_reach_the_metrics_agent(platform, flights_features) -> None:
    from raymlops.registry.client import RegistryClient

    fs = flights_features
    fs.materialize(end=dt.datetime(2014, 1, 1, tzinfo=dt.UTC))
    # A read a year after the data: every weather value is past its TTL.
    far = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
    out = fs.get_online_features("delay_model", [{"origin": "JFK", "tailnum": "N14228"}], now=far)
    assert out["expired"][0], out
    registry = RegistryClient.connect(platform.settings)
    first = register_classifier(platform.settings, MODEL, seed=0, aliases=())
    second = register_classifier(platform.settings, MODEL, seed=1, aliases=())
    registry.promote(MODEL, first)
    registry.promote(MODEL, second)
    registry.rollback(MODEL)
    assert publish([("raymlops_validation_violations_total", 3,
                     {"model": MODEL, "kind": "out_of_range"})])

    seen = _wait_for(lambda m: m.get(("ray_raymlops_rollbacks_total", MODEL)) == 1
                     and m.get(("ray_raymlops_promotions_total", MODEL)) == 2
                     and m.get(("ray_raymlops_champion_version", MODEL)) == first
                     and m.get(("ray_raymlops_validation_violations_total", "out_of_range", MODEL)) == 3
                     and m.get(("ray_raymlops_feature_ttl_misses_total", "weather"), 0) >= 1
                     and m.get(("ray_raymlops_feature_read_latency_ms_count", "actor"), 0) >= 1
                     and ("ray_raymlops_feature_staleness_seconds", "weather") in m,
                     "registry, feature and published metrics")
    # Staleness of the newest weather row (Dec 2013) is over ten years, never negative.
    assert seen[("ray_raymlops_feature_staleness_seconds", "weather")] > 10 * 365 * 86400
