"""The short demo on one host (the embedded default) beside the same on three hosts.

One host: `raymlops demo` on a fresh local storage root, SQLite, local Ray (the baseline).
Three hosts: the test cluster of ``tests/e2e/hosts.py`` (network namespaces, a private disk per
worker, S3 storage on SeaweedFS, PostgreSQL, the head offering 0 CPUs, the inference token on),
the same command run on its head. Both on this machine, in this run: three Ray nodes share its
cores, so the ratio shows what crossing hosts costs (S3 round trips, remote object transfer,
three raylets), not what more machines would gain. Needs root (network namespaces).

    python benchmarks/hosts_bench.py [--months 1] [--trials 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import free_port, machine, write_section  # noqa: E402

BIN = Path(sys.executable).parent


def demo_args(months: int, trials: int) -> list[str]:
    return ["demo", "--months", str(months), "--trials", str(trials), "--ct-trials", str(trials),
            "--json"]


def one_host(months: int, trials: int) -> tuple[float, dict]:
    root = Path(tempfile.mkdtemp(prefix="rmo-hosts-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYMLOPS_", "RAY_"))}
    env.update(RAYMLOPS_STORAGE_ROOT=str(root), RAYMLOPS_GCS_PORT=str(free_port()),
               RAYMLOPS_DASHBOARD_PORT=str(free_port()), RAYMLOPS_SERVE_PORT=str(free_port()),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    started = time.perf_counter()
    proc = subprocess.run([str(BIN / "raymlops"), *demo_args(months, trials)], env=env,
                          capture_output=True, text=True, timeout=1800, check=True)
    return time.perf_counter() - started, json.loads(proc.stdout)


def three_hosts(months: int, trials: int) -> tuple[float, dict]:
    from tests.e2e.hosts import s3_cluster

    with tempfile.TemporaryDirectory(prefix="rmo-hosts-bench-") as tmp, \
            s3_cluster(Path(tmp)) as cluster:
        started = time.perf_counter()
        proc = cluster.raymlops(*demo_args(months, trials), timeout=1800)
        return time.perf_counter() - started, json.loads(proc.stdout)


def row(name: str, seconds: float, summary: dict, base: float) -> str:
    s = summary["serving"]
    month = summary["months"][0]
    return (f"| {name} | {seconds:.1f} | {seconds / base:.2f}x | {s['requests']:,} | {s['failed']} | "
            f"{s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {summary['mean_auc_loop']:.4f} | "
            f"{month['batch_rows_per_s']:,.0f} | {summary['retrains']} / {summary['promotions']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=1)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    base_s, base = one_host(args.months, args.trials)
    print(f"one host: {base_s:.1f} s")
    hosts_s, hosts = three_hosts(args.months, args.trials)
    print(f"three hosts: {hosts_s:.1f} s ({hosts_s / base_s:.2f}x)")
    command = f"python benchmarks/hosts_bench.py --months {args.months} --trials {args.trials}"
    write_section("hosts", f"""## Three hosts: the short demo across hosts vs one host

`{command}` ({machine()}; both setups on this one machine, same run). One host: the embedded
default (local root, SQLite, one Ray node). Three hosts: network-namespace hosts with private
disks, storage `s3://` on SeaweedFS, SQL on PostgreSQL, the head with 0 CPUs (AutoML trials,
scoring actors, Ray Data tasks and Serve replicas run on the two workers; checked by
`tests/e2e/test_three_hosts.py`), the inference token on. The demo: features ingest and
materialize, AutoML, serve with online traffic, batch-score {args.months} month(s), drift, CT.

| setup | demo s | vs one host | requests | failed | p50 ms | p99 ms | loop AUC | batch rows/s | retrains / promoted |
|---|---|---|---|---|---|---|---|---|---|
{row("one host (baseline)", base_s, base, base_s)}
{row("three hosts", hosts_s, hosts, base_s)}

Reading it: the three "hosts" share this machine's 2 cores, so the ratio is the price of
crossing hosts (objects moved between raylets, every file through S3, three raylets' own CPU),
not a speed-up; on real machines the workers add their cores.
""")


if __name__ == "__main__":
    main()
