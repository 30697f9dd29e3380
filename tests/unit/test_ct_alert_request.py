"""An alert's ``trigger_ct`` reaches continuous training: the alert evaluator fires a rule,
its action records a CT request in MLflow, the next cycle runs as manual, names the alert and
lists the request it consumed, and no later cycle sees it again. A request recorded while a
cycle is running is not lost: the cycle after takes it. Without Ray: the evaluator runs
in-process on made-up samples, the registry and the AutoML search are small fakes, MLflow is
a SQLite file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from raymlops.config import Settings, load_settings
from raymlops.exceptions import NotFoundError
from raymlops.monitoring.alert_rules import load_rules
from raymlops.monitoring.alert_store import AlertStore
from raymlops.monitoring.alerts import AlertService, mlflow_ct_requester
from raymlops.monitoring.scrape import Sample
from raymlops.training.ct import (
    ContinuousTrainer,
    CTPolicy,
    Event,
    history,
    log_event,
    pending_requests,
    request_cycle,
)

MODEL = "flights-delay"
FEATURES = ["x1", "x2"]
PERIODS = [1, 2, 3, 4, 5, 6]


def errors(value: float, model: str) -> Sample:
    return Sample("ray_raymlops_errors_total",
                  (("error", "x"), ("model", model), ("status", "500")), value)


def month(period: int) -> pd.DataFrame:
    """Labeled rows of one period, the same distribution every period (no drift)."""
    rng = np.random.default_rng(period)
    n = 300
    frame = pd.DataFrame({"x1": rng.normal(0, 1, n), "x2": rng.normal(0, 1, n)})
    frame["label"] = (frame["x1"] + 0.5 * frame["x2"] + rng.normal(0, 0.5, n) > 0).astype(int)
    frame["ts"] = pd.Timestamp(f"2013-{period:02d}-01", tz="UTC") + pd.to_timedelta(
        np.arange(n), unit="h")
    return frame


class FakeRegistry:
    """What the trainer asks of the registry: the champion, a version's model, promote."""

    def __init__(self) -> None:
        self.models: dict[int, Any] = {}
        self.infos: dict[int, dict[str, Any]] = {}
        self.champion: int | None = None

    def add(self, model: Any, window: list[str], auc: float) -> int:
        version = len(self.models) + 1
        self.models[version] = model
        self.infos[version] = {"version": version, "tags": {}, "lineage": {
            "data_window": window, "metrics": {"roc_auc": auc}}}
        return version

    def get_version(self, name: str, ref: str) -> dict[str, Any]:
        assert (name, ref) == (MODEL, "champion")
        if self.champion is None:
            raise NotFoundError("no champion")
        return self.infos[self.champion]

    def load(self, name: str, version: int) -> Any:
        return self.models[int(version)]

    def promote(self, name: str, version: int) -> None:
        self.champion = int(version)


