"""Replay labelled periods: the frozen model, a fixed per-period retrain, and the CT loop.

The proof that the loop earns its keep, for any spec (the 2013 flights in
``benchmarks/replay_2013.py``). All three start from the same model, the loop's bootstrap,
trained on the window ending just before the first replayed period. Then for each period:

- each model is scored on that period in the spec's metric, as if it had served it;
- afterwards, with the period's labels in: (b) refits its fixed configuration on the last
  ``window.periods`` periods, every period; (c) the loop runs a cycle -- drift, performance,
  maybe an AutoML retrain and a gated promotion. (a) never changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raymlops.config import Settings

__all__ = ["ReplayResult", "frame_table", "replay"]


@dataclass
class ReplayResult:
    periods: list[str]
    metric: str
    scores: dict[str, list[float]]          # frozen / monthly / loop -> score per period
    retrains: dict[str, int]
    promotions: int
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def mean(self, key: str) -> float:
        return float(np.nanmean(self.scores[key]))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": {k: self.mean(k) for k in self.scores}}


def replay(spec: Any, settings: Settings, periods: list[str], *, data: Any = None, policy: Any = None,
           on_period: Callable[[str, dict[str, float]], None] | None = None) -> ReplayResult:
    """Run the replay over ``periods`` (names, in order; needs the platform and, if the spec
    has one, its feature service)."""
    from raymlops.registry.client import RegistryClient
    from raymlops.training.families import train_steps
    from raymlops.training.periods import periods_between
    from raymlops.training.workflow import continuous_trainer, labelled_data

    started = time.perf_counter()
    data = data or labelled_data(spec, settings)
    policy = policy or spec.ct_policy()
    trainer = continuous_trainer(spec, settings, data, policy=policy)
    wanted = [data.parse(p) for p in periods]
    calendar = periods_between(min(data.periods()[0], wanted[0] - 1), wanted[-1])
    registry = RegistryClient.connect(settings)
    boot = trainer.cycle(calendar, calendar.index(wanted[0] - 1), manual=True)
    if boot.champion_after is None:
        raise RuntimeError(f"the bootstrap training did not produce a champion: {boot.reason}")
    frozen = registry.load(policy.model, boot.champion_after)
    config = json.loads(registry.get_version(policy.model, boot.champion_after)["tags"]["config"])
    family = config.pop("family")

    def refit(last: pd.Period) -> Any:
        frame = data.frame(periods_between(last - (policy.window_periods - 1), last))
        fit = data.train_data(frame, frame.head(1))
        *_, (_, model, _) = train_steps(family, config, fit, policy.max_steps)
        return model

    fixed = refit(wanted[0] - 1)
    scores: dict[str, list[float]] = {"frozen": [], "monthly": [], "loop": []}
    retrains = {"monthly": 0, "loop": 0}
    for i, period in enumerate(wanted):
        rows = data.frame([period])
        champion = registry.load(policy.model, "champion")
        now = {"frozen": trainer.score(frozen, rows), "monthly": trainer.score(fixed, rows),
               "loop": trainer.score(champion, rows)}
        for key, value in now.items():
            scores[key].append(value)
        if on_period is not None:
            on_period(str(period), now)
        if i == len(wanted) - 1:
            break
        fixed = refit(period)
        retrains["monthly"] += 1
        before = trainer.retrains
        trainer.cycle(calendar, calendar.index(period))
        retrains["loop"] += trainer.retrains - before
    promotions = sum(1 for e in trainer.events[1:] if e.decision == "promoted")
    return ReplayResult([str(p) for p in wanted], str(policy.metric), scores, retrains, promotions,
                        [e.to_dict() for e in trainer.events], time.perf_counter() - started)


def frame_table(result: ReplayResult) -> pd.DataFrame:
    table = pd.DataFrame(result.scores, index=result.periods)
    table.index.name = "period"
    return table
