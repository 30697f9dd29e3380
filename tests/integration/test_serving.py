"""Online serving over real HTTP on loopback: one deploy for the whole module.

The model is a logistic regression on (temp: double, hour: long). Every assertion goes
through Serve's HTTP proxy with httpx, as a client would.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.integration.serving_helpers import register_classifier, serve_settings, training_data

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

NAME = "serve-it"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def served(platform):
    from raymlops import serving

    settings = serve_settings(platform)
    version = register_classifier(settings, NAME)
    entry = serving.deploy(NAME, settings=settings, max_batch_size=8, max_rows=100,
                           max_body_bytes=64 * 1024, log_flush_s=0.5)
    with httpx.Client(base_url=settings.serve_url, timeout=60) as client:
        yield {"settings": settings, "version": version, "entry": entry, "http": client}
    serving.undeploy(NAME, settings=settings)


def expected(frame: pd.DataFrame) -> list[int]:
    from sklearn.linear_model import LogisticRegression

    X, y = training_data(0)
    return LogisticRegression().fit(X, y).predict(frame[["temp", "hour"]]).tolist()


ROWS = pd.DataFrame({"temp": [30.0, 70.0, 55.5], "hour": [2, 22, 12]})


@pytest.mark.parametrize("payload", [
    {"dataframe_split": ROWS.to_dict(orient="split")},
    {"dataframe_records": ROWS.to_dict(orient="records")},
    {"instances": ROWS.to_dict(orient="records")},
    {"instances": ROWS.values.tolist()},
    {"inputs": ROWS.to_dict(orient="list")},
], ids=["split", "records", "instances", "instances_rows", "inputs"])
def test_mlflow_formats_predict_and_name_the_version(served, payload) -> None:
    r = served["http"].post(f"/models/{NAME}/invocations", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == expected(ROWS)
    assert body["version"] == served["version"]
    assert r.headers["x-model-version"] == str(served["version"])


def test_probabilities_on_request(served) -> None:
    r = served["http"].post(f"/models/{NAME}/invocations?probabilities=true",
                            json={"inputs": ROWS.to_dict(orient="list")})
    body = r.json()
    assert body["classes"] == [0, 1]
    assert np.allclose(np.sum(body["probabilities"], axis=1), 1.0)


BAD = [
    ("not json", b"{oops", JSON, 400, None),
    ("wrong content type", b"temp=1", {"content-type": "text/plain"}, 415, None),
    ("no content type", b"{}", {}, 415, None),
    ("missing field", json.dumps({"dataframe_records": [{"temp": 1.0}]}).encode(), JSON, 422,
     "hour"),
    ("extra field", json.dumps({"dataframe_records": [{"temp": 1.0, "hour": 1, "x": 2}]})
     .encode(), JSON, 422, "x"),
    ("wrong type", json.dumps({"dataframe_records": [{"temp": "hot", "hour": 1}]}).encode(),
     JSON, 422, "temp"),
    ("float for long", json.dumps({"inputs": {"temp": [1.0], "hour": [1.5]}}).encode(), JSON,
     422, "hour"),
    ("no format key", json.dumps({"rows": []}).encode(), JSON, 422, "rows"),
    ("too many rows", json.dumps({"inputs": {"temp": [1.0] * 101, "hour": [1] * 101}})
     .encode(), JSON, 413, None),
    ("oversize body", b"[" + b"1," * 40_000 + b"1]", JSON, 413, None),
]


@pytest.mark.parametrize("case, raw, headers, status, field", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_typed_4xx_naming_the_field(served, case, raw, headers, status,
                                                     field) -> None:
    r = served["http"].post(f"/models/{NAME}/invocations", content=raw, headers=headers)
    assert r.status_code == status, (case, r.text)
    body = r.json()
    assert body["detail"] and body["error"]
    if field:
        assert body["context"]["field"] == field, body
    if status == 422 and case != "no format key":  # refused by the served version's signature
        assert r.headers["x-model-version"] == str(served["version"])
        assert body["context"]["version"] == served["version"]


def test_fuzzed_payloads_get_no_5xx_and_no_replica_dies(served) -> None:
    from ray import serve

    handle = serve.get_app_handle(f"model-{NAME}")
    pid_before = handle.stats.remote().result(timeout_s=30)["pid"]
    rng = np.random.default_rng(3)
    atoms = [None, True, 1, -2.5, "x", [], {}, [1, "a"], {"temp": "x"}, [[1.0, 2.0]],
             {"temp": [1.0], "hour": [2]}, [{"temp": 1.0, "hour": None}], 1e308]
    keys = ["dataframe_split", "dataframe_records", "instances", "inputs", "params", "zz"]
    statuses: dict[int, int] = {}
    for _ in range(300):
        if rng.random() < 0.15:
            raw = bytes(rng.integers(0, 256, rng.integers(1, 64)).tolist())
        else:
            payload = {str(rng.choice(keys)): atoms[rng.integers(len(atoms))]
                       for _ in range(rng.integers(0, 3))}
            raw = json.dumps(payload).encode()
        r = served["http"].post(f"/models/{NAME}/invocations", content=raw, headers=JSON)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses.get(422, 0) > 0 and statuses.get(400, 0) > 0
    assert handle.stats.remote().result(timeout_s=30)["pid"] == pid_before


def test_fuzzed_v2_payloads_get_no_5xx(served) -> None:
    rng = np.random.default_rng(5)
    values = [None, True, 1, 2.5, "x", [], [1.0], [[1.0, 2.0]], {"a": 1}, -1]
    fields = ["name", "shape", "datatype", "data", "parameters"]
    statuses: dict[int, int] = {}
    for _ in range(200):
        tensor = {f: values[rng.integers(len(values))] for f in fields if rng.random() < 0.7}
        if rng.random() < 0.5:
            tensor.update(name=str(rng.choice(["temp", "hour", "zz"])),
                          datatype=str(rng.choice(["FP64", "INT64", "BYTES", "BOOL", "X"])))
        body = {"inputs": [tensor]} if rng.random() < 0.9 else tensor
        headers = dict(JSON)
        if rng.random() < 0.1:
            headers["inference-header-content-length"] = str(rng.integers(-5, 500))
        r = served["http"].post(f"/v2/models/{NAME}/infer", content=json.dumps(body).encode(),
                                headers=headers)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    assert not [s for s in statuses if s >= 500], statuses
    assert statuses.get(422, 0) > 0


def test_open_inference_protocol_v2(served) -> None:
    http, version = served["http"], served["version"]
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").status_code == 200
    assert http.get(f"/v2/models/{NAME}/ready").json()["ready"] is True
    meta = http.get(f"/v2/models/{NAME}").json()
    assert meta["name"] == NAME and meta["versions"] == [str(version)]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {"temp": "FP64", "hour": "INT64"}
    request = {"id": "req-1", "inputs": [
        {"name": "temp", "shape": [3], "datatype": "FP64", "data": ROWS["temp"].tolist()},
        {"name": "hour", "shape": [3, 1], "datatype": "INT64", "data": ROWS["hour"].tolist()},
    ], "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
    r = http.post(f"/v2/models/{NAME}/infer", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "req-1" and body["model_version"] == str(version)
    assert r.headers["x-model-version"] == str(version)
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == expected(ROWS)
    assert outputs["predict_proba"]["shape"] == [3, 2]
    bad = {"inputs": [{"name": "temp", "shape": [1], "datatype": "FP64", "data": ["x"]}]}
    r = http.post(f"/v2/models/{NAME}/infer", json=bad)
    assert r.status_code == 422 and r.json()["context"]["field"] == "temp"
    r = http.post("/v2/models/no-such-model/infer", json=request)
    assert r.status_code == 404 and r.json()["error_type"] == "ModelNotFoundError"
    assert NAME not in r.json()["error"] and "no-such-model" in r.json()["error"]


def test_openapi_docs(served) -> None:
    http = served["http"]
    assert http.get(f"/models/{NAME}/docs").status_code == 200
    spec = http.get(f"/models/{NAME}/openapi.json").json()
    assert "/invocations" in spec["paths"]
    assert http.get("/v2/docs").status_code == 200


def test_status_reports_the_version_and_replicas(served) -> None:
    from raymlops import serving

    (entry,) = serving.status(NAME, settings=served["settings"])
    assert entry["status"] == "RUNNING" and entry["version"] == served["version"]
    assert entry["ref"] == "champion" and entry["replicas"].get("RUNNING", 0) >= 1
    assert served["entry"]["url"].endswith(f"/models/{NAME}")


def test_prediction_log_and_metrics(served) -> None:
    import pyarrow.dataset as ds
    from ray import serve

    from raymlops.serving import prediction_log_dir

    http = served["http"]
    for i in range(5):
        r = http.post(f"/models/{NAME}/invocations", headers={"x-request-id": f"log-{i}"},
                      json={"inputs": {"temp": [40.0 + i], "hour": [i]}})
        assert r.status_code == 200
    app = serve.get_app_handle(f"model-{NAME}")
    app.flush_log.remote().result(timeout_s=30)
    table = ds.dataset(prediction_log_dir(served["settings"].storage_root, NAME),
                       partitioning="hive").to_table().to_pandas()
    logged = table[table["_request_id"].str.startswith("log-")].sort_values("_request_id")
    assert list(logged["temp"]) == [40.0, 41.0, 42.0, 43.0, 44.0]
    assert set(logged["_version"]) == {served["version"]}
    assert (logged["_latency_ms"] > 0).all() and "_prediction" in logged
    stats = app.stats.remote().result(timeout_s=30)
    assert stats["http"]["status_200"] >= 5 and stats["http"]["errors"] >= 1
    assert stats["metrics"]["batches"] >= 5 and stats["log"]["rows"] >= 5


def test_mlflows_own_scoring_client(served) -> None:
    """MLflow's ScoringServerClient, pointed at the model's prefix, pings and predicts."""
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    settings = served["settings"]
    client = ScoringServerClient("127.0.0.1", f"{settings.serve_port}/models/{NAME}")
    client.wait_server_ready(timeout=30)
    response = client.invoke(ROWS)
    assert list(response.get_predictions(predictions_format="ndarray")) == expected(ROWS)
    with pytest.raises(Exception, match="error code 422"):
        client.invoke(ROWS.rename(columns={"temp": "temperature"}))


@pytest.mark.parametrize("binary", [True, False], ids=["binary_tensors", "json_tensors"])
def test_tritonclient_http(served, binary: bool) -> None:
    """tritonclient's HTTP client: health, metadata and infer, binary extension included."""
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=f"127.0.0.1:{served['settings'].serve_port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME)
    meta = client.get_model_metadata(NAME)
    assert meta["versions"] == [str(served["version"])]
    temp = triton.InferInput("temp", [3], "FP64")
    temp.set_data_from_numpy(ROWS["temp"].to_numpy(), binary_data=binary)
    hour = triton.InferInput("hour", [3], "INT64")
    hour.set_data_from_numpy(ROWS["hour"].to_numpy(dtype=np.int64), binary_data=binary)
    result = client.infer(NAME, [temp, hour], outputs=[
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary)])
    assert result.as_numpy("predict").tolist() == expected(ROWS)
    assert result.as_numpy("predict_proba").shape == (3, 2)
    assert result.get_response()["model_version"] == str(served["version"])
    wrong = triton.InferInput("temp", [3], "FP64")
    wrong.set_data_from_numpy(ROWS["temp"].to_numpy(), binary_data=binary)
    with pytest.raises(InferenceServerException, match="hour"):
        client.infer(NAME, [wrong])
    client.close()


