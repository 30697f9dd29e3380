"""Continuous training: watch drift and performance, retrain, gate, promote -- or say why not.

One *cycle* (``ContinuousTrainer.cycle``) is what the loop does whenever new labeled data
lands (the flights example: at the end of each month):

1. **Signals**: data drift of the newest window against the champion's training window
   (``drift_report``), and the champion's score in the policy's metric (ROC AUC, log loss,
   RMSE...) on the newest labeled window against the score it had when it was trained (its
   lineage). Every comparison knows the metric's direction.
2. **Trigger**: drift over threshold, a performance drop over threshold, the schedule, or a
   manual request. A cooldown (in cycles) stops retrain storms.
3. **Train**: an AutoML search on the training window (sliding or expanding), warm-started
   from the champion's configuration, registered as ``challenger``.
4. **Gate** (TFX's Evaluator role): challenger and champion are scored on the same newest
   labeled window; the challenger is promoted only if better by ``promote_margin`` in the
   metric's direction. Serving
   hot-swaps on the alias move. Otherwise the decision says why not.

Every cycle is an :class:`Event` (trigger, drift summary, window, versions, metrics,
decision, reason), logged as a run of MLflow experiment ``raymlops-ct`` -- durable, visible in
the MLflow UI, and what ``raymlops ct status`` lists.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from raymlops.config import Settings

__all__ = ["CTPolicy", "CTRules", "ContinuousTrainer", "Event", "decide_trigger", "decided_periods", "history",
           "log_event",
           "pending_requests", "publish_event_metrics", "request_cycle", "training_window"]

CT_EXPERIMENT = "raymlops-ct"
PERIOD_TAG = "ct_period"  # version tag: the period whose cycle registered the version
Trigger = Literal["drift", "performance", "schedule", "manual", "bootstrap", "resumed"]


class CTRules(BaseModel):
    """When to retrain and when a challenger is good enough: the part of a policy that a
    training spec's ``ct`` section sets as it is."""

    model_config = ConfigDict(extra="forbid")

    drift_share: float = Field(0.5, gt=0, le=1, description="Share of drifted columns that triggers.")
    drift_columns: list[str] | None = Field(None, description="Columns to watch (default: model inputs).")
    performance_drop: float = Field(0.02, ge=0, description="Loss in the metric (its units, in its bad "
                                                            "direction) from the champion's baseline that triggers.")
    schedule_every: int | None = Field(None, ge=1, description="Retrain every N cycles regardless.")
    cooldown: int = Field(1, ge=0, description="Cycles after a retrain in which no trigger retrains.")
    promote_margin: float = Field(0.0, ge=0, description="How much better (in the metric) the challenger must be.")
    trials: int = Field(6, ge=1, description="AutoML trials per retrain.")
    max_steps: int = Field(4, ge=1, description="Steps of an iterative trial.")
    valid_fraction: float = Field(
        0.5, gt=0, lt=1,
        description="Newest share of the window that ranks the trials and gates the challenger. The default "
                    "with a two-period sliding window is the newest period: a whole period of fresh labels "
                    "(replay of 2013: mean AUC 0.7164-0.7187 at 0.5 against 0.7137 at 0.25).")


class CTPolicy(CTRules):
    """The rules applied to one model: its task and metric, window and families."""

    model: str = Field(description="Registered model the loop manages.")
    task: Literal["binary", "multiclass", "regression"] = Field("binary", description="The model's task.")
    metric: str = Field("roc_auc", description="Metric of the performance trigger and the gate.")
    window: Literal["sliding", "expanding"] = Field("sliding", description="Training window kind.")
    window_periods: int = Field(2, ge=1, description="Periods in a sliding window.")
    families: list[str] | None = Field(None, description="Model families (default: every family of the task).")


