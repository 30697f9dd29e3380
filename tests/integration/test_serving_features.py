"""Feature enrichment over HTTP: the caller sends entity keys, the store supplies features.

A model trained on ``weather_<s>__temp`` (a FeatureService column) and ``hour`` (a request
field) is served; requests carry ``origin`` and ``hour`` only. A push to the online store
reaches the replica's cache and changes the next prediction without a redeploy.
"""

from __future__ import annotations

import uuid

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.integration.serving_helpers import serve_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

S = uuid.uuid4().hex[:6]
NAME = f"serve-feat-{S}"
VIEW, SERVICE = f"weather_{S}", f"svc_{S}"
TEMP = f"{VIEW}__temp"


def _push(fs, temps: dict[str, float]) -> None:
    now = pd.Timestamp.now(tz="UTC")
    fs.push(VIEW, pd.DataFrame({"origin": list(temps), "time_hour": now,
                                "temp": list(temps.values()), "visib": 10.0}), to_offline=False)


@pytest.fixture(scope="module")
def served(platform):
    from sklearn.linear_model import LogisticRegression

    from raymlops import serving
    from raymlops.features.client import FeatureStoreClient
    from raymlops.features.definitions import FeatureRepo
    from raymlops.registry import RegistryClient

    settings = serve_settings(platform)
    fs = FeatureStoreClient.connect(settings)
    fs.apply(FeatureRepo.model_validate({
        "entities": [{"name": "origin", "join_keys": {"origin": "string"}}],
        "feature_views": [{"name": VIEW, "entity": "origin", "event_timestamp": "time_hour",
                           "features": [{"name": "temp", "dtype": "float64"},
                                        {"name": "visib", "dtype": "float64"}]}],
        "feature_services": [{"name": SERVICE, "features": [VIEW]}],
    }))
    _push(fs, {"JFK": 20.0, "EWR": 80.0})
    rng = np.random.default_rng(0)
    X = pd.DataFrame({TEMP: rng.uniform(0, 100, 300), "hour": rng.integers(0, 24, 300)})
    model = LogisticRegression().fit(X, (X[TEMP] > 50).astype(int))
    info = RegistryClient.connect(settings).register(
        NAME, model, input_example=X.head(5), aliases=["champion"], feature_service=SERVICE)
    serving.deploy(NAME, settings=settings, log_flush_s=0.5)
    with httpx.Client(base_url=f"{settings.serve_url}/models/{NAME}", timeout=60) as http:
        yield {"http": http, "fs": fs, "model": model, "version": int(info["version"])}
    serving.undeploy(NAME, settings=settings)


def test_requests_send_keys_and_get_features_from_the_store(served) -> None:
    meta = served["http"].get("/").json()
    assert meta["feature_service"] == SERVICE
    assert sorted(c["name"] for c in meta["inputs"]) == ["hour", "origin"]
    r = served["http"].post("/invocations", json={"dataframe_records": [
        {"origin": "JFK", "hour": 3}, {"origin": "EWR", "hour": 3}]})
    assert r.status_code == 200, r.text
    enriched = pd.DataFrame({TEMP: [20.0, 80.0], "hour": [3, 3]})
    assert r.json()["predictions"] == served["model"].predict(enriched).tolist() == [0, 1]


def test_a_push_reaches_the_replica_without_redeploy(served) -> None:
    import time

    _push(served["fs"], {"JFK": 95.0})
    deadline = time.monotonic() + 30
    answer = None
    while time.monotonic() < deadline:
        answer = served["http"].post("/invocations", json={"inputs": {"origin": ["JFK"],
                                                                      "hour": [3]}}).json()
        if answer["predictions"] == [1]:
            break
        time.sleep(0.05)
    assert answer and answer["predictions"] == [1], answer


@pytest.mark.parametrize("record, field", [
    ({"hour": 3}, "origin"),
    ({"origin": "JFK"}, "hour"),
    ({"origin": "JFK", "hour": 3, TEMP: 50.0}, TEMP),
    ({"origin": 7, "hour": 3}, "origin"),
])
def test_enriched_requests_are_validated_too(served, record, field) -> None:
    r = served["http"].post("/invocations", json={"dataframe_records": [record]})
    assert r.status_code == 422 and r.json()["context"]["field"] == field, r.text


def test_unknown_entity_gets_null_features_and_the_models_own_422(served) -> None:
    r = served["http"].post("/invocations", json={"inputs": {"origin": ["SFO"], "hour": [3]}})
    # a LogisticRegression cannot take NaN: that is the model's limit, reported as a 422
    assert r.status_code == 422 and "could not predict" in r.json()["detail"]