def test_metrics_reach_rays_metrics_agent(served, ray_cluster) -> None:
    """What Prometheus would scrape: requests by status, errors, latency and batch sizes."""
    import time
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    port = ray_cluster.nodes()[0]["MetricsExportPort"]
    version = str(served["version"])
    deadline, got = time.monotonic() + 120, {}
    while time.monotonic() < deadline:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        got = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name.startswith("ray_raymlops_") and s.labels.get("model") == NAME:
                    key = (s.name, s.labels.get("status"), s.labels.get("version"))
                    got[key] = got.get(key, 0) + s.value
        if (got.get(("ray_raymlops_requests_total", "200", version), 0) >= 5
                and got.get(("ray_raymlops_errors_total", "422", None), 0) >= 1
                and got.get(("ray_raymlops_request_latency_ms_count", None, version), 0) >= 5
                and got.get(("ray_raymlops_batch_size_count", None, version), 0) >= 5):
            return
        time.sleep(2)
    raise AssertionError(f"metrics agent never showed the serving metrics; last: {got}")


def test_concurrent_requests_are_batched(served) -> None:
    """Requests that arrive together share one predict call; each gets its own answer."""
    import asyncio

    from ray import serve

    app = serve.get_app_handle(f"model-{NAME}")
    url = f"{served['settings'].serve_url}/models/{NAME}/invocations"
    rows = [{"temp": 20.0 + 2 * i, "hour": i % 24} for i in range(48)]

    async def burst() -> list[dict]:
        async with httpx.AsyncClient(timeout=60) as client:
            responses = await asyncio.gather(*[
                client.post(url, json={"dataframe_records": [row]}) for row in rows])
        return [r.json() for r in responses]

    before = app.stats.remote().result(timeout_s=30)["metrics"]
    answers = asyncio.run(burst())
    after = app.stats.remote().result(timeout_s=30)["metrics"]
    assert [a["predictions"][0] for a in answers] == expected(pd.DataFrame(rows))
    assert after["max_batch"] > 1, after  # some of the burst shared a batch
    assert after["batched_requests"] - before["batched_requests"] == len(rows)
    assert after["batches"] - before["batches"] < len(rows)
