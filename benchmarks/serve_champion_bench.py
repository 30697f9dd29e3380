"""Online serving of the model users really serve: the AutoML champion with its features.

One run per family (logreg, hgb, rf): AutoML trains on the flights example's spec (January
and February 2013, the FeatureService ``delay_model``: weather at the origin and the plane),
registers the best model of that family, which is compiled to ONNX at registration, and
promotes it. A request is one flight as the demo sends it (origin, tailnum, hour, distance,
carrier), asking for probabilities. Three servers answer it:

(a) raymlops: ``serving.deploy`` of the champion (Serve's HAProxy mode, validation, features
    from the replica's online cache, the compiled model when it matched at registration);
(b) a bare Starlette server: the same scikit-learn Pipeline, the same features from an
    in-process dict, a one-row DataFrame per request (what a hand-written server does);
(c) a bare Starlette server calling the same ONNX model the same way: the new limit;
(d) Serve's floor: a no-op deployment in the same cluster and mode (a raw ASGI app that reads
    the body and returns a constant), what any model served by Ray Serve here is bound by.

Concurrency 1, 16 and 64, interleaved per concurrency, aiohttp client on the same machine.

    python benchmarks/serve_champion_bench.py [--families logreg,hgb,rf] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port, machine, write_section
from serve_bench import CONCURRENCY, _load

REQUEST = ["origin", "tailnum", "hour", "distance", "carrier"]
FLOOR = "Serve floor (no-op app)"
FLOOR_APP = "serve-floor"


def _deploy_floor(settings) -> str:
    """(d): a Serve application that does nothing per request but read it and answer a
    constant, deployed like raymlops' own (same cluster, HAProxy mode, no access log)."""
    from ray import serve

    from raymlops.serving.api import _start_serve

    _start_serve(settings)  # Serve with raymlops' HTTP options (port, host, HAProxy) first

    async def noop(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"predictions": [0]}'})

    def build():
        return noop

    @serve.deployment(logging_config={"enable_access_log": False},
                      ray_actor_options={"num_cpus": 0.35})
    @serve.ingress(build)
    class Floor:
        pass

    serve.run(Floor.bind(), name=FLOOR_APP, route_prefix=f"/{FLOOR_APP}")
    return f"{settings.serve_url}/{FLOOR_APP}/invocations"

