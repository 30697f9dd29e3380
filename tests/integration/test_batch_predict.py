"""Batch prediction on the shared cluster: flights with point-in-time weather, exactly once."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raymlops.datasets.flights import load_flights, month_slice
from raymlops.exceptions import ConflictError, SchemaMismatchError
from raymlops.registry.client import RegistryClient
from raymlops.serving.batch import batch_predict

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
MODEL = "batch-delay"
RAW = ["origin", "tailnum", "sched_dep_ts", "hour", "distance", "carrier"]
OWN = ["hour", "distance"]


def _month(month: int) -> pd.DataFrame:
    table = month_slice(load_flights(), month)
    frame = table.select([*RAW, "delayed"]).to_pandas()
    return frame.dropna(subset=["delayed"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def registry(platform) -> RegistryClient:
    return RegistryClient.connect(platform.settings)


@pytest.fixture(scope="module")
def delay_model(flights_features, registry):
    """A model of delay > 15 min on flight fields + point-in-time weather and plane features."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    train = flights_features.get_historical_features("delay_model", _month(1), "sched_dep_ts", engine="local")
    features = OWN + [c for c in train.columns if "__" in c]
    X, y = train[features], train["delayed"].astype(int)
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    info = registry.register(
        MODEL, model, input_example=X.head(5), feature_service="delay_model",
        entity_timestamp="sched_dep_ts", training_data=X, aliases=["champion"],
    )
    return model, features, info


def _write_input(path: Path, frame: pd.DataFrame, row_group_size: int) -> Path:
    path.mkdir(parents=True)
    half = len(frame) // 2
    for i, part in enumerate((frame.iloc[:half], frame.iloc[half:])):
        pq.write_table(pa.Table.from_pandas(part[RAW], preserve_index=False),
                       path / f"part-{i}.parquet", row_group_size=row_group_size)
    return path


def test_batch_scores_with_point_in_time_features_like_the_model_in_process(
    delay_model, flights_features, tmp_path: Path
) -> None:
    model, features, info = delay_model
    feb = _month(2)
    src = _write_input(tmp_path / "in", feb, row_group_size=4000)
    result = batch_predict(f"{MODEL}@champion", src, tmp_path / "out", keep_columns=["origin"])
    assert result.version == info["version"] and result.rows == len(feb)
    assert result.feature_service == "delay_model"
    out = pd.read_parquet(tmp_path / "out").sort_values("row_id").reset_index(drop=True)
    assert out["row_id"].tolist() == list(range(len(feb)))
    assert set(out["model_version"]) == {info["version"]} and set(out["model_name"]) == {MODEL}
    assert (out["origin"] == feb["origin"]).all()
    # Same rows, same point-in-time features, same model -> the same probabilities.
    expected = model.predict_proba(
        flights_features.get_historical_features("delay_model", feb, "sched_dep_ts", engine="local")[features]
    )[:, 1]
    np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=0, atol=1e-12)
    assert ((out["score"] >= 0.5).astype(int) == out["prediction"]).all()
    manifest = (tmp_path / "out" / "_manifest.json").read_text()
    assert f'"version": {info["version"]}' in manifest


