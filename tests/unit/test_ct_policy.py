"""Continuous-training decisions without Ray: triggers, cooldown, windows, time split."""

from __future__ import annotations

import pandas as pd
import pytest

from raymlops.exceptions import ConfigError, ValidationError
from raymlops.training.ct import CTPolicy, decide_trigger, training_window
from raymlops.training.ct_flights import months_in
from raymlops.training.train_config import load_train_config, split_by_time

P = CTPolicy(model="m", drift_share=0.5, performance_drop=0.02, cooldown=1)


def test_quiet_data_does_not_trigger() -> None:
    assert decide_trigger(P, cycle=3, last_retrain_cycle=1, share_drifted=0.2, champion_auc=0.70,
                          baseline_auc=0.71)[0] is None


@pytest.mark.parametrize("share,auc,expected", [(0.6, 0.70, "drift"), (0.1, 0.65, "performance"),
                                                (0.7, 0.60, "drift")])
def test_drift_or_a_performance_drop_triggers(share, auc, expected) -> None:
    trigger, why = decide_trigger(P, cycle=5, last_retrain_cycle=1, share_drifted=share,
                                  champion_auc=auc, baseline_auc=0.70)
    assert trigger == expected and why


def test_cooldown_blocks_a_retrain_storm_but_not_a_manual_request() -> None:
    trigger, why = decide_trigger(P, cycle=2, last_retrain_cycle=1, share_drifted=0.9, champion_auc=0.5,
                                  baseline_auc=0.7)
    assert trigger is None and why.startswith("cooldown")
    assert decide_trigger(P, cycle=2, last_retrain_cycle=1, share_drifted=None, champion_auc=None,
                          baseline_auc=None, manual=True)[0] == "manual"


def test_schedule_triggers_every_n_cycles() -> None:
    policy = P.model_copy(update={"schedule_every": 3, "cooldown": 0})
    fired = [c for c in range(1, 10) if decide_trigger(
        policy, cycle=c, last_retrain_cycle=(c // 3) * 3 if c % 3 else c - 3, share_drifted=0.0,
        champion_auc=0.7, baseline_auc=0.7)[0] == "schedule"]
    assert fired == [3, 6, 9]


def test_sliding_and_expanding_windows() -> None:
    months = list(range(1, 13))
    assert training_window(P, months, 5) == [5, 6]
    assert training_window(P.model_copy(update={"window": "expanding"}), months, 5) == [1, 2, 3, 4, 5, 6]
    assert training_window(P.model_copy(update={"window_periods": 4}), months, 1) == [1, 2]


def test_lineage_window_maps_to_months() -> None:
    assert months_in(["2013-01-01T05:00:00+00:00", "2013-02-28T23:00:00+00:00"]) == [1, 2]
    # The last February departure (23:59 in New York) is March 1st in UTC: still February.
    assert months_in(["2013-01-01T10:15:00+00:00", "2013-03-01T04:59:00+00:00"]) == [1, 2]


def test_time_split_keeps_the_future_out_of_training() -> None:
    frame = pd.DataFrame({"t": pd.date_range("2013-01-01", periods=100, freq="h", tz="UTC"), "x": range(100)})
    train, valid = split_by_time(frame.sample(frac=1, random_state=0), 0.25, "t")
    assert train["t"].max() < valid["t"].min() and len(train) + len(valid) == 100
    with pytest.raises(ValidationError):
        split_by_time(frame.head(0), 0.25, "t")


def test_train_config_errors_name_the_problem(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: m\nfamilies: [logreg]\nnum_sample: 3\n")
    with pytest.raises(ConfigError, match="num_sample"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="no config file"):
        load_train_config(tmp_path / "none.yaml")


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

    def search(warm, train_rows, valid_rows, parent_version, refit_rows=None):
        seen.update(train=train_rows, valid=valid_rows, refit=refit_rows)
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