# (b) and (c): one process each; argv: model dir, port, "sklearn" | "onnx"
BARE_SERVER = """
import json, sys
import numpy as np, pandas as pd, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
folder, port, runtime = sys.argv[1], int(sys.argv[2]), sys.argv[3]
spec = json.load(open(f"{folder}/bare.json"))
columns, keys, text = spec["columns"], spec["keys"], set(spec["text"])
features = {tuple(k): v for k, v in spec["features"]}  # (origin, tailnum) -> {column: value}
if runtime == "sklearn":
    from raymlops.registry.formats import ArtifactMeta, deserialize
    model = deserialize(open(f"{folder}/model.skops", "rb").read(),
                        ArtifactMeta.from_json(open(f"{folder}/meta.json").read()))
    def predict(row):
        proba = model.predict_proba(pd.DataFrame([row], columns=columns))
        return model.classes_[proba.argmax(axis=1)].tolist(), proba.tolist()
else:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(open(f"{folder}/model.onnx", "rb").read(), options,
                                   providers=["CPUExecutionProvider"])
    dtypes = {i.name: np.float64 if i.type == "tensor(double)" else np.float32 for i in session.get_inputs()}
    def predict(row):
        inputs = {c: (np.array([[str(row[c])]], dtype=object) if c in text
                      else np.array([[np.nan if row[c] is None else row[c]]], dtype=dtypes[c]))
                  for c in columns}
        labels, proba = session.run(None, inputs)
        return labels.tolist(), proba.tolist()
async def invocations(request):
    body = await request.json()
    answers = []
    for record in body["dataframe_records"]:
        row = {**features.get(tuple(record[k] for k in keys), {}), **record}
        answers.append(predict(row))
    return JSONResponse({"predictions": [p for a in answers for p in a[0]],
                         "probabilities": [q for a in answers for q in a[1]]})
app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


def _train(family: str, settings, work: Path) -> tuple[str, object]:
    """AutoML on the flights spec restricted to ``family``; the winner promoted."""
    import yaml

    from raymlops.datasets.flights_labels import write_label_table
    from raymlops.registry.client import RegistryClient
    from raymlops.training.spec import parse_spec
    from raymlops.training.workflow import train

    labels = work / "labels.parquet"
    if not labels.exists():
        write_label_table(labels)
    repo = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((repo / "examples" / "flights" / "spec.yaml").read_text())
    name = f"champion-{family}"
    raw.update(name=name, search={"families": [family], "trials": 3, "max_steps": 3})
    raw["labels"]["path"] = str(labels)
    spec = parse_spec(raw, base_dir=work)
    result = train(spec, settings)
    registry = RegistryClient.connect(settings)
    registry.promote(name, result.version["version"])
    return name, registry.get_version(name, result.version["version"])


def _bare_files(name: str, settings, folder: Path, records: list[dict]) -> bool:
    """The champion's Pipeline, its ONNX bytes and the request's features, for (b) and (c)."""
    from raymlops.features.client import FeatureStoreClient
    from raymlops.registry.client import RegistryClient, compiled_bytes
    from raymlops.registry.formats import serialize
    from raymlops.serving.schema import InputSchema

    registry = RegistryClient.connect(settings)
    predictor = registry.load(name, "champion")
    blob, meta = serialize(predictor.model)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.skops").write_bytes(blob)
    (folder / "meta.json").write_text(meta.to_json())
    onnx = compiled_bytes(registry, name, predictor.version)
    if onnx is not None:
        (folder / "model.onnx").write_bytes(onnx)
    columns = list(predictor.meta.feature_names)
    keys = ["origin", "tailnum"]
    online = FeatureStoreClient.connect(settings).get_online_features(
        predictor.meta.feature_service, [{k: r[k] for k in keys} for r in records])
    features = [[[r[k] for k in keys], {c: row.get(c) for c in columns if "__" in c}]
                for r, row in zip(records, online["rows"], strict=True)]
    schema = InputSchema.from_signature(predictor.meta.signature, columns)
    text = [c.name for c in schema.columns if c.type == "string"] if schema else []
    (folder / "bare.json").write_text(json.dumps(
        {"columns": columns, "keys": keys, "text": text, "features": features}, default=float))
    return onnx is not None


def _wait_ok(url: str, payload: bytes, headers: dict[str, str]) -> dict:
    import httpx

    for _ in range(120):
        try:
            r = httpx.post(url, content=payload, headers={"content-type": "application/json", **headers},
                           timeout=30)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} never answered 200")


def _run_family(family: str, settings, work: Path, records: list[dict], seconds: float,
                floor_url: str) -> dict:
    from raymlops import serving
    from raymlops.serving.auth import client_headers

    name, version = _train(family, settings, work)
    compiled = (version.get("meta") or {}).get("compiled") or {}
    folder = work / family
    has_onnx = _bare_files(name, settings, folder, records)
    serving.deploy(name, settings=settings, log_predictions=False)
    payload = json.dumps({"dataframe_records": records}).encode()
    auth = client_headers(settings)
    procs, urls = [], {"raymlops": f"{settings.serve_url}/models/{name}/invocations?probabilities=true"}
    try:
        for runtime, label in (("sklearn", "bare Starlette + Pipeline"), ("onnx", "bare Starlette + ONNX")):
            if runtime == "onnx" and not has_onnx:
                continue
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(folder), str(port), runtime]))
            urls[label] = f"http://127.0.0.1:{port}/invocations"
        answers = {label: _wait_ok(url, payload, auth) for label, url in urls.items()}
        urls[FLOOR] = floor_url
        reference = answers["bare Starlette + Pipeline"]
        for label, answer in answers.items():  # the same labels, probabilities within 1e-5
            assert answer["predictions"] == reference["predictions"], (label, answer)
            got = answer.get("probabilities") or []
            assert all(abs(a - b) <= 1e-5 for p, q in zip(got, reference["probabilities"], strict=True)
                       for a, b in zip(p, q, strict=True))
        cells = {}
        for c in CONCURRENCY:
            for label, url in reversed(list(urls.items())):
                cells[(label, c)] = asyncio.run(_load(url, payload, c, seconds, auth=auth))
                print(family, label, c, cells[(label, c)], flush=True)
        runtime = "onnx" if compiled.get("serves") else f"original ({compiled.get('reason') or 'not compiled'})"
        return {"cells": cells, "runtime": runtime, "metric": version.get("metrics", {}),
                "compiled": compiled}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        serving.undeploy(name, settings=settings)


def render(results: dict[str, dict], seconds: float) -> str:
    lines = [
        "## Online serving of the AutoML champion (`benchmarks/serve_champion_bench.py`)",
        "",
        f"The champion AutoML registers for the flights example (one family per run, 3 trials), "
        f"with the FeatureService `delay_model`; one flight per request with probabilities; "
        f"{seconds:g} s per cell after 1 s warm-up, aiohttp client on the same machine, {machine()}. "
        f"(a) raymlops in its default mode (HAProxy), (b) bare Starlette calling the same "
        f"scikit-learn Pipeline with the same features from an in-process dict, (c) bare "
        f"Starlette calling the same ONNX model the same way, (d) {FLOOR}: a Serve application "
        f"in the same cluster and mode that only reads the request and answers a constant.",
        "",
        "| family | served by | concurrency | server | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for family, result in results.items():
        for (label, c), r in result["cells"].items():
            lines.append(f"| {family} | {result['runtime']} | {c} | {label} | {r['rps']:.0f} | "
                         f"{r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} |")
    lines += ["", "| family | target | measured | verdict |", "|---|---|---:|---|"]
    for family, result in results.items():
        cells = result["cells"]

        def ratio(a: str, b: str, c: int, key: str = "rps", cells: dict = cells) -> float | None:
            if (a, c) not in cells or (b, c) not in cells:
                return None
            return cells[(a, c)][key] / cells[(b, c)][key]

        pipe, onnx = "bare Starlette + Pipeline", "bare Starlette + ONNX"
        checks = [
            ("c=16: (a) >= 5x (b) req/s", ratio("raymlops", pipe, 16), 5.0, ">="),
            ("c=1: (a) p50 <= 0.3x (b) p50", ratio("raymlops", pipe, 1, "p50"), 0.3, "<="),
            ("c=16: (a) >= 0.8x (c) req/s", ratio("raymlops", onnx, 16), 0.8, ">="),
            ("c=64: (a) >= 1.0x (c) req/s", ratio("raymlops", onnx, 64), 1.0, ">="),
        ]
        bounds = [(f"c={c}: (d) / (c) req/s (Serve's bound on (a) / (c))", ratio(FLOOR, onnx, c))
                  for c in (16, 64)]
        bounds += [(f"c={c}: (a) / (d) req/s (share of the bound reached)", ratio("raymlops", FLOOR, c))
                   for c in (16, 64)]
        for label, value, target, way in checks:
            if value is None:
                lines.append(f"| {family} | {label} | - | no ONNX model |")
                continue
            ok = value >= target if way == ">=" else value <= target
            lines.append(f"| {family} | {label} | {value:.2f}x | {'met' if ok else '**missed**'} |")
        for label, value in bounds:
            if value is not None:
                lines.append(f"| {family} | {label} | {value:.2f}x | bound |")
    return "\n".join(lines) + "\n" + NOTES


NOTES = """
Reading it: "served by" is what the registered version recorded at registration: `onnx` when
the compiled model matched the original on the check rows (labels, probabilities, the gate
metric), else the original flavour and why. Every family AutoML trains serves compiled here:
logistic regression and the forest through skl2onnx, HistGradientBoosting through raymlops' own
converter (`raymlops/registry/onnx_hgb.py`: an opset-5 `TreeEnsemble` with set-membership
splits for categories, numbers in double). In a replica a request to `/invocations` is answered
by an ASGI fast path in front of FastAPI (`InvocationsFastPath` in `raymlops/serving/ingress.py`)
and the hot path (`raymlops/serving/columns.py`): JSON values checked by type, enriched from the
replica's cache and fed to ONNX Runtime without a DataFrame (parse + validate + enrich + predict
0.11 ms per request in-process, against 6.8 ms on the pandas path it replaced); Serve's access
log is off by default (`access_log` option).

