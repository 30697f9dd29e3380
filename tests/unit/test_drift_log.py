"""Drift reports logged to MLflow (a temporary SQLite store; no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import path_not_unique, validate_param_and_metric_name

from raymlops.config import Settings, load_settings
from raymlops.exceptions import ValidationError
from raymlops.monitoring.drift import drift_report
from raymlops.monitoring.drift_log import (
    DRIFT_EXPERIMENT,
    TAG_DATASET_DRIFT,
    log_drift_report,
    metric_key,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(storage_root=tmp_path / "root")


@pytest.fixture(scope="module")
def report() -> dict:
    rng = np.random.default_rng(7)
    n = 1500
    ref = pd.DataFrame({"temp": rng.normal(35, 8, n), "origin": rng.choice(["EWR", "JFK"], n),
                        "visib": rng.uniform(0, 10, n)})
    cur = pd.DataFrame({"temp": rng.normal(78, 8, n), "origin": rng.choice(["EWR", "JFK"], n),
                        "visib": rng.uniform(0, 10, n)})
    return drift_report(ref.head(600), cur.head(600))  # <= 1,000 rows: tests with p-values


def _client(settings: Settings) -> MlflowClient:
    return MlflowClient(settings.tracking_uri)


def test_report_becomes_one_finished_run_with_metrics_params_tags_and_artifacts(
        settings: Settings, report: dict, tmp_path: Path) -> None:
    logged = log_drift_report(report, settings, run_name="jan-vs-jul", tags={"team": "ops"})
    client = _client(settings)
    run = client.get_run(logged.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "jan-vs-jul"
    assert client.get_experiment(run.info.experiment_id).name == DRIFT_EXPERIMENT
    metrics = run.data.metrics
    assert metrics["share_drifted"] == pytest.approx(report["share_drifted"])
    assert metrics["domain_classifier_auc"] == pytest.approx(report["domain_classifier_auc"])
    assert metrics["drifted_columns"] == len(report["drifted_columns"]) == 1
    for name, col in report["columns"].items():
        assert metrics[f"column.{name}.statistic"] == pytest.approx(col["statistic"])
        assert metrics[f"column.{name}.p_value"] == pytest.approx(col["p_value"])
        assert metrics[f"column.{name}.drift"] == float(col["drift"])
        assert run.data.params[f"column.{name}.test"] == col["test"]
    assert run.data.params["dataset_drift"] == "false"
    assert run.data.tags[TAG_DATASET_DRIFT] == "false"
    assert json.loads(run.data.tags["raymlops.drifted_columns"]) == ["temp"]
    assert run.data.tags["team"] == "ops"

    names = {a.path for a in client.list_artifacts(logged.run_id)}
    assert names == {"drift_report.json", "drift_report.html"}  # no renames, no name map
    out = Path(client.download_artifacts(logged.run_id, "drift_report.json", str(tmp_path)))
    body = json.loads(out.read_text())
    assert "_summaries" not in body
    assert body["columns"] == json.loads(json.dumps(report["columns"]))
    page = Path(client.download_artifacts(logged.run_id, "drift_report.html", str(tmp_path)))
    assert page.read_text().count("data:image/png;base64,") >= len(report["columns"])


def test_distance_tests_log_no_p_value(settings: Settings) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=3000)})
    result = drift_report(frame, frame.assign(x=frame["x"] + 1), domain_classifier=False)
    assert result["columns"]["x"]["test"] == "wasserstein"
    metrics = _client(settings).get_run(log_drift_report(result, settings).run_id).data.metrics
    assert "column.x.p_value" not in metrics and "domain_classifier_auc" not in metrics
    assert metrics["column.x.drift"] == 1.0 and metrics["share_drifted"] == 1.0


def test_awkward_column_names_become_distinct_valid_metric_names(settings: Settings,
                                                                 tmp_path: Path) -> None:
    names = ["temp (°F)", "temp [°F]", "a/b", "a:b", "../etc", "x..y", "%", "ok"]
    taken: set[str] = set()
    keys = [metric_key(n, taken) for n in names]
    assert len(set(keys)) == len(names)
    for key in keys:
        full = f"column.{key}.statistic"
        assert validate_param_and_metric_name(full) and not path_not_unique(full), full
    assert metric_key("ok") == "ok"

    result = {"dataset_drift": True, "share_drifted": 1.0, "columns": {
        n: {"test": "ks", "statistic": 0.5 + i / 100, "p_value": 0.001, "drift": True,
            "threshold": 0.05} for i, n in enumerate(names)}}
    logged = log_drift_report(result, settings)
    client = _client(settings)
    mapping = json.loads(Path(client.download_artifacts(
        logged.run_id, "column_metric_names.json", str(tmp_path))).read_text())
    assert sorted(mapping.values()) == sorted(names)
    metrics = client.get_run(logged.run_id).data.metrics
    for key, column in mapping.items():
        assert metrics[f"column.{key}.statistic"] == result["columns"][column]["statistic"]


@pytest.mark.parametrize("bad, match", [
    ([], "must be a mapping"),
    ({"columns": {}}, "lacks"),
    ({"dataset_drift": "yes", "share_drifted": 0.0, "columns": {"a": {}}}, "must be a bool"),
    ({"dataset_drift": False, "share_drifted": 0.0, "columns": {}}, "no columns"),
    ({"dataset_drift": False, "share_drifted": 0.0, "columns": {"a": {"test": "ks"}}}, "needs"),
    ({"dataset_drift": False, "share_drifted": 0.0, "columns": {
        "a": {"test": "ks", "statistic": "big", "p_value": None, "drift": False}}}, "number"),
])
def test_malformed_results_are_refused_before_a_run_exists(settings: Settings, bad, match) -> None:
    with pytest.raises(ValidationError, match=match):
        log_drift_report(bad, settings)
    assert _client(settings).get_experiment_by_name(DRIFT_EXPERIMENT) is None


def test_reserved_and_invalid_tags_are_refused(settings: Settings, report: dict) -> None:
    with pytest.raises(ValidationError, match="set from the result"):
        log_drift_report(report, settings, tags={TAG_DATASET_DRIFT: "false"})
    with pytest.raises(ValidationError, match="invalid"):
        log_drift_report(report, settings, tags={"../x": "y"})
    assert _client(settings).get_experiment_by_name(DRIFT_EXPERIMENT) is None


def test_a_failure_after_the_run_started_ends_it_failed(settings: Settings, report: dict,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, run_id, local_dir, artifact_path=None):
        raise OSError("disk full")

    monkeypatch.setattr(MlflowClient, "log_artifacts", broken)
    with pytest.raises(OSError, match="disk full"):
        log_drift_report(report, settings)
    client = _client(settings)
    exp = client.get_experiment_by_name(DRIFT_EXPERIMENT)
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FAILED" and "disk full" in run.data.tags["raymlops.error"]


def test_cli_logs_a_run_only_when_asked_without_a_platform(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from raymlops.cli import app

    rng = np.random.default_rng(3)
    pd.DataFrame({"temp": rng.normal(35, 8, 800)}).to_parquet(tmp_path / "jan.parquet")
    pd.DataFrame({"temp": rng.normal(78, 8, 800)}).to_parquet(tmp_path / "jul.parquet")
    root = tmp_path / "root"
    base = ["--storage-root", str(root), "drift", "--reference", str(tmp_path / "jan.parquet"),
            "--current", str(tmp_path / "jul.parquet"), "--json"]
    settings = load_settings(storage_root=root)

    quiet = CliRunner().invoke(app, base)
    assert quiet.exit_code == 0, quiet.output
    body = json.loads(quiet.output)
    assert body["mlflow_run_id"] is None and body["metrics_exported"] is False
    assert _client(settings).get_experiment_by_name(DRIFT_EXPERIMENT) is None

    logged = CliRunner().invoke(app, [*base, "--log-mlflow", "--dataset", "weather"])
    assert logged.exit_code == 0, logged.output
    body = json.loads(logged.output)
    assert body["dataset"] == "weather"
    run = _client(settings).get_run(body["mlflow_run_id"])
    assert run.data.metrics["share_drifted"] == body["share_drifted"] == 1.0
    assert run.data.tags["raymlops.current"].endswith("jul.parquet")
    assert run.info.run_name == "weather: jul.parquet vs jan.parquet"