def test_existing_output_is_refused_and_missing_columns_fail_before_any_work(delay_model, tmp_path: Path) -> None:
    feb = _month(2).head(500)
    src = _write_input(tmp_path / "in", feb, row_group_size=1000)
    (tmp_path / "out").mkdir()
    with pytest.raises(ConflictError):
        batch_predict(MODEL, src, tmp_path / "out")
    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(pa.Table.from_pandas(feb[["origin", "hour"]]), bad / "x.parquet")
    with pytest.raises(SchemaMismatchError, match="tailnum"):
        batch_predict(MODEL, bad, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    assert not any(p.name.startswith(".out2") for p in tmp_path.iterdir())  # no staging left


def test_every_row_appears_once_when_a_scoring_worker_is_killed_mid_job(delay_model, tmp_path: Path) -> None:
    feb = pd.concat([_month(2), _month(3)], ignore_index=True)
    src = _write_input(tmp_path / "in", feb, row_group_size=1500)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = batch_predict(MODEL, src, tmp_path / "out", workers=2,
                                              rows_per_unit=1500)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    job = threading.Thread(target=run)
    job.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and job.is_alive() and time.monotonic() < deadline:
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".out.staging")]
        written = [f for s in staging for f in s.glob("*.parquet")]
        scorers = _pool_pids(MODEL)  # this model's actors only (other pools may be warm)
        if written and scorers:
            killed = scorers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    still_running_after_kill = job.is_alive()
    job.join(timeout=240)
    assert killed is not None and still_running_after_kill, "the kill did not land mid-job"
    assert "error" not in outcome, outcome.get("error")
    out = pd.read_parquet(tmp_path / "out", columns=["row_id"])
    assert len(out) == len(feb)
    assert sorted(out["row_id"]) == list(range(len(feb)))


def _pool_pids(model: str, version: int | None = None) -> list[int]:
    import ray

    from raymlops.serving.scoring_pool import pool_names

    pids = []
    for name in pool_names(model, version):
        try:
            pids.append(ray.get(ray.get_actor(name).describe.remote(), timeout=30)["pid"])
        except Exception:  # noqa: BLE001, S112 - ending meanwhile
            continue
    return pids


def _scores(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out).sort_values("row_id").reset_index(drop=True)


def test_a_second_job_of_the_same_version_scores_on_the_warm_pool(delay_model, platform,
                                                                  tmp_path: Path) -> None:
    from raymlops.serving.scoring_pool import describe_pools, pool_names

    _, _, info = delay_model
    feb = _month(2).head(6000)
    src = _write_input(tmp_path / "in", feb, row_group_size=1000)
    first = batch_predict(MODEL, src, tmp_path / "one", workers=2, rows_per_unit=1000)
    warm = pool_names(MODEL, info["version"])
    pids = sorted(_pool_pids(MODEL, info["version"]))
    assert len(warm) >= 2 and len(pids) == len(warm)
    before = {r["actor"]: r["units"] for r in describe_pools(platform.settings.namespace)}
    second = batch_predict(MODEL, src, tmp_path / "two", workers=2, rows_per_unit=1000)
    assert pool_names(MODEL, info["version"]) == warm  # no actor started, none lost
    assert sorted(_pool_pids(MODEL, info["version"])) == pids
    after = {r["actor"]: r for r in describe_pools(platform.settings.namespace)}
    assert sum(after[a]["units"] - before[a] for a in warm) == second.units == 6
    assert all(after[a]["model"] == MODEL and after[a]["version"] == info["version"] for a in warm)
    assert second.seconds < first.seconds * 10  # sanity only; the speed is the benchmark's
    pd.testing.assert_frame_equal(_scores(tmp_path / "one"), _scores(tmp_path / "two"))


def test_a_small_input_takes_one_actor_and_scores_like_the_distributed_path(
        delay_model, tmp_path: Path) -> None:
    """Size-aware: one unit, one actor; the same rows and scores as two actors on 500-row
    units of the same input."""
    feb = _month(2).head(1200)
    src = _write_input(tmp_path / "in", feb, row_group_size=1000)
    small = batch_predict(MODEL, src, tmp_path / "small", rows_per_unit=100_000)
    spread = batch_predict(MODEL, src, tmp_path / "spread", workers=2, rows_per_unit=500)
    assert small.units == 2 and spread.units >= 3  # one unit per file at most 100k rows
    pd.testing.assert_frame_equal(_scores(tmp_path / "small"), _scores(tmp_path / "spread"))