Why the (c) targets are missed on this machine: (d) is a Serve application that does nothing
but read the request and answer a constant, in the same cluster and mode. It reaches only
0.38-0.58x of (c) at c=16 and c=64 (0.90x once (c)'s own model work grows, as for the forest at
c=64), so no model served through Ray Serve can reach 0.8x (c) here: the gap is Serve's
per-request path (HAProxy's hop, the replica's uvicorn and Serve's ASGI wrappers and metrics)
on 2 cores that the load generator shares. raymlops reaches 0.69-0.88x of that floor at c=16
and 0.98-1.12x at c=64 (batching one ONNX Runtime call per batch, and a second replica from
autoscaling), and 8-13x the hand-written Pipeline server (b). Where (c)'s model work is larger
(the forest at c=64), batching puts (a) at 1.01x (c).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="logreg,hgb,rf")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()

    import raymlops
    from raymlops.cluster import down
    from raymlops.config import load_settings
    from raymlops.datasets import load_flights
    from raymlops.datasets.flights_features import DEFINITIONS, planes_rows, weather_rows
    from raymlops.features.client import FeatureStoreClient

    work = Path(tempfile.mkdtemp(prefix="serve-champion-"))
    settings = load_settings(storage_root=work / "root", gcs_port=free_port(), dashboard_port=free_port(),
                             serve_port=free_port())
    try:
        settings = raymlops.init(settings).settings
        features = FeatureStoreClient.connect(settings)
        features.apply(DEFINITIONS)
        features.ingest("weather", weather_rows())
        features.ingest("planes", planes_rows())
        flight = load_flights().slice(100_000, 1).to_pylist()[0]
        records = [{k: (float(flight[k]) if k in ("hour", "distance") else flight[k]) for k in REQUEST}]
        floor_url = _deploy_floor(settings)
        results = {family: _run_family(family, settings, work, records, args.seconds, floor_url)
                   for family in args.families.split(",")}
    finally:
        down(settings)
    print(write_section("serving_champion", render(results, args.seconds)))


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    main()
