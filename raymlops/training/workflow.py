"""From a training spec to a registered model, and to a continuous-training loop over it.

The one machinery every path uses -- ``raymlops train``, ``raymlops ct run``, the CT service,
``jobs/train.py`` and ``jobs/ct.py``, the demo and the 2013 replay:

- :func:`train`: the spec's training window (whole periods), split by time, AutoML, the
  winner registered with its lineage (and bound to the feature service when the spec has one);
- :func:`continuous_trainer`: a :class:`~raymlops.training.ct.ContinuousTrainer` over the
  spec's periods;
- :func:`plan` and :func:`run_pending`: the periods whose labels have arrived and that have
  no decision yet, decided in order. Deciding is idempotent (a decided period is skipped) and
  resumable (an interrupted period has no decision, so the next run decides it; the version
  its search registered is found again by idempotency key instead of registered twice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from raymlops.config import Settings
from raymlops.exceptions import ValidationError
from raymlops.training.dataset import LabelledData, split_by_time, window_bounds
from raymlops.training.periods import periods_between

__all__ = ["CTPlan", "champion_window", "continuous_trainer", "labelled_data", "plan", "run_pending", "train",
           "train_window"]

CT_EXPERIMENT = "raymlops-ct-training"


def labelled_data(spec: Any, settings: Settings | None = None, features: Any = None) -> LabelledData:
    """The spec's data; the feature service (if any) is resolved from the running platform."""
    if features is None and spec.features.service is not None:
        from raymlops.features.client import FeatureStoreClient

        features = FeatureStoreClient.connect(settings)
    return LabelledData(spec, features)


def _register_kwargs(spec: Any) -> dict[str, Any]:
    if spec.features.service is None:
        return {}
    return {"feature_service": spec.features.service, "entity_timestamp": spec.labels.timestamp}


def train_window(spec: Any, data: LabelledData) -> list[pd.Period]:
    """The periods ``raymlops train`` fits on: ``train.start``..``train.end`` or, by default,
    the newest ``window.periods`` periods ending with the newest one whose labels are in."""
    present = data.periods()
    if not present:
        raise ValidationError("the label source has no labelled rows", field="labels")
    closed = data.closed() or present
    end = data.parse(spec.train.end) if spec.train.end else closed[-1]
    start = data.parse(spec.train.start) if spec.train.start else end - (spec.window.periods - 1)
    chosen = periods_between(start, end)
    if not chosen:
        raise ValidationError(f"train.start {start} is after train.end {end}", field="train")
    return chosen


def train(spec: Any, settings: Settings, *, on_trial: Any = None, trials: int | None = None,
          data: LabelledData | None = None, parent_version: int | None = None) -> Any:
    """AutoML on the spec's training window; the best model registered (alias from the spec)."""
    from raymlops.training.automl import preload_search_driver, run_search

    preload_search_driver(settings)  # overlaps with reading labels and joining features
    data = data or labelled_data(spec, settings)
    frame = data.frame(train_window(spec, data))
    if frame.empty:
        raise ValidationError("the training window has no labelled rows", field="train")
    train_rows, valid_rows = split_by_time(frame, spec.train.valid_fraction, data.timestamp)
    return run_search(
        spec.search_config(trials=trials), data.train_data(train_rows, valid_rows), settings=settings,
        data_window=window_bounds(frame, data.timestamp), feature_views=data.view_versions(),
        register_kwargs=_register_kwargs(spec), on_trial=on_trial, parent_version=parent_version,
    )


def continuous_trainer(spec: Any, settings: Settings, data: LabelledData | None = None,
                       policy: Any = None) -> Any:
    """A ContinuousTrainer over the spec's periods (its searches run as the spec's CT section
    says: fewer trials and steps than ``train``, warm-started from the champion)."""
    from raymlops.training.automl import preload_search_driver, run_search
    from raymlops.training.ct import PERIOD_TAG, ContinuousTrainer

    preload_search_driver(settings)  # overlaps with the feature retrieval and the first cycle's drift
    data = data or labelled_data(spec, settings)
    policy = policy or spec.ct_policy()

    def search(warm: list[dict[str, Any]], train_rows: pd.DataFrame, valid_rows: pd.DataFrame,
               parent_version: int | None, refit_rows: pd.DataFrame | None = None,
               period: str | None = None) -> Any:
        config = spec.search_config(trials=policy.trials, max_steps=policy.max_steps, alias="challenger",
                                    experiment=CT_EXPERIMENT, warm_start=warm)
        config = config.model_copy(update={"families": list(policy.families or config.families),
                                           "name": policy.model})
        if refit_rows is None:
            refit_rows = pd.concat([train_rows, valid_rows], ignore_index=True)
        register = _register_kwargs(spec)
        if period is not None:  # an interrupted cycle's version is found again, not made twice
            register.update(idempotency_key=f"ct:{policy.model}:{period}", tags={PERIOD_TAG: period})
        return run_search(config, data.train_data(train_rows, valid_rows), settings=settings,
                          refit_data=data.train_data(refit_rows, valid_rows),
                          data_window=window_bounds(refit_rows, data.timestamp),
                          feature_views=data.view_versions(), parent_version=parent_version,
                          register_kwargs=register)

    return ContinuousTrainer(policy, settings, data.frame, search, label=data.label, timestamp=data.timestamp,
                             drift_columns=data.drift_columns(), periods_in=data.periods_in,
                             prepare=data.model_inputs, targets=data.labels)


