"""Serving parts without Ray: options, the Serve YAML, a loaded version, enrichment, the log."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from raymlops.exceptions import ConfigError, ValidationError
from raymlops.registry.client import _infer_signature
from raymlops.registry.formats import Predictor, serialize
from raymlops.serving.enrich import Enrichment
from raymlops.serving.options import DeploymentOptions, load_options
from raymlops.serving.predlog import PredictionLog, prediction_log_dir
from raymlops.serving.version import LoadedVersion
from tests.conftest import REPO


def test_importing_serving_imports_neither_ray_nor_fastapi() -> None:
    import subprocess

    code = ("import sys, raymlops.serving, raymlops.serving.schema, raymlops.serving.protocol;"
            "print(sorted(m for m in ('ray', 'fastapi') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_options_defaults_fit_two_cores_and_errors_name_the_field() -> None:
    opts = DeploymentOptions()
    assert opts.model_num_cpus + opts.ingress_num_cpus < 1
    assert opts.max_ongoing_requests() >= opts.max_batch_size
    with pytest.raises(ConfigError) as info:
        load_options({"max_replicas": 1}, min_replicas=3)
    assert "min_replicas" in info.value.message
    with pytest.raises(ConfigError) as info:
        load_options({"max_batch": 3})
    assert info.value.context["fields"] == ["max_batch"]


def test_serve_config_yaml_is_valid_for_serve_and_for_our_builders() -> None:
    from ray.serve.schema import ServeDeploySchema

    from raymlops.serving.gateway import GATEWAY_APP, app_name

    raw = yaml.safe_load((REPO / "cluster" / "serve_flights.yaml").read_text())
    config = ServeDeploySchema.model_validate(raw)
    assert config.http_options.host == "127.0.0.1"
    model_app, gateway = config.applications
    assert model_app.name == app_name(model_app.args["model"])
    assert model_app.route_prefix == f"/models/{model_app.args['model']}"
    load_options(model_app.args["options"])
    assert (gateway.name, gateway.route_prefix) == (GATEWAY_APP, "/v2")
    for app in config.applications:
        module, _, attr = app.import_path.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"weather__temp": rng.normal(50, 10, 200), "hour": rng.integers(0, 24, 200)})
    y = (X["weather__temp"] > 50).astype(int).to_numpy()
    model = LogisticRegression().fit(X, y)
    sig = _infer_signature(model, X.head(5)).to_dict()
    _data, meta = serialize(model, feature_names=list(X.columns), signature=sig)
    return Predictor(model, meta, "m", 4)


def test_loaded_version_validates_then_predicts(predictor: Predictor) -> None:
    state = LoadedVersion.of(predictor)
    frame = state.prepare(pd.DataFrame({"hour": [3, 20], "weather__temp": [30, 70]}))
    assert list(frame.columns) == ["weather__temp", "hour"]
    predictions, proba = state.predict(frame, proba=True)
    assert predictions.tolist() == [0, 1] and proba.shape == (2, 2)
    assert state.classes == [0, 1] and state.describe()["version"] == 4
    with pytest.raises(ValidationError) as info:
        state.prepare(pd.DataFrame({"hour": [3]}))
    assert info.value.context["field"] == "weather__temp"



def test_predictor_takes_a_frame_in_its_order_as_is_and_reorders_others(
        predictor: Predictor) -> None:
    """Validated frames arrive in the model's order and are used without a copy; any other
    order (or extra columns) is still picked by name, so predictions do not depend on it."""
    ordered = pd.DataFrame({"weather__temp": [30.0, 70.0], "hour": [3, 20]})
    assert predictor._frame(ordered) is ordered
    shuffled = pd.DataFrame({"extra": ["a", "b"], "hour": [3, 20], "weather__temp": [30.0, 70.0]})
    assert list(predictor._frame(shuffled).columns) == ["weather__temp", "hour"]
    assert predictor.predict(shuffled).tolist() == predictor.predict(ordered).tolist() == [0, 1]

class FakeCache:
    """The OnlineFeatureCache contract: rows in, rows with f"{view}__{feature}" out."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values
        self.stopped = False

    def get(self, rows: list[dict]) -> dict:
        return {"rows": [{**r, "weather__temp": self.values.get(r["origin"]), "weather__visib": 1.0}
                         for r in rows],
                "expired": [[] for _ in rows]}

    def stop(self) -> None:
        self.stopped = True


