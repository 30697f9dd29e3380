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
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from raymlops.config import Settings, load_settings
from raymlops.exceptions import ConfigError
from raymlops.monitoring.alert_actions import CTRequester, run_actions
from raymlops.monitoring.alert_eval import Evaluator, Transition
from raymlops.monitoring.alert_rules import RuleSet, load_rules
from raymlops.monitoring.alert_store import AlertStore
from raymlops.monitoring.scrape import Sample
from raymlops.platform import HEAD_PINNED

__all__ = ["ALERTS_ACTOR", "AlertService", "AlertsActor", "alerts_actor", "history_path",
           "install_rules", "installed_rules", "rules_path"]

ALERTS_ACTOR = "raymlops-alerts"
log = logging.getLogger("raymlops.alerts")


RULES_KEY = "alerts/rules.yaml"


def rules_path(settings: Settings) -> str:
    """Where the installed rules live (a URI under the storage root, for messages)."""
    return settings.storage.uri_of(RULES_KEY)


def installed_rules(settings: Settings) -> RuleSet | None:
    """The platform's rules, as a restarted actor on any node reads them; None if none."""
    try:
        text = settings.storage.read_text(RULES_KEY)
    except FileNotFoundError:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"alert rules {rules_path(settings)} are not YAML: {exc}",
                          field="rules") from None
    if not isinstance(data, dict):
        raise ConfigError(f"alert rules {rules_path(settings)} must be a mapping", field="rules")
    return load_rules(data)


def history_path(settings: Settings) -> str:
    """The alert history's SQL database: the platform's own (``feature_registry_uri``),
    which every host reaches (PostgreSQL on a cluster)."""
    return str(settings.feature_registry_uri)


def install_rules(settings: Settings, source: str | Path) -> RuleSet:
    """Validate ``source`` and make it the platform's rules (what a restarted actor loads)."""
    rules = load_rules(source)
    settings.storage.write_bytes(RULES_KEY, Path(source).read_bytes())
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
            self._rules(), AlertStore(history_path(self.settings)),
            lambda: scrape(targets_from_nodes()), mlflow_ct_requester(self.settings))
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, daemon=True, name="alerts").start()

    def _rules(self) -> RuleSet:
        rules = installed_rules(self.settings)
        if rules is None:
            raise ConfigError(f"no alert rules at {rules_path(self.settings)}", field="rules")
        return rules

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
                self._rules(), self.service.store, self.service.source,
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

    try:
        return ray.get_actor(ALERTS_ACTOR, namespace=settings.namespace)
    except ValueError:
        if not create:
            return None
    if installed_rules(settings) is None:
        raise ConfigError("no alert rules installed; run `raymlops alerts start --rules FILE`",
                          field="rules")
    return ray.remote(AlertsActor).options(
        name=ALERTS_ACTOR, namespace=settings.namespace, lifetime="detached",
        get_if_exists=True, num_cpus=0, max_restarts=-1, max_task_retries=-1, **HEAD_PINNED,
    ).remote(settings.model_dump(mode="json"))