@dataclass
class CTPlan:
    """What ``ct run`` would do now: the periods to decide, in order, and what it noticed."""

    model: str
    closed: list[str]  # periods whose labels are in
    decided: list[str]
    pending: list[str]  # closed, not decided, from ``start`` on
    start: str | None  # first period the loop decides
    late: list[dict[str, Any]] = field(default_factory=list)  # decided periods that got more labels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(spec: Any, settings: Settings, data: LabelledData, *, now: pd.Timestamp | None = None,
         champion_window: list[str] | None = None) -> CTPlan:
    """Which periods to decide: closed (labels in, plus the spec's grace), not decided yet,
    from the loop's first period on -- ``ct.start``, else the first period it ever decided,
    else the first after the champion's training window, else (no champion) the newest
    closed period, where the first champion is trained.

    Labels that arrived for an already-decided period are reported in ``late`` and never
    re-decided: the decision stands, and the rows count in later training windows.
    """
    from raymlops.training.ct import decided_periods

    closed = data.closed(now=now, grace=spec.ct.grace_periods)
    decided = decided_periods(settings, spec.name)
    if spec.ct.start:
        start = data.parse(spec.ct.start)
    elif decided:
        start = min(data.parse(p) for p in decided)
    elif champion_window:
        start = data.periods_in(champion_window)[-1] + 1
    else:
        start = closed[-1] if closed else None
    pending = [str(p) for p in closed if start is not None and p >= start and str(p) not in decided]
    counts = data.counts()
    late = [{"period": p, "rows_at_decision": e["rows"], "rows_now": counts.get(p, 0)}
            for p, e in sorted(decided.items())
            if e.get("rows") is not None and counts.get(p, 0) > int(e["rows"])]
    return CTPlan(spec.name, [str(p) for p in closed], sorted(decided), pending,
                  None if start is None else str(start), late)


def champion_window(settings: Settings, model: str) -> list[str] | None:
    from raymlops.exceptions import NotFoundError
    from raymlops.registry.client import RegistryClient

    try:
        info = RegistryClient.connect(settings).get_version(model, "champion")
    except NotFoundError:
        return None
    return (info.get("lineage") or {}).get("data_window")


def run_pending(spec: Any, settings: Settings, *, manual: bool = False, data: LabelledData | None = None,
                trainer: Any = None, on_event: Callable[[Any], None] | None = None,
                on_plan: Callable[[CTPlan], None] | None = None,
                on_start: Callable[[str, int, int], None] | None = None,
                now: pd.Timestamp | None = None, limit: int | None = None) -> tuple[CTPlan, list[Any]]:
    """Decide every pending period in order (at most ``limit``); returns the plan and the events.
    ``on_plan`` sees the plan before the first cycle, ``on_start``/``on_event`` each cycle.

    ``manual`` makes the first pending cycle retrain whatever the signals say.
    """
    from raymlops.training.ct import decided_periods

    data = data or labelled_data(spec, settings)
    data.refresh()
    the_plan = plan(spec, settings, data, now=now, champion_window=champion_window(settings, spec.name))
    if on_plan is not None:
        on_plan(the_plan)
    todo = the_plan.pending[:limit] if limit is not None else the_plan.pending
    if not todo:
        return the_plan, []
    trainer = trainer or continuous_trainer(spec, settings, data)
    first = data.periods()[0]
    events = []
    for i, name in enumerate(todo):
        if name in decided_periods(settings, spec.name):  # decided meanwhile (another runner)
            continue
        if on_start is not None:
            on_start(name, i, len(todo))
        period = data.parse(name)
        calendar = periods_between(min(first, period), period)
        event = trainer.cycle(calendar, len(calendar) - 1, manual=manual and i == 0)
        events.append(event)
        if on_event is not None:
            on_event(event)
    return the_plan, events
