"""`raymlops train`, `raymlops ct run | status | rollback`, as a user runs them."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.timeout(600)


def flights_spec(cli, tmp_path) -> str:
    """The flights example's spec for this test's model: January trains, small searches."""
    import subprocess
    import sys

    import yaml

    from tests.conftest import REPO

    labels = tmp_path / "labels.parquet"
    code = "import sys; from raymlops.datasets.flights_labels import write_label_table; write_label_table(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, str(labels)], env=cli.env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    raw = yaml.safe_load((REPO / "examples" / "flights" / "spec.yaml").read_text())
    raw.update(name="cli-ct", train={"start": "2013-01", "end": "2013-01", "valid_fraction": 0.25},
               search={"families": ["logreg", "hgb"], "trials": 3, "max_steps": 2},
               ct={"trials": 2, "max_steps": 2, "valid_fraction": 0.5, "start": "2013-02"})
    raw["labels"]["path"] = str(labels)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    return str(tmp_path / "spec.yaml")


def test_train_then_continuous_training_then_rollback(platform_cli, shared_flights_features,
                                                     tmp_path) -> None:
    cli = platform_cli
    spec = flights_spec(cli, tmp_path)

    trained = json.loads(cli.run("train", spec, "--json", timeout=300).stdout)
    assert trained["trials"] == 3 and trained["version"]["aliases"] == ["challenger"]
    assert trained["version"]["lineage"]["data_window"][0].startswith("2013-01")
    assert trained["metric"] == "roc_auc" and 0.5 < trained["best_metric"] < 1
    cli.run("models", "promote", "cli-ct")

    dry = cli.json("ct", "run", "--spec", spec, "--dry-run")
    assert dry["plan"]["pending"][:2] == ["2013-02", "2013-03"] and dry["events"] == []
    ran = json.loads(cli.run("ct", "run", "--spec", spec, "--manual", "--limit", "1", "--json", timeout=300).stdout)
    (event,) = ran["events"]
    assert event["trigger"] == "manual" and event["decision"] in ("promoted", "rejected")
    assert event["challenger"] == 2 and event["champion_before"] == 1 and event["period"] == "2013-02"
    # sliding window of two months ending in February (New York time)
    assert event["data_window"][0].startswith("2013-01-01") and event["data_window"][1].startswith("2013-03-01T04")
    assert event["challenger_score"] is not None and event["share_drifted"] is not None
    assert cli.json("ct", "run", "--spec", spec, "--dry-run")["plan"]["decided"] == ["2013-02"]

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
