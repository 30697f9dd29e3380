"""Continuous-training decisions without Ray: triggers, cooldown, windows, time split."""

from __future__ import annotations

import pandas as pd
import pytest

from raymlops.exceptions import ValidationError
from raymlops.training.ct import CTPolicy, decide_trigger, training_window
from raymlops.training.dataset import split_by_time

P = CTPolicy(model="m", drift_share=0.5, performance_drop=0.02, cooldown=1)


def test_quiet_data_does_not_trigger() -> None:
    assert decide_trigger(P, cycle=3, last_retrain_cycle=1, share_drifted=0.2, champion_score=0.70,
                          baseline_score=0.71)[0] is None


@pytest.mark.parametrize("share,auc,expected", [(0.6, 0.70, "drift"), (0.1, 0.65, "performance"),
                                                (0.7, 0.60, "drift")])
def test_drift_or_a_performance_drop_triggers(share, auc, expected) -> None:
    trigger, why = decide_trigger(P, cycle=5, last_retrain_cycle=1, share_drifted=share,
                                  champion_score=auc, baseline_score=0.70)
    assert trigger == expected and why


def test_cooldown_blocks_a_retrain_storm_but_not_a_manual_request() -> None:
    trigger, why = decide_trigger(P, cycle=2, last_retrain_cycle=1, share_drifted=0.9, champion_score=0.5,
                                  baseline_score=0.7)
    assert trigger is None and why.startswith("cooldown")
    assert decide_trigger(P, cycle=2, last_retrain_cycle=1, share_drifted=None, champion_score=None,
                          baseline_score=None, manual=True)[0] == "manual"