def fit(rows: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression().fit(rows[FEATURES], rows["label"])


class Trainer(ContinuousTrainer):
    def __init__(self, settings: Settings, registry: FakeRegistry, on_data=None) -> None:
        self.fake_registry, self.on_data, self.searches = registry, on_data, 0
        super().__init__(
            CTPolicy(model=MODEL, window="expanding", cooldown=1, drift_share=0.9,
                     performance_drop=0.5, trials=1),
            settings, self._data, self._search, label="label", timestamp="ts",
            drift_columns=FEATURES, periods_in=lambda window: [1, 2])

    def _registry(self) -> FakeRegistry:
        return self.fake_registry

    def _data(self, periods: list[Any]) -> pd.DataFrame:
        if self.on_data is not None:
            self.on_data()
        return pd.concat([month(p) for p in periods], ignore_index=True)

    def _search(self, warm: list, train_rows: pd.DataFrame, valid_rows: pd.DataFrame,
                parent: int | None, **_: Any) -> SimpleNamespace:
        self.searches += 1
        model = fit(train_rows)
        version = self.fake_registry.add(model, ["2013-01-01", "2013-02-28"], 0.9)
        return SimpleNamespace(version={"version": version}, best_model=model)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(storage_root=tmp_path / "root")


@pytest.fixture
def registry() -> FakeRegistry:
    reg = FakeRegistry()
    reg.promote(MODEL, reg.add(fit(pd.concat([month(1), month(2)])), ["2013-01-01", "2013-02-28"],
                               0.9))
    return reg


def test_a_fired_alert_makes_the_next_cycle_manual_once(settings: Settings, registry,
                                                        tmp_path: Path) -> None:
    rules = load_rules({"rules": [{
        "name": "serving-errors", "for": "0s", "severity": "critical",
        "summary": "{model}: {value:g} errors",
        "expr": {"metric": "raymlops_errors_total", "by": ["model"], "op": ">", "threshold": 5},
        "actions": [{"type": "log"}, {"type": "trigger_ct", "model": MODEL}]}]})
    feed = [[errors(9, MODEL)]]
    alerts = AlertService(rules, AlertStore(tmp_path / "alerts.db"), lambda: feed[-1],
                          mlflow_ct_requester(settings))
    trainer = Trainer(settings, registry)

    # A quiet cycle first: nothing requested, no drift, no drop -> no retrain.
    quiet = trainer.cycle(PERIODS, 2)
    assert (quiet.trigger, quiet.decision, quiet.requests) == (None, "none", [])

    (fired,) = alerts.tick(now=100.0)
    assert fired["status"] == "firing"
    (ct_action,) = [a for a in fired["actions"] if a["action"] == "trigger_ct"]
    assert ct_action["ok"] and ct_action["model"] == MODEL
    request_id = ct_action["run_id"]
    (pending,) = pending_requests(settings, MODEL)
    assert pending["run_id"] == request_id and "serving-errors" in pending["reason"]
    assert alerts.tick(now=101.0) == []  # still firing: deduplicated, no second request
    assert len(pending_requests(settings, MODEL)) == 1

    # The next cycle consumes it: manual (beating the cooldown), retrains, names the alert.
    manual = trainer.cycle(PERIODS, 3)
    assert manual.trigger == "manual" and trainer.searches == 1
    assert manual.decision in ("promoted", "rejected"), manual.reason
    assert manual.reason.startswith(f"requested by alert serving-errors ({MODEL}: 9 errors)")
    assert manual.requests == [request_id]
    recorded = history(settings, MODEL, limit=1)[0]
    assert recorded["run_id"] == manual.run_id and recorded["requests"] == [request_id]
    assert pending_requests(settings, MODEL) == []

    # The following cycle does not see it again (and is in cooldown: no retrain).
    after = trainer.cycle(PERIODS, 4)
    assert after.trigger is None and after.requests == [] and trainer.searches == 1
    assert "requested" not in after.reason


def test_a_request_recorded_during_a_cycle_goes_to_the_next_one(settings: Settings,
                                                               registry) -> None:
    requested: list[str] = []

    def alert_fires_mid_cycle() -> None:  # after the cycle read its requests
        if not requested:
            requested.append(request_cycle(settings, MODEL, "alert late (mid-cycle)"))

    trainer = Trainer(settings, registry, on_data=alert_fires_mid_cycle)
    during = trainer.cycle(PERIODS, 2)
    assert during.trigger is None and during.requests == [] and requested
    trainer.on_data = None
    assert [r["run_id"] for r in pending_requests(settings, MODEL)] == requested
    taken = trainer.cycle(PERIODS, 3)
    assert taken.trigger == "manual" and taken.requests == requested
    assert "alert late" in taken.reason
    assert pending_requests(settings, MODEL) == []
    assert trainer.cycle(PERIODS, 4).requests == []


def test_a_rollback_takes_no_request_and_old_records_took_all(settings: Settings) -> None:
    waiting = request_cycle(settings, MODEL, "alert a")
    log_event(settings, MODEL, Event(0, "2013-05", "manual", "rollback", "by hand", 2, 1))
    assert [r["run_id"] for r in pending_requests(settings, MODEL)] == [waiting]
    # a cycle record without a request list (written before cycles kept one) took everything
    log_event(settings, MODEL, Event(3, "2013-05", "manual", "rejected", "requested", 1, 1))
    assert pending_requests(settings, MODEL) == []
