"""A Tune searcher wrapper that never spends a trial on a configuration already finished.

Why: TPE over integer and categorical parameters re-suggests identical configurations once
it settles on a region. In a 40-trial search on the flights data, one random-forest
configuration was trained six times and gave six identical scores (the models are seeded):
a seventh of the budget spent learning nothing. Optuna's FAQ answers "how to skip duplicate
trials" by returning the earlier value; this does that between the searcher and Tune: a
repeat is answered from the finished trial's score (so the searcher still learns it) and the
searcher is asked again, and only a new configuration becomes a Tune trial. After
``max_repeats`` answered repeats in a row the configuration is run anyway, so a searcher
that only ever proposes known points cannot stall the search.

A configuration still running is not a repeat yet (its score is unknown); scores are the
trial's last reported metric, as the searcher is told by Tune.

Trials the scheduler stopped early (``pruned_if(result)``, e.g. ASHA's) are told to the
searcher as *pruned* rather than complete: their last score is an intermediate one (after 3
of 8 steps, say), and Optuna's TPE ranks pruned trials by how far they got and their
intermediate values, below complete ones, instead of mixing short-horizon scores with final
ones. On the 40-trial flights benchmark, over 5 seeds: mean best AUC 0.6686 with repeats
answered, 0.6690 with stopped trials also told as pruned, 0.6678 with neither.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher

__all__ = ["DistinctConfigs"]


def config_key(config: dict[str, Any]) -> str:
    """A configuration's identity: its values in a canonical order."""
    return json.dumps(config, sort_keys=True, default=str)


class DistinctConfigs(Searcher):
    """Wraps ``searcher`` (e.g. OptunaSearch); repeats of finished configurations are
    answered from their scores instead of being trained again. ``repeats_answered`` counts
    them."""

    def __init__(self, searcher: Searcher, max_repeats: int = 20,
                 pruned_if: Callable[[dict], bool] | None = None) -> None:
        self.searcher = searcher  # the attribute name Tune's SearchGenerator walks to save state
        self.max_repeats = max_repeats
        self.pruned_if = pruned_if  # module-level function: Tune pickles the searcher's state
        self.finished: dict[str, tuple[float, int, bool]] = {}  # key -> (score, step, pruned)
        self.live: dict[str, tuple[str, str]] = {}  # Tune's trial id -> (inner id, config key)
        self.repeats_answered = 0
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        accepted = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return accepted

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict | None | str:
        # Each ask has its own id for the wrapped searcher (it remembers ids it was told about).
        for attempt in range(self.max_repeats + 1):
            inner_id = trial_id if attempt == 0 else f"{trial_id}#repeat{attempt}"
            config = self.searcher.suggest(inner_id)
            if not isinstance(config, dict):  # None (wait) or Searcher.FINISHED
                return config
            key = config_key(config)
            if key not in self.finished or attempt == self.max_repeats:
                break
            self.repeats_answered += 1
            self._tell(inner_id, *self.finished[key])
        self.live[trial_id] = (inner_id, key)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(self.live.get(trial_id, (trial_id, None))[0], result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        inner_id, key = self.live.pop(trial_id, (trial_id, None))
        if error or not result or result.get(self.metric) is None:
            self.searcher.on_trial_complete(inner_id, result=result, error=error)
            return
        pruned = bool(self.pruned_if and self.pruned_if(result))
        if key is not None:
            self.finished[key] = (float(result[self.metric]), int(result.get("training_iteration", 1)), pruned)
        # A pruned trial's intermediate scores reached the searcher through on_trial_result.
        self.searcher.on_trial_complete(inner_id, result=None if pruned else result)

    def _tell(self, inner_id: str, score: float, step: int, pruned: bool) -> None:
        """Answer a repeat the way its finished trial was told: complete, or pruned at its step."""
        if pruned:
            self.searcher.on_trial_result(inner_id, {self.metric: score, "training_iteration": step})
            self.searcher.on_trial_complete(inner_id, result=None)
        else:
            self.searcher.on_trial_complete(inner_id, result={self.metric: score})

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False,
                            pruned: bool = False, intermediate_values: list[float] | None = None) -> None:
        self.searcher.add_evaluated_point(parameters, value, error, pruned, intermediate_values)

    def get_state(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["searcher"]
        return copy.deepcopy(state)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)
