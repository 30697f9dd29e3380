"""Replay 2013 month by month: the frozen model, a fixed monthly retrain, and the CT loop.

The proof that the loop earns its keep. All three start from the same model, trained on
January-February (the loop's bootstrap). Then for each following month:

- each model is scored on that month (ROC AUC on its real delays), as if it had served it;
- afterwards, with the month's labels in: (b) refits its fixed configuration on the last
  two months, every month; (c) the loop runs a cycle -- drift, performance, maybe an AutoML
  retrain and a gated promotion. (a) never changes.
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
from raymlops.training.ct import CTPolicy

__all__ = ["ReplayResult", "replay"]


@dataclass
class ReplayResult:
    months: list[int]
    auc: dict[str, list[float]]          # frozen / monthly / loop -> AUC per month
    retrains: dict[str, int]
    promotions: int
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def mean(self, key: str) -> float:
        return float(np.nanmean(self.auc[key]))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": {k: self.mean(k) for k in self.auc}}


def _auc(proba: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, proba)) if len(np.unique(y)) > 1 else float("nan")


def replay(settings: Settings, policy: CTPolicy, months: list[int] | None = None, *,
           features: Any = None, on_month: Callable[[int, dict[str, float]], None] | None = None) -> ReplayResult:
    """Run the replay (needs the platform and the flights feature store)."""
    from raymlops.registry.client import RegistryClient
    from raymlops.training.ct_flights import flights_trainer
    from raymlops.training.families import train_steps
    from raymlops.training.flights import LABEL, train_data

    started = time.perf_counter()
    months = months or list(range(3, 13))
    calendar = list(range(1, 13))
    trainer = flights_trainer(policy, settings, features)
    registry = RegistryClient.connect(settings)
    boot = trainer.cycle(calendar, calendar.index(months[0] - 1), manual=True)
    if boot.champion_after is None:
        raise RuntimeError(f"the bootstrap training did not produce a champion: {boot.reason}")
    frozen = registry.load(policy.model, boot.champion_after)
    config = json.loads(registry.get_version(policy.model, boot.champion_after)["tags"]["config"])
    family = config.pop("family")

    def refit(window: list[int]) -> Any:
        frame = trainer.data(window)
        data = train_data(frame, frame.head(1))
        *_, (step, model, _) = train_steps(family, config, data, policy.max_steps)
        return model, data.columns_for(family)

    fixed, fixed_cols = refit([months[0] - 2, months[0] - 1])
    auc: dict[str, list[float]] = {"frozen": [], "monthly": [], "loop": []}
    retrains = {"monthly": 0, "loop": 0}
    for i, month in enumerate(months):
        rows = trainer.data([month])
        y = rows[LABEL].astype(int).to_numpy()
        inputs = train_data(rows, rows.head(1)).X_train
        champion = registry.load(policy.model, "champion")
        scores = {"frozen": _auc(frozen.predict_proba(inputs)[:, 1], y),
                  "monthly": _auc(fixed.predict_proba(inputs[fixed_cols])[:, 1], y),
                  "loop": _auc(champion.predict_proba(inputs)[:, 1], y)}
        for key, value in scores.items():
            auc[key].append(value)
        if on_month is not None:
            on_month(month, scores)
        if i == len(months) - 1:
            break
        fixed, fixed_cols = refit([month - 1, month])
        retrains["monthly"] += 1
        before = trainer.retrains
        trainer.cycle(calendar, calendar.index(month))
        retrains["loop"] += trainer.retrains - before
    promotions = sum(1 for e in trainer.events[1:] if e.decision == "promoted")
    return ReplayResult(months, auc, retrains, promotions, [e.to_dict() for e in trainer.events],
                        time.perf_counter() - started)


def frame_table(result: ReplayResult) -> pd.DataFrame:
    table = pd.DataFrame(result.auc, index=result.months)
    table.index.name = "month"
    return table
