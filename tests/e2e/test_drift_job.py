"""`ray job submit -- python jobs/drift.py` on a platform started by `raymlops up`: January vs
July weather drifts (exit 2), two random halves of January do not (exit 0); each job logs an
MLflow run on the platform's store and leaves its gauges on the metrics agent after it exits."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from raymlops.config import load_settings
from raymlops.datasets.flights import load_weather
from tests.conftest import REPO
from tests.e2e.conftest import BIN

pytestmark = pytest.mark.timeout(600)
COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "pressure", "visib", "origin"]


def _submit(cli, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**cli.env, "RAY_AUTH_MODE": "token"}
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", cli.dashboard, "--working-dir", str(REPO),
         "--", "python", "jobs/drift.py", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    # A failed job's logs are printed twice (streamed, then in the failure message).
    lines = {line for line in out.splitlines() if line.startswith('{"dataset_drift"')}
    assert len(lines) == 1, f"the job printed no (or differing) JSON reports:\n{out[-4000:]}"
    return proc, json.loads(lines.pop())


def _gauges(cli, dataset: str) -> dict[tuple[str, str | None], float]:
    """This dataset's raymlops series on the head's metrics agent (what Prometheus scrapes)."""
    from prometheus_client.parser import text_string_to_metric_families

    temp_dir = load_settings(storage_root=cli.root).ray_temp_dir
    (port_file,) = Path(temp_dir, "session_latest").glob("metrics_export_port_*")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port_file.read_text().strip()}/metrics",
                                  timeout=10).read().decode()
    return {(s.name, s.labels.get("column")): s.value
            for family in text_string_to_metric_families(body) for s in family.samples
            if s.name.startswith("ray_raymlops_") and s.labels.get("dataset") == dataset}


def test_drift_job_exit_codes_json_mlflow_and_metrics(platform_cli, tmp_path: Path) -> None:
    cli = platform_cli
    weather = load_weather()
    jan = weather.filter(pc.equal(weather["month"], 1)).select(COLUMNS)
    jul = weather.filter(pc.equal(weather["month"], 7)).select(COLUMNS)
    half = np.random.default_rng(0).random(jan.num_rows) < 0.5
    files = {"jan": jan, "jul": jul, "jan_a": jan.filter(half), "jan_b": jan.filter(~half)}
    for name, table in files.items():
        pq.write_table(table, tmp_path / f"{name}.parquet")

    proc, drifted = _submit(cli, "--reference", str(tmp_path / "jan.parquet"),
                            "--current", str(tmp_path / "jul.parquet"), "--dataset", "cli-drift-weather",
                            "--report", str(tmp_path / "report.html"), "--model", "cli-drift")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "exit code 2" in out, out[-3000:]
    assert drifted["dataset_drift"] is True and drifted["share_drifted"] >= 0.5
    assert drifted["model"] == "cli-drift"
    assert set(drifted["columns"]) == set(COLUMNS)
    assert drifted["columns"]["temp"]["drift"] is True
    assert drifted["columns"]["origin"]["drift"] is False  # same three airports all year
    assert drifted["reference_rows"] == jan.num_rows and drifted["current_rows"] == jul.num_rows
    assert drifted["domain_classifier_auc"] > 0.95
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")

    proc, calm = _submit(cli, "--reference", str(tmp_path / "jan_a.parquet"),
                         "--current", str(tmp_path / "jan_b.parquet"), "--dataset", "cli-drift-january")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert calm["dataset_drift"] is False and calm["share_drifted"] < 0.5
    assert 0.35 < calm["domain_classifier_auc"] < 0.65

    # Both runs are in MLflow on the platform's store, with what the jobs printed.
    client = MlflowClient(load_settings(storage_root=cli.root).tracking_uri)
    for body in (drifted, calm):
        run = client.get_run(body["mlflow_run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.metrics["share_drifted"] == pytest.approx(body["share_drifted"])
        assert run.data.params["dataset_drift"] == str(body["dataset_drift"]).lower()
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
            "drift_report.json", "drift_report.html"}
    # --model attributed the drifted report to the model: it is that model's newest verdict
    from raymlops.monitoring.drift_log import latest_drift

    newest = latest_drift(load_settings(storage_root=cli.root), "cli-drift")
    assert (newest["run_id"], newest["verdict"]) == (drifted["mlflow_run_id"], "drifted")
    assert calm["model"] is None

    # Both drivers have exited; their gauges live on in the platform's actor.
    want = {("cli-drift-weather", "ray_raymlops_dataset_drift", None): 1.0,
            ("cli-drift-weather", "ray_raymlops_drift_score", "temp"): drifted["columns"]["temp"]["statistic"],
            ("cli-drift-january", "ray_raymlops_dataset_drift", None): 0.0}
    deadline = time.monotonic() + 90
    while True:
        got = {(ds, name, col): value for ds in ("cli-drift-weather", "cli-drift-january")
               for (name, col), value in _gauges(cli, ds).items()}
        if all(k in got and got[k] == pytest.approx(v) for k, v in want.items()):
            break
        assert time.monotonic() < deadline, f"gauges never showed {want}: {got}"
        time.sleep(3)