def test_enrichment_takes_keys_and_request_fields_only(predictor: Predictor) -> None:
    plan = {"service": "delay", "views": [{"view": {"name": "weather"},
                                           "entity": {"join_keys": {"origin": "string"}},
                                           "features": ["temp", "visib"]}]}
    cache = FakeCache({"JFK": 30.0, "EWR": 70.0})
    state = LoadedVersion.of(predictor, Enrichment.from_plan(plan, cache))
    assert state.request_schema.names == ["hour", "origin"]
    frame = state.prepare(pd.DataFrame({"origin": ["JFK", "EWR", "LGA"], "hour": [3, 20, 5]}))
    assert list(frame.columns) == ["weather__temp", "hour"]
    assert frame["weather__temp"].tolist()[:2] == [30.0, 70.0]
    assert np.isnan(frame["weather__temp"].iloc[2])  # not in the store: null, not a 422
    with pytest.raises(ValidationError) as info:  # features come from the store, not the caller
        state.prepare(pd.DataFrame({"origin": ["JFK"], "hour": [3], "weather__temp": [1.0]}))
    assert info.value.context["field"] == "weather__temp"
    with pytest.raises(ValidationError) as info:
        state.prepare(pd.DataFrame({"hour": [3]}))
    assert info.value.context["field"] == "origin"
    state.close()
    assert cache.stopped


def test_prediction_log_writes_parquet_off_the_request_path(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "m", "w1", flush_s=3600)  # no timer flush: flush by hand
    log.start()
    log.record(pd.DataFrame({"x": [1.0, 2.0]}), np.array([0, 1]), 3, 1.5, "a")
    log.record(pd.DataFrame({"x": [3.0]}), np.array([1]), 4, 2.5, "b")
    assert not Path(prediction_log_dir(tmp_path, "m")).exists()  # nothing written on record
    log.close()
    table = ds.dataset(prediction_log_dir(tmp_path, "m"), partitioning="hive").to_table()
    frame = table.to_pandas().sort_values("x")
    assert frame["x"].tolist() == [1.0, 2.0, 3.0]
    assert frame["_version"].tolist() == [3, 3, 4]
    assert frame["_request_id"].tolist() == ["a", "a", "b"]
    assert frame["_prediction"].tolist() == [0, 1, 1]
    assert log.files_written == 2 and log.rows_written == 3 and log.failures == 0
    assert not list(Path(prediction_log_dir(tmp_path, "m")).rglob(".*.tmp"))


def test_a_flush_waits_for_the_timer_threads_write_in_flight(tmp_path: Path) -> None:
    """``flush_log`` then read must see every row, even rows the timer took a moment before."""
    import threading

    log = PredictionLog(tmp_path, "m", "w1", flush_s=3600)
    taken, release = threading.Event(), threading.Event()
    real_write = log._write

    def slow_write(version: int, items: list) -> Path:
        taken.set()  # the timer has taken the pending rows and is writing them
        release.wait(10)
        return real_write(version, items)

    log._write = slow_write  # type: ignore[method-assign]
    log.record(pd.DataFrame({"x": [1.0]}), np.array([0]), 1, 1.0, "a")
    timer = threading.Thread(target=log.flush)
    timer.start()
    assert taken.wait(10)
    caller = threading.Thread(target=log.flush)
    caller.start()
    caller.join(0.3)
    assert caller.is_alive()  # the caller's flush waits for the write in flight ...
    release.set()
    caller.join(10)
    timer.join(10)
    rows = ds.dataset(prediction_log_dir(tmp_path, "m"), partitioning="hive").to_table()
    assert rows.column("_request_id").to_pylist() == ["a"]  # ... so the row is there after it


def test_prediction_log_counts_a_failed_write_and_keeps_going(tmp_path: Path) -> None:
    blocker = tmp_path / "predictions"
    blocker.write_text("a file where the folder should be")
    log = PredictionLog(tmp_path, "m", "w1", flush_s=3600)
    log.record(pd.DataFrame({"x": [1.0]}), np.array([0]), 1, 1.0, "a")
    assert log.flush() == [] and log.failures == 1


def test_canary_choice_share_and_stickiness() -> None:
    import random

    from raymlops.serving.routing import Routing, choose_canary

    rng = random.Random(1)
    picks = [choose_canary(10, None, rng) for _ in range(20_000)]
    assert abs(sum(picks) / len(picks) - 0.10) < 0.01
    users = [f"user-{i}" for i in range(5_000)]
    first = [choose_canary(25, u, rng) for u in users]
    assert first == [choose_canary(25, u, rng) for u in users]  # same caller, same side
    assert abs(sum(first) / len(first) - 0.25) < 0.03
    assert not any(choose_canary(0, u, rng) for u in users[:100])
    assert all(choose_canary(100, u, rng) for u in users[:100])
    from pydantic import ValidationError as PydanticValidationError

    with pytest.raises(PydanticValidationError):
        Routing(canary={"version": 2, "percent": 120})