@dataclass
class Event:
    """One cycle's decision, with its lineage (what ``ct status`` shows)."""

    cycle: int
    period: str
    trigger: str | None
    decision: Literal["none", "cooldown", "promoted", "rejected", "failed", "rollback", "requested"]
    reason: str
    champion_before: int | None
    champion_after: int | None
    challenger: int | None = None
    champion_score: float | None = None
    challenger_score: float | None = None
    baseline_score: float | None = None
    metric: str | None = None
    share_drifted: float | None = None
    dataset_drift: bool | None = None
    data_window: tuple[str, str] | None = None
    seconds: float = 0.0
    at: float = field(default_factory=time.time)
    run_id: str | None = None
    # run ids of the CT requests (alert trigger_ct) this cycle acted on; None in records made
    # before cycles listed them (such a record took every request older than itself)
    requests: list[str] | None = None
    rows: int | None = None  # labelled rows of the period when it was decided (late labels show)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_trigger(
    policy: CTPolicy, *, cycle: int, last_retrain_cycle: int | None, share_drifted: float | None,
    champion_score: float | None, baseline_score: float | None, manual: bool = False,
) -> tuple[Trigger | None, str]:
    """(trigger or None, why). Manual beats cooldown; everything else waits it out."""
    from raymlops.training.objectives import direction

    if manual:
        return "manual", "requested"
    reasons: list[tuple[Trigger, str]] = []
    if share_drifted is not None and share_drifted >= policy.drift_share:
        reasons.append(("drift", f"{share_drifted:.0%} of columns drifted (threshold {policy.drift_share:.0%})"))
    if _finite(champion_score) and _finite(baseline_score):
        loss = baseline_score - champion_score if direction(policy.metric) == "max" else champion_score - baseline_score
        if loss > policy.performance_drop:
            reasons.append(("performance", f"{policy.metric} {champion_score:.4f} vs baseline {baseline_score:.4f} "
                                           f"(worse by > {policy.performance_drop})"))
    if policy.schedule_every and (last_retrain_cycle is None or cycle - last_retrain_cycle >= policy.schedule_every):
        reasons.append(("schedule", f"every {policy.schedule_every} cycles"))
    if not reasons:
        return None, "no drift, no performance drop, not scheduled"
    if last_retrain_cycle is not None and cycle - last_retrain_cycle <= policy.cooldown:
        return None, f"cooldown: retrained at cycle {last_retrain_cycle}; would trigger on " + reasons[0][1]
    return reasons[0][0], "; ".join(r for _, r in reasons)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def training_window(policy: CTPolicy, periods: list[Any], newest: int) -> list[Any]:
    """Periods to train on, ending with ``periods[newest]`` (sliding or expanding)."""
    start = 0 if policy.window == "expanding" else max(0, newest - policy.window_periods + 1)
    return periods[start:newest + 1]


