"""DistinctConfigs: repeats of finished configurations are answered, not trained again.

Driven by hand with a real OptunaSearch (no Ray cluster): a space of two configurations makes
TPE repeat itself quickly.
"""

from __future__ import annotations

import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch

from raymlops.training.searcher import DistinctConfigs, config_key


def _space(trial: optuna.Trial) -> None:
    trial.suggest_categorical("family", ["rf", "hgb"])


@pytest.fixture
def searcher() -> DistinctConfigs:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # seed 2: after the first trial, TPE proposes that configuration twice more before the other
    return DistinctConfigs(OptunaSearch(space=_space, metric="roc_auc", mode="max", seed=2), max_repeats=3)


def _study_values(searcher: DistinctConfigs) -> list[float | None]:
    return [t.value for t in searcher.searcher._ot_study.trials]


def test_a_finished_configuration_is_answered_from_its_score_and_never_run_twice(searcher):
    first = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"roc_auc": 0.61})
    second = searcher.suggest("t2")
    assert second != first  # the repeat(s) of `first` were answered, not handed to Tune
    answered = searcher.repeats_answered
    assert answered == 2
    # every answered repeat reached the searcher with the finished trial's score
    assert _study_values(searcher)[1:1 + answered] == [0.61] * answered
    searcher.on_trial_complete("t2", {"roc_auc": 0.66})
    assert searcher.finished == {config_key(first): (0.61, 1, False), config_key(second): (0.66, 1, False)}


def test_when_only_repeats_remain_the_search_runs_one_after_max_repeats(searcher):
    configs = []
    for n, score in ((1, 0.61), (2, 0.66)):
        config = searcher.suggest(f"t{n}")
        configs.append(config)
        searcher.on_trial_complete(f"t{n}", {"roc_auc": score})
    assert {config_key(c) for c in configs} == {config_key({"family": "rf"}), config_key({"family": "hgb"})}
    before = searcher.repeats_answered
    third = searcher.suggest("t3")  # nothing new exists: 3 answered, the 4th ask is run
    assert config_key(third) in searcher.finished and searcher.repeats_answered == before + 3
    searcher.on_trial_complete("t3", {"roc_auc": 0.70})
    study = searcher.searcher._ot_study
    assert study.trials[-1].value == 0.70 and study.trials[-1].params == third
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_a_running_configuration_is_not_a_repeat_and_errors_teach_nothing(searcher):
    first = searcher.suggest("t1")
    searcher.on_trial_complete("t1", error=True)
    assert searcher.finished == {}  # a failed trial's configuration may be tried again
    state = searcher.get_state()
    assert "searcher" not in state and state["live"] == {}
    restored = DistinctConfigs(OptunaSearch(space=_space, metric="roc_auc", mode="max", seed=0))
    restored.set_state(state)
    assert restored.max_repeats == 3 and restored.finished == {}
    assert first in ({"family": "rf"}, {"family": "hgb"})


def _stopped(result: dict) -> bool:
    return result["step"] < result["done_steps"]


def test_a_trial_the_scheduler_stopped_is_told_as_pruned_at_its_step_and_so_are_its_repeats():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = DistinctConfigs(OptunaSearch(space=_space, metric="roc_auc", mode="max", seed=2),
                               max_repeats=3, pruned_if=_stopped)
    first = searcher.suggest("t1")
    for step, auc in ((1, 0.60), (2, 0.63), (3, 0.64)):  # ASHA stops it after step 3 of 8
        searcher.on_trial_result("t1", {"roc_auc": auc, "training_iteration": step})
    searcher.on_trial_complete("t1", {"roc_auc": 0.64, "step": 3, "done_steps": 8, "training_iteration": 3})
    study = searcher.searcher._ot_study
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert study.trials[0].intermediate_values == {1: 0.60, 2: 0.63, 3: 0.64}
    assert searcher.finished[config_key(first)] == (0.64, 3, True)
    second = searcher.suggest("t2")  # seed 2: two repeats of `first`, answered as pruned at step 3
    assert second != first and searcher.repeats_answered == 2
    for answered in study.trials[1:3]:
        assert answered.state == optuna.trial.TrialState.PRUNED
        assert answered.intermediate_values == {3: 0.64} and answered.params == first
    searcher.on_trial_complete("t2", {"roc_auc": 0.66, "step": 8, "done_steps": 8, "training_iteration": 8})
    assert study.trials[-1].state == optuna.trial.TrialState.COMPLETE and study.trials[-1].value == 0.66
