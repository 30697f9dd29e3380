"""`raymlops train`, `raymlops ct run | status | rollback`, as a user runs them."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from raymlops.datasets.flights_features import DEFINITIONS, planes_rows, weather_rows

pytestmark = pytest.mark.timeout(600)

CONFIG = """
name: flights-delay
families: [logreg, hgb]
num_samples: 3
max_steps: 2
data: {months: [1], valid_fraction: 0.25}
"""


def test_train_then_continuous_training_then_rollback(cli, tmp_path) -> None:
    pq.write_table(weather_rows(), tmp_path / "weather.parquet")
    pq.write_table(planes_rows(), tmp_path / "planes.parquet")
    (tmp_path / "train.yaml").write_text(CONFIG)
    cli.json("up")
    cli.json("features", "apply", str(DEFINITIONS))
    cli.json("features", "ingest", "weather", str(tmp_path / "weather.parquet"))
    cli.json("features", "ingest", "planes", str(tmp_path / "planes.parquet"))

    trained = json.loads(cli.run("train", str(tmp_path / "train.yaml"), "--json", timeout=300).stdout)
    assert trained["trials"] == 3 and trained["version"]["aliases"] == ["challenger"]
    assert trained["version"]["lineage"]["data_window"][0].startswith("2013-01")
    assert 0.5 < trained["best_metric"] < 1
    cli.run("models", "promote", "flights-delay")

    events = json.loads(cli.run("ct", "run", "--months", "2", "--manual", "--trials", "2", "--json",
                                timeout=300).stdout)
    (event,) = events
    assert event["trigger"] == "manual" and event["decision"] in ("promoted", "rejected")
    assert event["challenger"] == 2 and event["champion_before"] == 1
    from raymlops.training.ct_flights import months_in

    assert months_in(event["data_window"]) == [1, 2]  # sliding window of two months ending in February
    assert event["challenger_auc"] is not None and event["share_drifted"] is not None

    status = cli.json("ct", "status")
    assert status["events"][0]["cycle"] == event["cycle"] and status["events"][0]["decision"] == event["decision"]
    table = cli.run("ct", "status").stdout
    assert "flights-delay" in table and event["decision"] in table

    if event["decision"] == "rejected":
        cli.run("models", "promote", "flights-delay", "2")
    rolled = cli.json("ct", "rollback", "flights-delay")
    assert rolled["decision"] == "rollback" and rolled["champion_after"] == 1
    (listed,) = cli.json("models", "list")
    assert listed["aliases"]["champion"] == 1 and listed["aliases"]["previous"] == 2
    assert cli.json("ct", "status")["events"][0]["decision"] == "rollback"
