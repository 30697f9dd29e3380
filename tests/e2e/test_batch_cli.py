"""`raymlops batch predict`, `raymlops validate` and `jobs/batch_predict.py`, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from raymlops.datasets.flights import load_flights, month_slice
from tests.conftest import REPO
from tests.e2e.conftest import BIN

pytestmark = pytest.mark.timeout(420)

TRAIN = """
import sys
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.impute import SimpleImputer
from raymlops.features.client import FeatureStoreClient
from raymlops.registry import RegistryClient
jan = pd.read_parquet(sys.argv[1])
train = FeatureStoreClient.connect().get_historical_features("delay_model", jan, "sched_dep_ts")
cols = ["hour", "distance", "weather__temp", "weather__visib", "weather__precip", "planes__seats"]
X = train[cols].astype("float64")
model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)).fit(X, train["delayed"].astype(int))
info = RegistryClient.connect().register(
    "cli-batch", model, input_example=X.head(5), feature_service="delay_model",
    entity_timestamp="sched_dep_ts", training_data=X, aliases=["champion"])
print(info["version"])
"""


def test_batch_predict_validate_and_job(platform_cli, shared_flights_features, tmp_path) -> None:
    cli = platform_cli
    flights = load_flights()
    cols = ["origin", "tailnum", "sched_dep_ts", "hour", "distance", "delayed"]
    month_slice(flights, 1).select(cols).to_pandas().dropna().to_parquet(tmp_path / "jan.parquet")
    feb = month_slice(flights, 2).select(cols[:-1]).to_pandas()
    feb.to_parquet(tmp_path / "feb.parquet")
    trained = subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / "jan.parquet")],
                             env=cli.env, capture_output=True, text=True, timeout=240)
    assert trained.returncode == 0, trained.stderr

    result = cli.json("batch", "predict", "cli-batch@champion", "--input", str(tmp_path / "feb.parquet"),
                      "--output", str(tmp_path / "scored"), "--keep", "origin,tailnum")
    assert result["rows"] == len(feb) and result["version"] == 1 and result["feature_service"] == "delay_model"
    out = pd.read_parquet(tmp_path / "scored").sort_values("row_id")
    assert out["row_id"].tolist() == list(range(len(feb)))
    assert out["tailnum"].fillna("").tolist() == feb["tailnum"].fillna("").tolist()
    assert out["score"].between(0, 1).all() and set(out["model_version"]) == {1}

    again = cli.run("batch", "predict", "cli-batch", "--input", str(tmp_path / "feb.parquet"),
                    "--output", str(tmp_path / "scored"), check=False)
    assert again.returncode == 1 and "ConflictError" in again.stderr and "overwrite" in again.stderr
    table = cli.run("batch", "predict", "cli-batch", "--input", str(tmp_path / "feb.parquet"),
                    "--output", str(tmp_path / "scored"), "--overwrite").stdout
    assert "cli-batch v1" in table and f"{len(feb):,}" in table

    # The schema stored with v1 is the training frame's: a frame of other columns and values violates it.
    odd = pd.DataFrame({"hour": [3, 99], "distance": [100.0, 200.0], "weather__temp": ["hot", "cold"]})
    odd.to_parquet(tmp_path / "odd.parquet")
    checked = cli.run("validate", "cli-batch@champion", "--data", str(tmp_path / "odd.parquet"),
                      "--json", check=False)
    assert checked.returncode == 2, checked.stderr
    kinds = {(v["column"], v["kind"]) for v in json.loads(checked.stdout)["violations"]}
    assert {("hour", "out_of_range"), ("weather__temp", "wrong_type"),
            ("planes__seats", "missing_column")} <= kinds

    env = dict(cli.env, RAY_AUTH_MODE="token")
    job = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", cli.dashboard, "--working-dir", str(REPO),
         "--", "python", "jobs/batch_predict.py", "cli-batch", "--input", str(tmp_path / "feb.parquet"),
         "--output", str(tmp_path / "by-job")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert job.returncode == 0, job.stdout + job.stderr
    assert len(pd.read_parquet(tmp_path / "by-job")) == len(feb)
