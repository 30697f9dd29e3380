"""The alert evaluator: scrape, evaluate, record, act -- in-process or as the actor
``raymlops-alerts``.

:class:`AlertService` is one evaluation loop over injected parts (where samples come from,
where history goes, how CT is asked), so tests run it in-process with made-up samples and a
local webhook. :class:`AlertsActor` is the same loop on the cluster: a detached actor (no
CPU reserved, restarted if it dies) created lazily by ``raymlops alerts start`` (or any
``raymlops alerts`` command once rules were installed). Its rules are copied to
``<root>/alerts/rules.yaml`` so a restarted actor evaluates the same rules, and it reloads
which alerts are firing from the history, so a restart never re-notifies them.

Samples come from Ray's metrics agents (:mod:`raymlops.monitoring.scrape`): on every node,
what Prometheus would scrape, with no Prometheus needed.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from raymlops.config import Settings, load_settings
from raymlops.monitoring.alert_actions import CTRequester, run_actions
from raymlops.monitoring.alert_eval import Evaluator, Transition
from raymlops.monitoring.alert_rules import RuleSet, load_rules
from raymlops.monitoring.alert_store import AlertStore
from raymlops.monitoring.scrape import Sample

__all__ = ["ALERTS_ACTOR", "AlertService", "AlertsActor", "alerts_actor", "history_path",
           "install_rules", "rules_path"]

ALERTS_ACTOR = "raymlops-alerts"
log = logging.getLogger("raymlops.alerts")


def rules_path(settings: Settings) -> Path:
    return settings.storage_root / "alerts" / "rules.yaml"


def history_path(settings: Settings) -> Path:
    return settings.storage_root / "alerts" / "alerts.db"


def install_rules(settings: Settings, source: str | Path) -> RuleSet:
    """Validate ``source`` and make it the platform's rules (what a restarted actor loads)."""
    rules = load_rules(source)
    target = rules_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return rules


def mlflow_ct_requester(settings: Settings) -> CTRequester:
    """``trigger_ct`` through MLflow: a ``requested`` CT event the next cycle acts on."""
    def request(model: str, t: Transition) -> str:
        from raymlops.training.ct import request_cycle

        return request_cycle(settings, model, f"alert {t.rule.name} ({t.summary()})")
    return request


class AlertService:
    """One evaluation loop: ``tick()`` scrapes, evaluates, records, then acts."""

    def __init__(self, rules: RuleSet, store: AlertStore, source: Callable[[], Iterable[Sample]],
                 request_ct: CTRequester | None = None) -> None:
        self.rules, self.store, self.source, self.request_ct = rules, store, source, request_ct
        self.evaluator = Evaluator(rules, firing=store.open_alerts())
        self.last_tick: float | None = None
        self.last_error: str | None = None

    def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """Evaluate once; returns the transitions (with their action results)."""
        now = time.time() if now is None else now
        samples = list(self.source())
        out = []
        for t in self.evaluator.step(samples, now):
            alert_id = self.store.record(t)  # durable before anyone is told
            results = run_actions(t, self.request_ct)
            self.store.add_action_results(alert_id, results)
            out.append({**t.to_dict(), "id": alert_id, "actions": results})
        self.last_tick = now
        return out

    def status(self) -> dict[str, Any]:
        now = time.time()
        return {"interval_s": self.rules.interval_s, "last_tick": self.last_tick,
                "last_error": self.last_error,
                "rules": [{"name": r.name, "condition": r.expr.describe(), "for_s": r.for_s,
                           "severity": r.severity, "actions": [a.type for a in r.actions]}
                          for r in self.rules.rules],
                "active": self.evaluator.active(now)}


class AlertsActor:
    """The detached ``raymlops-alerts`` actor: :class:`AlertService` on a timer thread."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from raymlops.monitoring.scrape import scrape, targets_from_nodes

        self.settings = load_settings(**{k: v for k, v in settings.items() if v is not None})
        self.service = AlertService(
            load_rules(rules_path(self.settings)), AlertStore(history_path(self.settings)),
            lambda: scrape(targets_from_nodes()), mlflow_ct_requester(self.settings))
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, daemon=True, name="alerts").start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                try:
                    self.service.tick()
                    self.service.last_error = None
                except Exception as exc:  # noqa: BLE001 - keep evaluating; status shows it
                    self.service.last_error = f"{type(exc).__name__}: {exc}"
                    log.error("alert evaluation failed: %s", self.service.last_error)
            time.sleep(self.service.rules.interval_s)

    def reload(self) -> int:
        """Take the installed rules again (alerts of removed rules are dropped)."""
        with self._lock:
            self.service = AlertService(
                load_rules(rules_path(self.settings)), self.service.store, self.service.source,
                self.service.request_ct)
        return len(self.service.rules.rules)

    def tick(self) -> list[dict[str, Any]]:
        with self._lock:
            return self.service.tick()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return self.service.status()


def alerts_actor(settings: Settings, create: bool = True) -> Any:
    """The ``raymlops-alerts`` actor (created if ``create`` and rules are installed)."""
    import ray

    from raymlops.exceptions import ConfigError

    try:
        return ray.get_actor(ALERTS_ACTOR, namespace=settings.namespace)
    except ValueError:
        if not create:
            return None
    if not rules_path(settings).is_file():
        raise ConfigError("no alert rules installed; run `raymlops alerts start --rules FILE`",
                          field="rules")
    return ray.remote(AlertsActor).options(
        name=ALERTS_ACTOR, namespace=settings.namespace, lifetime="detached",
        get_if_exists=True, num_cpus=0, max_restarts=-1, max_task_retries=-1,
    ).remote(settings.model_dump(mode="json"))
