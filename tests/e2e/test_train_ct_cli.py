"""`raymlops train`, `raymlops ct run | status | rollback`, as a user runs them."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(600)

CONFIG = """
name: cli-ct
families: [logreg, hgb]
num_samples: 3
max_steps: 2
data: {months: [1], valid_fraction: 0.25}
"""


def test_train_then_continuous_training_then_rollback(platform_cli, shared_flights_features,
                                                     tmp_path) -> None:
    cli = platform_cli
    (tmp_path / "train.yaml").write_text(CONFIG)

    trained = json.loads(cli.run("train", str(tmp_path / "train.yaml"), "--json", timeout=300).stdout)
    assert trained["trials"] == 3 and trained["version"]["aliases"] == ["challenger"]
    assert trained["version"]["lineage"]["data_window"][0].startswith("2013-01")
    assert 0.5 < trained["best_metric"] < 1
    cli.run("models", "promote", "cli-ct")

    events = json.loads(cli.run("ct", "run", "--model", "cli-ct", "--months", "2", "--manual", "--trials", "2", "--json",
                                timeout=300).stdout)
    (event,) = events
    assert event["trigger"] == "manual" and event["decision"] in ("promoted", "rejected")
    assert event["challenger"] == 2 and event["champion_before"] == 1
    from raymlops.training.ct_flights import months_in

    assert months_in(event["data_window"]) == [1, 2]  # sliding window of two months ending in February
    assert event["challenger_auc"] is not None and event["share_drifted"] is not None

    status = cli.json("ct", "status", "--model", "cli-ct")
    assert status["events"][0]["cycle"] == event["cycle"] and status["events"][0]["decision"] == event["decision"]
    table = cli.run("ct", "status", "--model", "cli-ct").stdout
    assert "cli-ct" in table and event["decision"] in table

    if event["decision"] == "rejected":
        cli.run("models", "promote", "cli-ct", "2")
    rolled = cli.json("ct", "rollback", "cli-ct")
    assert rolled["decision"] == "rollback" and rolled["champion_after"] == 1
    (listed,) = [m for m in cli.json("models", "list") if m["name"] == "cli-ct"]
    assert listed["aliases"]["champion"] == 1 and listed["aliases"]["previous"] == 2
    assert cli.json("ct", "status", "--model", "cli-ct")["events"][0]["decision"] == "rollback"
