"""The CT service on the shared cluster: it decides newly labelled periods by itself, its
status answers while a check trains, and killed mid-cycle it comes back and decides every
period exactly once (no duplicate, no lost decision), registering no period's model twice."""

from __future__ import annotations

import importlib.util
import time
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]


def _write_months(out: Path, until: str) -> None:
    path = REPO / "examples" / "seattle_weather" / "write_labels.py"
    module_spec = importlib.util.spec_from_file_location("seattle_labels", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.write_months(out, until)


def _decision_records(settings, model: str) -> Counter:
    """How many decision records each period has in the CT log (all of them, not the first)."""
    from raymlops.training.ct import CT_EXPERIMENT, CYCLE_DECISIONS, history

    assert CT_EXPERIMENT
    return Counter(e["period"] for e in history(settings, model, limit=1000) if e["decision"] in CYCLE_DECISIONS)


def test_killed_mid_cycle_the_service_decides_every_period_once(platform, tmp_path: Path) -> None:
    import ray

    from raymlops import cluster
    from raymlops.training.ct import history
    from raymlops.training.ct_service import CT_SERVICE_ACTOR
    from raymlops.training.spec import parse_spec

    settings = platform.settings
    model = "ct-service-kill"
    _write_months(tmp_path / "labels", "2012-05")
    spec = parse_spec({
        "name": model, "task": "multiclass", "metric": "log_loss",
        "labels": {"path": str(tmp_path / "labels"), "timestamp": "date", "label": "weather"},
        "features": {"columns": ["precipitation", "temp_max", "temp_min", "wind"]},
        "period": "month", "window": {"periods": 2},
        "search": {"families": ["logreg", "rf"], "trials": 1, "max_steps": 1},
        "ct": {"trials": 1, "max_steps": 1, "cooldown": 0, "schedule_every": 1, "start": "2012-02"},
    })
    service = cluster.platform_actor(CT_SERVICE_ACTOR, settings)
    try:
        ray.get(service.start.remote(spec.model_dump(mode="json"), 1.0), timeout=60)

        deadline = time.monotonic() + 120
        while True:  # a check is training: status still answers
            (row,) = [r for r in ray.get(service.status.remote(), timeout=30) if r["model"] == model]
            if row["running"] and time.time() - row["running_since"] > 3:
                break
            assert time.monotonic() < deadline, row
            time.sleep(0.5)
        ray.kill(service, no_restart=False)  # killed mid-cycle; Ray restarts it

        deadline = time.monotonic() + 400
        periods = {"2012-02", "2012-03", "2012-04", "2012-05"}  # every month written is over by now
        while set(_decision_records(settings, model)) != periods:
            assert time.monotonic() < deadline, _decision_records(settings, model)
            time.sleep(2)
        time.sleep(3)  # a duplicate would be written by a check still running now
        counts = _decision_records(settings, model)
        assert counts == Counter(dict.fromkeys(periods, 1)), counts
        # The kill is no training failure: the interrupted period was redone, not recorded failed.
        decisions = {e["period"]: e["decision"] for e in history(settings, model, limit=50)}
        assert "failed" not in decisions.values(), decisions
        (row,) = [r for r in ray.get(service.status.remote(), timeout=30) if r["model"] == model]
        assert row["checks"] >= 1  # the restarted service reloaded its schedule from storage

        from raymlops.registry.client import RegistryClient

        versions = RegistryClient.connect(settings).list_versions(model)
        # No period registered twice (a redone cycle reuses its version by idempotency key);
        # a cycle that found its promotion already made registers nothing.
        registered_for = [v["tags"].get("ct_period") for v in versions]
        assert len(registered_for) == len(set(registered_for)) and set(registered_for) <= periods, registered_for
    finally:
        ray.get(service.stop.remote(), timeout=60)
