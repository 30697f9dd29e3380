"""Bring your own data, from the CLI only: a spec and a label table of a second real data set
(vega-datasets' Seattle weather, 2012-2015), a multiclass and a regression model.

spec -> train -> promote -> serve (real HTTP answers) -> the CT service started -> new
labelled months appended to the label folder -> decisions appear in `ct status` with no
`ct run` -> a promoted challenger answers online. The regression spec goes through `ct run`
(the same machinery, in the CLI's process) and batch predict.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

WRITER = REPO / "examples" / "seattle_weather" / "write_labels.py"
DAY = {"precipitation": 0.0, "temp_max": 14.4, "temp_min": 6.1, "wind": 2.8}


def write_labels(cli, out: Path, until: str) -> None:
    proc = subprocess.run([sys.executable, str(WRITER), "--until", until, "--out", str(out)], env=cli.env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def spec_file(tmp_path: Path, example: str, name: str, **changes) -> Path:
    """The example spec with this test's model name and label folder (and small searches)."""
    raw = yaml.safe_load((REPO / "examples" / "seattle_weather" / example).read_text())
    raw.update(name=name, **changes)
    raw["labels"]["path"] = str(tmp_path / "labels")
    raw["search"] = {"trials": 3, "max_steps": 2, "families": raw.get("search", {}).get("families")}
    raw["search"] = {k: v for k, v in raw["search"].items() if v is not None}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def wait_for(check, timeout: float, every: float = 2.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def test_multiclass_spec_to_a_served_model_retrained_by_the_ct_service(platform_cli, tmp_path: Path) -> None:
    cli = platform_cli
    model = "cli-seattle"
    write_labels(cli, tmp_path / "labels", until="2013-12")
    # The first champion sees only the first quarter of 2013; the service retrains on twelve
    # months (every cycle, schedule_every=1), so its challengers have every reason to win.
    spec = spec_file(tmp_path, "spec.yaml", model, train={"start": "2013-01", "end": "2013-03",
                                                          "valid_fraction": 0.25},
                     ct={"trials": 2, "max_steps": 2, "valid_fraction": 0.25, "cooldown": 0, "schedule_every": 1,
                         "start": "2014-01"})

    trained = cli.json("train", str(spec), "--promote")
    version = trained["version"]
    assert version["version"] == 1 and "champion" in version["aliases"]
    assert trained["metric"] == "log_loss" and 0 < trained["best_metric"] < 10  # 90 days of three months
    assert version["lineage"]["data_window"][0].startswith("2013-01-01")
    assert version["lineage"]["data_window"][1].startswith("2013-03-31")

    entry = cli.json("serve", "deploy", f"{model}@champion")
    url = f"{entry['url']}/invocations"
    records = [DAY, {**DAY, "precipitation": 20.0}]
    r = httpx.post(url, params={"probabilities": "true"}, json={"dataframe_records": records}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["classes"]) <= {"drizzle", "fog", "rain", "snow", "sun"} and len(body["classes"]) >= 3
    assert all(p in body["classes"] for p in body["predictions"])
    for row in body["probabilities"]:
        assert len(row) == len(body["classes"]) and abs(sum(row) - 1) < 1e-6
    bad = httpx.post(url, json={"dataframe_records": [{"wind": 1.0}]}, timeout=60)
    assert 400 <= bad.status_code < 500

    try:
        started = cli.json("ct", "start", "--spec", str(spec), "--every", "3s")
        assert started["model"] == model
        # Nothing new yet: the first check finds no closed period from 2014-01 on.
        # A finished check sets "last"; the next may already be running (a check can take
        # longer than --every on a loaded machine), so "running" says nothing here.
        first = wait_for(lambda: [r for r in cli.json("ct", "status", "--model", model)["service"]
                                  if r["checks"] >= 1 and r["last"]], 120, what="the first check")
        assert "error" not in first[0]["last"], first[0]["last"]
        assert cli.json("ct", "status", "--model", model)["events"] == []

        write_labels(cli, tmp_path / "labels", until="2014-02")  # two new months of labels arrive

        def decided():
            events = cli.json("ct", "status", "--model", model)["events"]
            return events if {e["period"] for e in events} >= {"2014-01", "2014-02"} else None

        events = wait_for(decided, 600, every=3, what="the service's decisions for 2014-01 and 2014-02")
        periods = [e["period"] for e in events]
        assert sorted(periods) == ["2014-01", "2014-02"], periods  # each decided once, none twice
        assert all(e["metric"] == "log_loss" and e["decision"] in ("promoted", "rejected") for e in events), \
            [(e["decision"], e["reason"]) for e in events]
        status = cli.json("status")
        ct_actor = [a for a in status["actors"] if a["name"] == "raymlops-ct"]
        assert ct_actor and ct_actor[0]["state"] == "ALIVE"
        assert [r["model"] for r in status["continuous_training"]] == [model]

        promoted = [e for e in events if e["decision"] == "promoted"]
        assert promoted, [e["reason"] for e in events]
        newest = max(e["champion_after"] for e in promoted)

        def answered_by_new_champion():
            r = httpx.post(url, json={"dataframe_records": [DAY]}, timeout=60)
            return r.status_code == 200 and r.headers["x-model-version"] == str(newest)

        wait_for(answered_by_new_champion, 120, every=0.5, what=f"v{newest} to answer online")
    finally:
        cli.run("ct", "stop", check=False)
        cli.run("serve", "undeploy", model, check=False, timeout=180)
    assert cli.json("ct", "status", "--model", model)["service"] == []


def test_regression_spec_trains_serves_scores_and_decides_new_periods(platform_cli, tmp_path: Path) -> None:
    cli = platform_cli
    model = "cli-temp-max"
    write_labels(cli, tmp_path / "labels", until="2013-12")
    spec = spec_file(tmp_path, "temp_spec.yaml", model,
                     ct={"trials": 2, "max_steps": 2, "valid_fraction": 0.25, "cooldown": 0, "schedule_every": 1})

    trained = cli.json("train", str(spec), "--promote")
    assert trained["metric"] == "rmse" and 0 < trained["best_metric"] < 10  # degrees C
    assert trained["version"]["lineage"]["data_window"][0].startswith("2013-01")  # the last 12 months

    # batch predict: a float prediction per row
    rows = pd.read_parquet(tmp_path / "labels" / "2013-07.parquet")
    rows.to_parquet(tmp_path / "july.parquet", index=False)
    cli.run("batch", "predict", f"{model}@champion", "--input", str(tmp_path / "july.parquet"),
            "--output", str(tmp_path / "scored"), timeout=300)
    scored = pd.read_parquet(tmp_path / "scored")
    assert len(scored) == 31 and scored["prediction"].dtype.kind == "f"
    assert abs(scored["prediction"].mean() - rows["temp_max"].mean()) < 5

    entry = cli.json("serve", "deploy", f"{model}@champion")
    try:
        record = {"precipitation": 0.0, "temp_min": 6.1, "wind": 2.8, "weather": "sun"}
        r = httpx.post(f"{entry['url']}/invocations", json={"dataframe_records": [record]}, timeout=60)
        assert r.status_code == 200, r.text
        (value,) = r.json()["predictions"]
        assert isinstance(value, float) and 0 < value < 35

        write_labels(cli, tmp_path / "labels", until="2014-01")
        first = cli.json("ct", "run", "--spec", str(spec))
        assert first["plan"]["pending"] == ["2014-01"]
        (event,) = first["events"]
        assert event["period"] == "2014-01" and event["metric"] == "rmse"
        assert event["decision"] in ("promoted", "rejected") and event["challenger_score"] > 0
        again = cli.json("ct", "run", "--spec", str(spec))  # idempotent: nothing left to decide
        assert again["events"] == [] and again["plan"]["decided"] == ["2014-01"]
    finally:
        cli.run("serve", "undeploy", model, check=False, timeout=180)