def model_frame(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns ``model`` reads (a Predictor, a Pipeline or the MLP each names its own)."""
    names = (getattr(model, "feature_names", None) or getattr(model, "input_columns", None)
             or list(getattr(model, "feature_names_in_", [])))
    return frame[list(names)] if names else frame


class ContinuousTrainer:
    """The loop's logic over a data source; usable in-process (replay, demo, ``ct run``) or in
    the CT service.

    ``data(periods)`` returns labeled rows (features + label) of those periods, in time order.
    ``search(config_overrides, train_rows, valid_rows, parent_version, refit_rows=window,
    period=name)`` runs AutoML (trials on ``train_rows``, ranked on ``valid_rows``), registers
    the winner refit on ``refit_rows`` (tagged with the period, so an interrupted cycle's
    version is found again) and returns a SearchResult (injected, so the loop is testable
    without Tune). ``targets(frame)`` gives the labels as the models were trained on them.

    Cycle numbers and the cooldown continue from the CT log (MLflow), so a new process -- a
    restarted CT service, the next ``ct run`` -- carries on where the last one stopped.
    """

    def __init__(self, policy: CTPolicy, settings: Settings, data: Callable[[list[Any]], pd.DataFrame],
                 search: Callable[..., Any], *, label: str, timestamp: str, drift_columns: list[str],
                 periods_in: Callable[[list[str]], list[Any]],
                 prepare: Callable[[pd.DataFrame], pd.DataFrame] = lambda f: f,
                 targets: Callable[[pd.DataFrame], np.ndarray] | None = None) -> None:
        self.policy, self.settings = policy, settings
        self.prepare = prepare
        self.data, self.search, self.periods_in = data, search, periods_in
        self.label, self.timestamp = label, timestamp
        self.targets = targets or self._default_targets
        self.drift_columns = policy.drift_columns or drift_columns
        self.events: list[Event] = []
        self.last_retrain_cycle: int | None = None
        self.retrains = 0
        self._cycles_before: int | None = None  # cycles in the CT log when this trainer started

    def _default_targets(self, frame: pd.DataFrame) -> np.ndarray:
        y = frame[self.label]
        return y.astype(np.int64).to_numpy() if y.dtype == bool else y.to_numpy()

    def _resume(self) -> None:
        """Cycle count and last retrain from the CT log (once per trainer)."""
        if self._cycles_before is not None:
            return
        numbers, last = 0, None
        for event in history(self.settings, self.policy.model, limit=100):
            if event["decision"] in ("requested", "rollback"):
                continue
            numbers = max(numbers, int(event.get("cycle") or 0))
            if last is None and event["decision"] in ("promoted", "rejected", "failed") \
                    and event.get("trigger") not in (None, "bootstrap"):
                last = int(event["cycle"])
        self._cycles_before, self.last_retrain_cycle = numbers, last

    def score(self, model: Any, frame: pd.DataFrame) -> float:
        """``model``'s score in the policy's metric on labelled rows (NaN where undefined)."""
        from raymlops.training.objectives import score_model

        y = self.targets(frame)
        if self.policy.task != "regression" and len(pd.unique(pd.Series(y))) < 2:
            return float("nan")
        from raymlops.exceptions import ValidationError

        try:
            return float(score_model(model, self.policy.task, model_frame(model, self.prepare(frame)), y)
                         [self.policy.metric])
        except (ValueError, ValidationError):  # undefined on these rows (e.g. a label it never saw)
            return float("nan")

    # -- registry ---------------------------------------------------------------------------

    def _registry(self) -> Any:
        from raymlops.registry.client import RegistryClient

        return RegistryClient.connect(self.settings)

    def _champion(self) -> tuple[int | None, Any, dict[str, Any] | None]:
        from raymlops.exceptions import NotFoundError

        registry = self._registry()
        try:
            info = registry.get_version(self.policy.model, "champion")
        except NotFoundError:
            return None, None, None
        return int(info["version"]), registry.load(self.policy.model, info["version"]), info

    # -- one cycle --------------------------------------------------------------------------

    def cycle(self, periods: list[Any], newest: int, *, manual: bool = False) -> Event:
        """Run one cycle after ``periods[newest]`` got its labels."""
        from raymlops.monitoring.drift import drift_report

        started = time.perf_counter()
        self._resume()
        number = (self._cycles_before or 0) + len(self.events) + 1
        period = str(periods[newest])
        requests = pending_requests(self.settings, self.policy.model)
        manual = manual or bool(requests)
        champion_v, champion, info = self._champion()
        recent = self.data([periods[newest]])
        share = drifted = None
        champion_score = baseline = None
        if info is not None and (info.get("tags") or {}).get(PERIOD_TAG) == period:
            # This period's cycle promoted its challenger and was stopped before recording it.
            event = Event(number, period, "resumed", "promoted",
                          f"resumed: v{champion_v}, trained for period {period}, was promoted before the "
                          "cycle was interrupted", champion_v, champion_v, challenger=champion_v,
                          metric=self.policy.metric, requests=[r["run_id"] for r in requests], rows=len(recent))
            return self._record(event, started)
        if champion is not None:
            window = (info or {}).get("lineage", {}).get("data_window")
            reference = self._reference(window)
            cols = [c for c in self.drift_columns if c in recent.columns]
            report = drift_report(reference[cols], recent[cols], domain_classifier=False)
            share, drifted = float(report["share_drifted"]), bool(report["dataset_drift"])
            champion_score = self.score(champion, recent)
            baseline = (info or {}).get("lineage", {}).get("metrics", {}).get(self.policy.metric)
        trigger, reason = decide_trigger(
            self.policy, cycle=number, last_retrain_cycle=self.last_retrain_cycle, share_drifted=share,
            champion_score=champion_score, baseline_score=baseline, manual=manual or champion is None,
        )
        if requests and trigger == "manual":
            reason = "requested by " + "; ".join(r["reason"] for r in requests)
        if champion is None:
            trigger, reason = "bootstrap", "no champion yet"
        event = Event(number, period, trigger, "none", reason, champion_v, champion_v,
                      champion_score=champion_score, baseline_score=baseline, share_drifted=share,
                      dataset_drift=drifted, metric=self.policy.metric,
                      requests=[r["run_id"] for r in requests], rows=len(recent))
        if trigger is None:
            event.decision = "cooldown" if reason.startswith("cooldown") else "none"
        else:
            self._retrain(event, periods, newest, info)
        return self._record(event, started)

    def _record(self, event: Event, started: float) -> Event:
        event.seconds = time.perf_counter() - started
        event.run_id = self._log(event)
        self.events.append(event)
        publish_event_metrics(self.policy.model, event)
        return event

    def _reference(self, window: list[str] | None) -> pd.DataFrame:
        """The champion's training rows (by its lineage's data window)."""
        if not window:
            raise ValueError("the champion has no data window in its lineage to compare against")
        return self.data(self.periods_in(list(window)))

    def _retrain(self, event: Event, periods: list[Any], newest: int, info: dict[str, Any] | None) -> None:
        from raymlops.training.dataset import split_by_time, window_bounds
        from raymlops.training.objectives import is_better

        if event.trigger != "bootstrap":  # the first model is not a retrain: no cooldown, not counted
            self.last_retrain_cycle = event.cycle
            self.retrains += 1
        chosen = training_window(self.policy, periods, newest)
        frame = self.data(chosen)
        train_rows, valid_rows = split_by_time(frame, self.policy.valid_fraction, self.timestamp)
        train_rows = self._trial_rows(periods, chosen, frame, train_rows, valid_rows)
        event.data_window = window_bounds(frame, self.timestamp)
        warm = []
        if info and info.get("tags", {}).get("config"):
            warm.append(json.loads(info["tags"]["config"]))
        try:
            result = self.search(warm, train_rows, valid_rows, event.champion_before, refit_rows=frame,
                                 period=event.period)
        except Exception as exc:  # noqa: BLE001 - recorded as the decision, loop keeps going
            event.decision, event.reason = "failed", f"{event.reason}; training failed: {type(exc).__name__}: {exc}"
            return
        challenger_v = int(result.version["version"])
        event.challenger = challenger_v
        registry = self._registry()
        metric = self.policy.metric
        # Gate on rows the candidate never trained on: the winning trial's own model (the
        # registered version is the same configuration refit on the whole window).
        candidate = (result.best_model if result.best_model is not None
                     else registry.load(self.policy.model, challenger_v))
        event.challenger_score = self.score(candidate, valid_rows)
        if event.champion_before is None:
            registry.promote(self.policy.model, challenger_v)
            event.decision, event.champion_after = "promoted", challenger_v
            event.reason = f"{event.reason}; first champion ({metric} {event.challenger_score:.4f})"
            return
        champion = registry.load(self.policy.model, event.champion_before)
        gate_champion = self.score(champion, valid_rows)
        margin = self.policy.promote_margin
        if is_better(event.challenger_score, gate_champion, metric, margin):
            registry.promote(self.policy.model, challenger_v)
            event.decision, event.champion_after = "promoted", challenger_v
            event.reason = (f"{event.reason}; challenger v{challenger_v} {metric} {event.challenger_score:.4f} beats "
                            f"champion v{event.champion_before} {gate_champion:.4f} by >= {margin}")
        else:
            event.decision = "rejected"
            event.reason = (f"{event.reason}; challenger v{challenger_v} {metric} {event.challenger_score:.4f} does "
                            f"not beat champion v{event.champion_before} {gate_champion:.4f} by {margin}")

    def _trial_rows(self, periods: list[Any], chosen: list[Any], frame: pd.DataFrame,
                    train_rows: pd.DataFrame, valid_rows: pd.DataFrame) -> pd.DataFrame:
        """Rows the trials train on: for a sliding window, as long a span as the window's,
        ending where the validation rows start (reaching into the period before the window).

        Why: the gate judges the registered challenger (refit on the whole window) by its
        trial's model on the validation rows. Trained on only the window's older part, that
        model had less history than either the refit or the champion and lost gates the refit
        would have won (replay of 2013: 3 of 7 challengers rejected, months later lost to a
        plain monthly refit). Shifted back, it has the same amount of history, only older.
        """
        first = periods.index(chosen[0])
        if self.policy.window == "expanding" or first == 0 or valid_rows.empty:
            return train_rows
        ts = self.timestamp
        valid_start = valid_rows[ts].min()
        start = valid_start - (frame[ts].max() - frame[ts].min())
        wider = self.data([periods[first - 1], *chosen])
        return wider[(wider[ts] >= start) & (wider[ts] < valid_start)].sort_values(ts, kind="stable")

    def _log(self, event: Event) -> str:
        return log_event(self.settings, self.policy.model, event)


def publish_event_metrics(model: str, event: Event) -> bool:
    """A cycle's metrics: live AUC of the champion it measured (when AUC is the metric), a retrain by its trigger.

    Promotions and rollbacks are counted by the registry actor, where every path (CLI, CT,
    serving) moves the alias.
    """
    from raymlops.metrics import publish

    values: list[tuple[str, float, dict[str, Any]]] = []
    if event.metric == "roc_auc" and _finite(event.champion_score):
        values.append(("raymlops_model_live_auc", event.champion_score,
                       {"model": model, "version": event.champion_before}))
    if event.trigger is not None and event.trigger not in ("bootstrap", "resumed"):
        values.append(("raymlops_retrains_total", 1, {"model": model, "trigger": event.trigger}))
    return publish(values)


def request_cycle(settings: Settings, model: str, reason: str) -> str:
    """Ask for a manual cycle (an alert's ``trigger_ct``): a ``requested`` event in MLflow,
    durable and visible in ``ct status``; the model's next cycle retrains and names it."""
    event = Event(0, time.strftime("%Y-%m-%dT%H:%M:%S"), "alert", "requested", reason, None, None)
    return log_event(settings, model, event)


def pending_requests(settings: Settings, model: str) -> list[dict[str, Any]]:
    """Requests no cycle has acted on yet (newest first), each with its ``run_id``.

    A cycle lists the requests it read (``Event.requests``). One recorded while a cycle ran
    (after it read them) is older than that cycle's record but not in its list: it stays
    pending for the next cycle. Everything older than the second-newest cycle's record was
    there when the newest cycle read, so the scan stops there. A rollback is not a cycle and
    takes nothing; a record without a list (the older record format) took all before it.
    """
    out: list[dict[str, Any]] = []
    taken: set[str] = set()
    cycles = 0
    for event in history(settings, model, limit=50):
        if event["decision"] == "requested":
            if event["run_id"] not in taken:
                out.append(event)
            continue
        if event["decision"] == "rollback":
            continue
        if event.get("requests") is None:
            break
        taken.update(event["requests"])
        cycles += 1
        if cycles == 2:
            break
    return out


EVENT_TAG_LIMIT = 7900  # MLflow keeps tag values up to 8,000 characters


def event_json(event: Event, limit: int = EVENT_TAG_LIMIT) -> str:
    """The event as JSON that fits an MLflow tag and still parses.

    Only the free-text ``reason`` is shortened (it grows with every alert request a cycle
    takes); the request ids stay whole, because ``pending_requests`` reads them to know which
    requests were taken. Cutting the JSON itself would leave a record nothing can read.
    """
    data = event.to_dict()
    text = json.dumps(data, default=str)
    if len(text) <= limit:
        return text
    reason = str(data["reason"])
    keep = max(0, len(reason) - (len(text) - limit) - 40)
    data["reason"] = f"{reason[:keep]}... ({len(reason) - keep} characters cut)"
    text = json.dumps(data, default=str)
    if len(text) > limit:
        raise ValueError(f"CT event of cycle {event.cycle} does not fit an MLflow tag even without its reason")
    return text


def log_event(settings: Settings, model: str, event: Event) -> str:
    """Record a decision as a run of MLflow experiment ``raymlops-ct`` (durable; the UI and
    ``ct status`` read it). Returns the run id."""
    from raymlops.training.tracking import ensure_experiment, tracking_client

    client = tracking_client(settings)
    exp = ensure_experiment(client, CT_EXPERIMENT, str(settings.artifact_location))
    tags = {"raymlops.ct.model": model, "raymlops.ct.decision": event.decision,
            "raymlops.ct.trigger": str(event.trigger), "raymlops.ct.period": event.period,
            "raymlops.ct.event": event_json(event)}
    run = client.create_run(exp.experiment_id, run_name=f"ct-{event.cycle}-{event.period}", tags=tags)
    for key in ("champion_score", "challenger_score", "baseline_score", "share_drifted"):
        value = getattr(event, key)
        if value is not None and value == value:
            client.log_metric(run.info.run_id, key, float(value))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def history(settings: Settings, model: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Past events from MLflow (what ``ct status`` shows, across restarts), newest first,
    each with the ``run_id`` of its record."""
    from raymlops.training.tracking import tracking_client

    client = tracking_client(settings)
    exp = client.get_experiment_by_name(CT_EXPERIMENT)
    if exp is None:
        return []
    query = f"tags.`raymlops.ct.model` = '{model}'" if model else ""
    runs = client.search_runs([exp.experiment_id], filter_string=query, max_results=limit,
                              order_by=["attributes.start_time DESC"])
    return [{**json.loads(r.data.tags["raymlops.ct.event"]), "run_id": r.info.run_id}
            for r in runs if "raymlops.ct.event" in r.data.tags]


CYCLE_DECISIONS = ("none", "cooldown", "promoted", "rejected", "failed")


def decided_periods(settings: Settings, model: str) -> dict[str, dict[str, Any]]:
    """Every period the model's loop has decided, with its (first) decision record.

    Reads the whole CT log of the model (paged), not the newest hundred: a daily loop
    decides hundreds of periods, and an old one read as undecided would be decided twice.
    """
    from raymlops.training.tracking import tracking_client

    client = tracking_client(settings)
    exp = client.get_experiment_by_name(CT_EXPERIMENT)
    if exp is None:
        return {}
    decided: dict[str, dict[str, Any]] = {}
    token = None
    query = f"tags.`raymlops.ct.model` = '{model}'"
    while True:
        page = client.search_runs([exp.experiment_id], filter_string=query, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        for run in page:
            if "raymlops.ct.event" not in run.data.tags:
                continue
            event = {**json.loads(run.data.tags["raymlops.ct.event"]), "run_id": run.info.run_id}
            if event["decision"] in CYCLE_DECISIONS:
                decided.setdefault(str(event["period"]), event)
        token = page.token
        if not token:
            return decided
