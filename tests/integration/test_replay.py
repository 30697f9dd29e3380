"""The replay of 2013 (benchmarks/replay_2013.py) in short: two months, small searches.

What it proves: the three contenders are scored on each month before its labels are used,
start from the same model, and the loop's cycle is recorded with its decision; (b) retrains
every month. The AUC comparison itself is the benchmark's (RESULTS.md), not a test's.
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow


def test_short_replay_scores_frozen_monthly_and_loop_on_each_month(platform, flights_features) -> None:
    from raymlops.datasets.flights_labels import flights_spec
    from raymlops.training.dataset import LabelledData
    from raymlops.training.replay import frame_table, replay

    spec = flights_spec(platform.settings.local_dir / "datasets", name="replay-short")
    policy = spec.ct_policy().model_copy(update={"trials": 2, "max_steps": 1, "families": ["logreg"], "cooldown": 0})
    data = LabelledData(spec, flights_features.historical_features("delay_model"))
    seen: list[str] = []
    result = replay(spec, platform.settings, ["2013-03", "2013-04"], data=data, policy=policy,
                    on_period=lambda period, scores: seen.append(period))

    assert seen == ["2013-03", "2013-04"] and result.periods == seen and result.metric == "roc_auc"
    for key in ("frozen", "monthly", "loop"):
        assert len(result.scores[key]) == 2
        assert all(0.55 < v < 0.9 and math.isfinite(v) for v in result.scores[key]), (key, result.scores[key])
    # March is scored before any label of it is used: the loop still serves the bootstrap model.
    assert result.scores["loop"][0] == result.scores["frozen"][0]
    # (b) refit once (after March; the last month is only scored); the loop ran one cycle.
    assert result.retrains["monthly"] == 1
    assert result.retrains["loop"] in (0, 1)
    bootstrap, cycle = result.events
    assert bootstrap["trigger"] == "bootstrap" and bootstrap["decision"] == "promoted"
    assert cycle["period"] == "2013-03" and cycle["decision"] in ("promoted", "rejected", "none", "cooldown")
    if cycle["decision"] == "promoted":  # April is then served by the new champion
        assert cycle["champion_after"] == cycle["challenger"] != bootstrap["champion_after"]
        assert result.scores["loop"][1] != result.scores["frozen"][1]
    else:
        assert result.scores["loop"][1] == result.scores["frozen"][1]
    assert list(frame_table(result).columns) == ["frozen", "monthly", "loop"]