def test_a_new_version_replaces_the_pool_and_idle_pools_end(flights_features, registry,
                                                              tmp_path: Path) -> None:
    """Version 2 promoted: the next job scores on v2 actors only, and v1's actors end. Actors
    started with a short idle timeout end by themselves once idle."""
    from sklearn.linear_model import LogisticRegression

    from raymlops.serving.scoring_pool import pool_names
    from tests.eventually import eventually

    name = "batch-pool-life"
    train = _month(1).head(3000)
    X, y = train[OWN], train["delayed"].astype(int)
    v1 = registry.register(name, LogisticRegression().fit(X, y), input_example=X.head(5),
                           aliases=["champion"])
    src = tmp_path / "in"
    src.mkdir()
    pq.write_table(pa.Table.from_pandas(_month(2).head(2000)[OWN]), src / "x.parquet")
    batch_predict(name, src, tmp_path / "v1", pool_idle_s=600)
    assert pool_names(name, v1["version"])
    v2 = registry.register(name, LogisticRegression(C=0.01).fit(X, y), input_example=X.head(5),
                           aliases=["champion"])
    out = batch_predict(name, src, tmp_path / "v2", pool_idle_s=3)
    assert out.version == v2["version"]
    assert set(pd.read_parquet(tmp_path / "v2")["model_version"]) == {v2["version"]}
    eventually(lambda: not pool_names(name, v1["version"]), timeout=60,
               what="version 1's pool retired")
    assert pool_names(name, v2["version"])  # warm right after the job ...
    eventually(lambda: not pool_names(name, v2["version"]), timeout=60,
               what="version 2's pool ended after 3 idle seconds")  # ... and gone once idle


def test_the_training_data_schema_is_stored_with_the_version(delay_model, registry) -> None:
    from raymlops.data_schema import validate

    _, features, info = delay_model
    schema = registry.data_schema(MODEL, info["version"])
    assert set(schema["columns"]) == set(features)
    assert schema["columns"]["weather__temp"]["kind"] == "numeric"
    july = pd.DataFrame({"hour": [5, 30], "distance": [100, 200]})
    kinds = {(v.column, v.kind) for v in validate(july, schema)}
    assert ("hour", "out_of_range") in kinds and ("weather__temp", "missing_column") in kinds


def test_a_compiled_pipeline_scores_the_batch_like_the_original(flights_features, registry,
                                                                  tmp_path: Path) -> None:
    """AutoML's kind of model (ColumnTransformer with text and number columns + logistic
    regression) is compiled at registration and the batch runs the compiled one: every score
    within 1e-5 of the original's."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = flights_features.get_historical_features("delay_model", _month(1), "sched_dep_ts",
                                                     engine="local")
    features = OWN + ["origin"] + [c for c in train.columns if "__" in c]
    X, y = train[features], train["delayed"].astype(int)
    text = [c for c in features if not pd.api.types.is_numeric_dtype(X[c])]
    numbers = [c for c in features if c not in text]
    model = Pipeline([
        ("prep", ColumnTransformer([
            ("cat", OneHotEncoder(handle_unknown="ignore"), text),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers)])),
        ("clf", LogisticRegression(max_iter=300)),
    ]).fit(X, y)
    name = "batch-compiled"
    info = registry.register(name, model, input_example=X.head(5), feature_service="delay_model",
                             entity_timestamp="sched_dep_ts", check_data=(X, y.to_numpy()),
                             aliases=["champion"])
    assert info["meta"]["compiled"]["serves"], info["meta"]["compiled"]
    feb = _month(2).head(3000)
    src = _write_input(tmp_path / "in", feb, row_group_size=1000)
    batch_predict(f"{name}@champion", src, tmp_path / "out")
    out = pd.read_parquet(tmp_path / "out").sort_values("row_id").reset_index(drop=True)
    expected = model.predict_proba(flights_features.get_historical_features(
        "delay_model", feb, "sched_dep_ts", engine="local")[features])[:, 1]
    np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=0, atol=1e-5)
