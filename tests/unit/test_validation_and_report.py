"""Data validation against an inferred schema; the drift report and CLI without a cluster."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from raymlops.cli import app
from raymlops.data_schema import infer_schema, validate
from raymlops.monitoring.drift import drift_report
from raymlops.monitoring.report import render_html


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({
        "temp": rng.normal(35, 8, 2000), "origin": rng.choice(["EWR", "JFK", "LGA"], 2000),
        "visib": rng.uniform(0, 10, 2000),
    })
    summer = pd.DataFrame({
        "temp": rng.normal(78, 8, 2000), "origin": rng.choice(["EWR", "JFK", "LGA"], 2000),
        "visib": rng.uniform(0, 10, 2000),
    })
    return train, summer


def test_schema_round_trip_has_no_violations(frames) -> None:
    train, _ = frames
    schema = infer_schema(train)
    assert schema["columns"]["origin"]["categories"] == ["EWR", "JFK", "LGA"]
    assert json.loads(json.dumps(schema)) == schema  # storable with a model version
    assert validate(train, schema) == []


def test_every_kind_of_violation_is_reported(frames) -> None:
    train, summer = frames
    schema = infer_schema(train)
    bad = summer.drop(columns=["visib"]).assign(origin=["SFO"] * 10 + ["EWR"] * 1990)
    bad.loc[:599, "temp"] = np.nan
    kinds = {(v.column, v.kind) for v in validate(bad, schema)}
    assert kinds == {("visib", "missing_column"), ("temp", "out_of_range"),
                     ("origin", "unseen_category"), ("temp", "null_rate_jump")}
    typed = validate(train.assign(temp=train["temp"].astype(str)), schema)
    assert [(v.column, v.kind) for v in typed] == [("temp", "wrong_type")]


def test_seasonal_drift_is_found_and_rendered(frames) -> None:
    train, summer = frames
    report = drift_report(train, summer)
    assert report["columns"]["temp"]["drift"] is True
    assert report["columns"]["origin"]["drift"] is False
    assert report["columns"]["visib"]["drift"] is False
    assert report["share_drifted"] == pytest.approx(1 / 3) and report["dataset_drift"] is False
    assert report["domain_classifier_auc"] > 0.95
    same = drift_report(train.iloc[:1000], train.iloc[1000:])  # two samples, one distribution
    assert same["share_drifted"] == 0 and 0.35 < same["domain_classifier_auc"] < 0.65
    page = render_html(report)
    assert page.count("data:image/png;base64,") == 3 and "DRIFT" in page and "<table" in page


def test_drift_cli_without_a_cluster(frames, tmp_path) -> None:
    train, summer = frames
    train.to_parquet(tmp_path / "ref.parquet")
    summer.to_csv(tmp_path / "cur.csv", index=False)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["--storage-root", str(tmp_path / "root"), "drift",
                                      "--reference", str(tmp_path / "ref.parquet"),
                                      "--current", str(tmp_path / "cur.csv"),
                                      "--report", str(out), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert set(body) >= {"dataset_drift", "share_drifted", "columns"}
    assert {"test", "statistic", "p_value", "drift"} <= set(body["columns"]["temp"])
    assert body["columns"]["temp"]["drift"] is True
    assert out.read_text().startswith("<!doctype html>")