def test_schedule_triggers_every_n_cycles() -> None:
    policy = P.model_copy(update={"schedule_every": 3, "cooldown": 0})
    fired = [c for c in range(1, 10) if decide_trigger(
        policy, cycle=c, last_retrain_cycle=(c // 3) * 3 if c % 3 else c - 3, share_drifted=0.0,
        champion_score=0.7, baseline_score=0.7)[0] == "schedule"]
    assert fired == [3, 6, 9]


def test_sliding_and_expanding_windows() -> None:
    months = list(range(1, 13))
    assert training_window(P, months, 5) == [5, 6]
    assert training_window(P.model_copy(update={"window": "expanding"}), months, 5) == [1, 2, 3, 4, 5, 6]
    assert training_window(P.model_copy(update={"window_periods": 4}), months, 1) == [1, 2]


def test_the_performance_trigger_knows_the_metric_direction() -> None:
    """RMSE rising by more than the drop triggers; falling never does (lower is better)."""
    rmse = P.model_copy(update={"task": "regression", "metric": "rmse", "performance_drop": 0.5, "cooldown": 0})
    assert decide_trigger(rmse, cycle=5, last_retrain_cycle=1, share_drifted=0.0, champion_score=4.0,
                          baseline_score=3.0)[0] == "performance"
    assert decide_trigger(rmse, cycle=5, last_retrain_cycle=1, share_drifted=0.0, champion_score=2.0,
                          baseline_score=3.0)[0] is None
    assert decide_trigger(rmse, cycle=5, last_retrain_cycle=1, share_drifted=0.0, champion_score=float("nan"),
                          baseline_score=3.0)[0] is None


def test_time_split_keeps_the_future_out_of_training() -> None:
    frame = pd.DataFrame({"t": pd.date_range("2013-01-01", periods=100, freq="h", tz="UTC"), "x": range(100)})
    train, valid = split_by_time(frame.sample(frac=1, random_state=0), 0.25, "t")
    assert train["t"].max() < valid["t"].min() and len(train) + len(valid) == 100
    with pytest.raises(ValidationError):
        split_by_time(frame.head(0), 0.25, "t")


class _Model:
    feature_names = ["x"]

    def predict_proba(self, frame: pd.DataFrame):
        import numpy as np

        p = (frame["x"].to_numpy() % 7) / 7
        return np.column_stack([1 - p, p])


class _Registry:
    def __init__(self) -> None:
        self.promoted: list[int] = []

    def promote(self, model: str, version: int) -> None:
        self.promoted.append(version)


def _monthly_rows(months: list[int]) -> pd.DataFrame:
    """Hourly rows of 2013 for each month asked for, in time order."""
    parts = []
    for m in months:
        t = pd.date_range(f"2013-{m:02d}-01", f"2013-{m:02d}-28 23:00", freq="h", tz="UTC")
        parts.append(pd.DataFrame({"t": t, "x": range(len(t)), "y": [i % 2 for i in range(len(t))]}))
    return pd.concat(parts, ignore_index=True)


def _retrain_with(policy: CTPolicy, newest_month: int) -> dict:
    """Run the retrain step on fake months; return what the search was given."""
    from raymlops.config import Settings
    from raymlops.training.ct import ContinuousTrainer, Event

    seen: dict = {}

    def search(warm, train_rows, valid_rows, parent_version, refit_rows=None, period=None):
        seen.update(train=train_rows, valid=valid_rows, refit=refit_rows, period=period)
        return type("Result", (), {"version": {"version": 2}, "best_model": _Model()})()

    trainer = ContinuousTrainer(policy, Settings(), _monthly_rows, search, label="y", timestamp="t",
                                drift_columns=["x"], periods_in=lambda w: [])
    registry = _Registry()
    trainer._registry = lambda: registry  # type: ignore[method-assign]
    event = Event(1, str(newest_month), "drift", "none", "test", None, None)
    trainer._retrain(event, list(range(1, 13)), newest_month - 1, None)
    seen["event"], seen["promoted"] = event, registry.promoted
    return seen


def test_trials_train_on_a_window_long_span_that_ends_where_validation_starts() -> None:
    """Sliding window of March-April, April validates: the trials train on February-March
    (as much history as the refit, shifted back), the winner is refit on March-April."""
    seen = _retrain_with(CTPolicy(model="m", valid_fraction=0.5), newest_month=4)
    train, valid, refit = seen["train"], seen["valid"], seen["refit"]
    assert train["t"].max() < valid["t"].min()
    assert valid["t"].min().month == 4 and valid["t"].max().month == 4
    assert train["t"].min().month == 2 and (train["t"].dt.month == 3).any()
    span = refit["t"].max() - refit["t"].min()
    assert valid["t"].min() - train["t"].min() <= span
    assert sorted(refit["t"].dt.month.unique()) == [3, 4]
    assert seen["event"].decision == "promoted" and seen["promoted"] == [2]
    assert seen["event"].data_window[0].startswith("2013-03-01")


def test_expanding_window_and_first_period_keep_the_plain_split() -> None:
    expanding = _retrain_with(CTPolicy(model="m", window="expanding", valid_fraction=0.5), newest_month=3)
    assert expanding["train"]["t"].min().month == 1
    assert len(expanding["train"]) + len(expanding["valid"]) == len(expanding["refit"])
    first = _retrain_with(CTPolicy(model="m", valid_fraction=0.5), newest_month=2)  # window Jan-Feb
    assert first["train"]["t"].min().month == 1 and first["train"]["t"].max().month == 1


def test_a_long_event_is_shortened_in_its_reason_and_still_parses() -> None:
    import json

    from raymlops.training.ct import EVENT_TAG_LIMIT, Event, event_json

    ids = [f"{i:032x}" for i in range(40)]
    event = Event(3, "7", "manual", "promoted", "requested by " + "; ".join(["alert high-latency fired"] * 800),
                  1, 2)
    event.requests = ids
    text = event_json(event)
    assert len(text) <= EVENT_TAG_LIMIT
    back = json.loads(text)
    assert back["requests"] == ids and back["decision"] == "promoted"
    assert back["reason"].startswith("requested by alert") and "characters cut" in back["reason"]
    short = Event(1, "3", None, "none", "quiet", 1, 1)
    assert json.loads(event_json(short))["reason"] == "quiet"


class _Constant:
    """A regressor that always answers ``value``."""

    feature_names = ["x"]

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, frame: pd.DataFrame):
        import numpy as np

        return np.full(len(frame), self.value)


@pytest.mark.parametrize("metric,champion,challenger,decision", [
    ("rmse", 10.0, 0.5, "promoted"),   # lower is better: the challenger's 0.5 beats 9.5
    ("rmse", 0.5, 10.0, "rejected"),
    ("r2", 10.0, 0.5, "promoted"),     # higher is better
    ("r2", 0.5, 10.0, "rejected"),
])
def test_the_gate_judges_in_the_metric_direction(metric, champion, challenger, decision) -> None:
    from raymlops.config import Settings
    from raymlops.training.ct import ContinuousTrainer, Event

    class Registry(_Registry):
        def load(self, model: str, version: int) -> _Constant:
            assert version == 1
            return _Constant(champion)

    def search(warm, train_rows, valid_rows, parent_version, refit_rows=None, period=None):
        return type("Result", (), {"version": {"version": 2}, "best_model": _Constant(challenger)})()

    policy = CTPolicy(model="m", task="regression", metric=metric, valid_fraction=0.5)
    trainer = ContinuousTrainer(policy, Settings(), _monthly_rows, search, label="y", timestamp="t",
                                drift_columns=["x"], periods_in=lambda w: [])
    registry = Registry()
    trainer._registry = lambda: registry  # type: ignore[method-assign]
    event = Event(2, "4", "drift", "none", "test", 1, 1, metric=metric)
    trainer._retrain(event, list(range(1, 13)), 3, {"tags": {}})
    assert event.decision == decision, event.reason
    assert registry.promoted == ([2] if decision == "promoted" else [])
    assert metric in event.reason
