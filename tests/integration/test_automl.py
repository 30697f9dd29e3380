"""AutoML on the shared cluster: families x TPE x ASHA, MLflow nesting, GPUs, fault tolerance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from raymlops.training.automl import SearchConfig, resume_search, run_search

pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]


@pytest.fixture(scope="module")
def flights_data(platform, flights_features):
    from raymlops.datasets.flights_labels import flights_spec
    from raymlops.training.dataset import LabelledData

    flights = LabelledData(flights_spec(platform.settings.local_dir / "datasets"),
                           flights_features.historical_features("delay_model"))
    train = flights.frame(["2013-01"]).sample(6000, random_state=0)
    valid = flights.frame(["2013-02"]).sample(3000, random_state=0)
    return flights.train_data(train, valid), flights.view_versions()


def test_search_nests_every_trial_in_mlflow_and_registers_the_best_as_challenger(platform, flights_data) -> None:
    from mlflow.tracking import MlflowClient

    from raymlops.registry.client import RegistryClient

    data, views = flights_data
    config = SearchConfig(name="automl-delay", families=["logreg", "hgb", "mlp"], num_samples=6,
                          max_steps=3, grace_period=1)
    result = run_search(config, data, settings=platform.settings, data_window=("2013-01-01", "2013-02-01"),
                        feature_views=views,
                        register_kwargs={"feature_service": "delay_model", "entity_timestamp": "sched_dep_ts"})
    assert result.trials == 6 and len(result.trial_runs) == 6
    client = MlflowClient(platform.settings.tracking_uri)
    from ray import tune

    reported = tune.ExperimentAnalysis(result.path).dataframe().set_index("trial_id")
    for trial_id, run_id in result.trial_runs.items():
        run = client.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert run.info.status == "FINISHED"
        # The run holds the scores the trial reported to Tune (computed once, in the trial).
        for name in ("roc_auc", "log_loss", "accuracy", "pr_auc", "f1", "brier"):
            assert run.data.metrics[name] == pytest.approx(reported.loc[trial_id, name], abs=1e-12)
        assert run.data.tags["raymlops.model_class"].split(".")[-1] in ("Pipeline", "TabularMLP")
        files = {a.path for a in client.list_artifacts(run_id)}
        assert {"signature.json", "input_example.json"} <= files
        plots = {"confusion_matrix.png", "feature_importance.png", "roc_curve.png"}
        # The best trial gets the full evaluation (plots, importance) when the search ends.
        assert (plots <= files) == (run_id == result.best_run_id)
        steps = client.get_metric_history(run_id, "roc_auc")
        assert len(steps) >= 1
    best_run = client.get_run(result.best_run_id)
    assert best_run.data.params["family"] == result.best_config["family"]
    assert best_run.data.metrics["roc_auc"] == pytest.approx(result.best_metric, abs=1e-9)
    version = RegistryClient.connect(platform.settings).get_version("automl-delay", "challenger")
    assert version["version"] == result.version["version"]
    assert version["lineage"]["run_id"] == result.best_run_id
    assert version["lineage"]["feature_views"] == views
    assert version["meta"]["feature_service"] == "delay_model"
    assert 0.55 < result.best_metric < 0.9  # flights: a real but modest signal


def test_torch_trials_get_logical_gpus_and_the_others_cpus(platform, flights_data) -> None:
    from ray import tune

    data, _ = flights_data
    config = SearchConfig(name="automl-gpu", families=["mlp", "logreg"], num_samples=4, max_steps=1,
                          register_best=False, gpus_per_torch_trial=0.5)
    result = run_search(config, data, settings=platform.settings)
    grid = tune.ExperimentAnalysis(result.path).dataframe()
    by_family = grid.groupby("config/family")["gpus"].agg(["min", "max"])
    assert set(by_family.index) == {"mlp", "logreg"}
    assert by_family.loc["mlp", "min"] >= 1 and by_family.loc["logreg", "max"] == 0
    assert (grid.loc[grid["config/family"] == "mlp", "cuda"] == 0).all()  # no device here: torch on CPU


def test_a_killed_trial_is_retried_from_its_checkpoint(platform, flights_data) -> None:
    import psutil

    data, _ = flights_data
    config = SearchConfig(name="automl-kill", families=["hgb"], num_samples=1, max_steps=6,
                          grace_period=6, register_best=False, max_failures=2)
    root = Path(platform.settings.storage_root) / "tune"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            # result.json is written by the driver when it has processed a result, and the
            # checkpoint reported with it is registered at that moment: only then is there a
            # checkpoint Tune will restore from (a file on disk alone is not enough).
            results = [p for p in root.glob("automl-kill-killtest/*/result.json") if p.read_text().strip()]
            trials = [p for p in psutil.process_iter(["pid", "cmdline"])
                      if "ImplicitFunc" in " ".join(p.info["cmdline"] or [])]
            if results and trials:
                os.kill(trials[0].info["pid"], signal.SIGKILL)
                killed.append(trials[0].info["pid"])
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    result = run_search(config, data, settings=platform.settings, search_name="automl-kill-killtest")
    thread.join()
    from ray import tune

    grid = tune.ExperimentAnalysis(result.path).dataframe()
    assert killed, "no trial process was killed"
    assert grid["step"].iloc[0] == 6  # the trial finished all its steps
    assert grid["resumed_from"].iloc[0] >= 1  # ...continuing from a checkpoint, not from zero


RESTORE_SCRIPT = """
import sys, ray, raymlops, pandas as pd
from raymlops.config import load_settings
from raymlops.training.automl import SearchConfig, run_search
from raymlops.training.families import TrainData
ray.init(address=sys.argv[1], namespace="raymlops", logging_level="ERROR", log_to_driver=False)
settings = raymlops.init(load_settings(storage_root=sys.argv[2])).settings
data = pd.read_pickle(sys.argv[3])
run_search(SearchConfig.model_validate_json(sys.argv[4]), data, settings=settings, search_name="automl-restore")
"""


def test_an_interrupted_search_resumes_with_tuner_restore(platform, flights_data, tmp_path) -> None:
    import pandas as pd
    import ray

    data, _ = flights_data
    pd.to_pickle(data, tmp_path / "data.pkl")  # test-owned file: the test wrote it itself
    config = SearchConfig(name="automl-restore", families=["logreg", "hgb"], num_samples=6, max_steps=4,
                          grace_period=4, register_best=False, max_concurrent=1)
    path = Path(platform.settings.storage_root) / "tune" / "automl-restore"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(
        [sys.executable, "-c", RESTORE_SCRIPT, ray.get_runtime_context().gcs_address,
         str(platform.settings.storage_root), str(tmp_path / "data.pkl"), config.model_dump_json()],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    done_before = 0
    while time.monotonic() < deadline and proc.poll() is None:
        finished = [p for p in path.glob("*/result.json") if '"done": true' in p.read_text()]
        if len(finished) >= 2:
            done_before = len(finished)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait(timeout=60)
    assert done_before >= 2, "the search ended before it could be interrupted"
    result = resume_search(str(path), config, data, settings=platform.settings)
    assert result.trials == 6
    from ray import tune

    grid = tune.ExperimentAnalysis(str(path)).dataframe()
    assert len(grid) == 6 and grid["roc_auc"].notna().all()
