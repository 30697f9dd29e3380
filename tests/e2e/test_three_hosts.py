"""The platform on a cluster of three hosts, each with its own disk (see ``hosts.py``).

Storage is ``s3://`` on a real S3 store (SeaweedFS), SQL state on PostgreSQL, the endpoints
listen on the head's test-network address (so they ask for the inference token), and the
head offers no CPUs: every piece of work has to run on a worker host. On it, as a user runs
it: `raymlops up`, workers joining with `ray start`, the short demo (features, AutoML, serve
with online traffic, batch predict, drift, a CT cycle). Then: where everything ran, nothing
of the platform on a worker's own disk, a worker host killed mid-batch (every row still
exactly once), the registry actor killed (back on the head with every version).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raymlops.serving.scoring_pool import POOL_PREFIX
from tests.conftest import REPO
from tests.e2e.hosts import s3_cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

BIN = Path(sys.executable).parent
MODEL = "flights-delay"

PROBE = r"""
import json, sys, ray
from ray.util.state import list_actors, list_nodes, list_tasks
from raymlops.shared_state import cluster_hosts
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
nodes = list_nodes(address=sys.argv[1], detail=True, limit=100, raise_on_missing_output=False)
head = [n.node_id for n in nodes if n.is_head_node][0]
actors = list_actors(address=sys.argv[1], detail=True, limit=10000, raise_on_missing_output=False)
tasks = list_tasks(address=sys.argv[1], detail=True, limit=10000, raise_on_missing_output=False)
print(json.dumps({
    "head": head,
    "hosts": len(cluster_hosts(ray.nodes())),
    "nodes": {n.node_id: n.node_ip for n in nodes if n.state == "ALIVE"},
    "actors": [[a.class_name, a.node_id, a.state, a.name or ""] for a in actors],
    "tasks": [[t.name, t.node_id, t.state] for t in tasks],
}))
"""

KILL_REGISTRY = r"""
import json, sys, time, ray
from ray.util.state import list_actors
from raymlops.registry.client import RegistryClient
import raymlops
platform = raymlops.init()
registry = RegistryClient.connect(platform.settings)
before = [v["version"] for v in registry.list_versions(sys.argv[1])]
actor = ray.get_actor("raymlops-registry", namespace=platform.settings.namespace)
ray.kill(actor, no_restart=False)
time.sleep(1)
after = [v["version"] for v in registry.list_versions(sys.argv[1])]
where = [a.node_id for a in list_actors(address=ray.get_runtime_context().gcs_address,
                                        filters=[("name", "=", "raymlops-registry"),
                                                 ("state", "=", "ALIVE")])]
print(json.dumps({"before": before, "after": after, "nodes": where,
                  "head": ray.get_runtime_context().get_node_id()}))
"""


def test_three_hosts_run_the_loop_and_survive_a_dead_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with s3_cluster(tmp_path) as cluster:
        hosts, env, gcs, on_head = cluster.hosts, cluster.env, cluster.gcs, cluster.on_head
        for key, value in cluster.s3_env.items():  # this process reads results from S3 too
            monkeypatch.setenv(key, value)
        demo = on_head(str(BIN / "raymlops"), "demo", "--months", "1", "--trials", "2",
                       "--ct-trials", "2", "--json", timeout=900)
        summary = json.loads(demo.stdout)
        assert summary["serving"]["requests"] > 0 and summary["serving"]["failed"] == 0, \
            summary["serving"]
        assert summary["report"].startswith("s3://platform/raymlops/demo/")

        placed = json.loads(on_head(str(BIN / "python"), "-c", PROBE, gcs).stdout)
        head, workers = placed["head"], set(placed["nodes"]) - {placed["head"]}
        assert len(workers) == 2 and placed["hosts"] == 3  # what the guard rails count

        def nodes_of(kinds: list[list[str]], needle: str) -> set[str]:
            return {row[1] for row in kinds if needle in row[0]}

        # (scoring actors on a worker host: the many-unit batch below waits for them; the
        # demo's months are one unit each, which one actor scores, wherever it was placed)
        assert nodes_of(placed["actors"], "ServeReplica") & workers, "no replica on a worker"
        assert nodes_of(placed["actors"], "ImplicitFunc") & workers or \
            nodes_of(placed["actors"], "trainable") & workers, "no Tune trial on a worker"
        platform_actors = [r for r in placed["actors"] if r[3].startswith("raymlops-")
                           and not r[3].startswith(POOL_PREFIX) and r[2] == "ALIVE"]
        assert platform_actors and all(r[1] == head for r in platform_actors), platform_actors
        assert {r[1] for r in placed["tasks"]} & workers, "no Ray task on a worker"

        # Every row of the demo's scored month exactly once, read back from S3.
        import pyarrow.dataset as pads

        from raymlops.storage import filesystem_of

        fs, path = filesystem_of("s3://platform/raymlops/demo/scored/2013-03")
        ids = pads.dataset(path, filesystem=fs).to_table(columns=["row_id"]).column(0)
        assert sorted(ids.to_pylist()) == list(range(summary["months"][0]["rows"]))

        # A worker host dies mid-batch: every row still exactly once. The input: the demo's
        # month four times over, in small row groups and small units (each one a part written
        # to S3), so the job outlives the kill even where compiled scoring takes milliseconds.
        import pyarrow as pa
        import pyarrow.parquet as pq

        month = pq.read_table("platform/raymlops/demo/months/2013-03.parquet", filesystem=fs)
        pq.write_table(pa.concat_tables([month] * 4), "platform/raymlops/big.parquet",
                       filesystem=fs, row_group_size=2000)
        batch = subprocess.Popen(
            hosts.head_command([str(BIN / "raymlops"), "batch", "predict", f"{MODEL}@champion",
                                "-i", "s3://platform/raymlops/big.parquet",
                                "-o", "s3://platform/raymlops/killed", "--rows-per-unit", "500",
                                "--json"]),
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def worker_with_scorers() -> int | None:
            assert batch.poll() is None, "the batch finished before a host could be killed"
            now = json.loads(on_head(str(BIN / "python"), "-c", PROBE, gcs).stdout)
            busy = {now["nodes"].get(a[1]) for a in now["actors"]
                    if "Scorer" in a[0] and a[2] == "ALIVE"}
            return next((i for i, w in enumerate(hosts.workers) if w.address in busy), None)

        spotted: list[int] = []

        def spot() -> bool:
            busy = worker_with_scorers()
            spotted.extend([] if busy is None else [busy])
            return busy is not None

        wait_for(spot, 180, "scoring actors on a worker host", every=1.0)
        victim = spotted[-1]
        hosts.workers[victim].kill()
        out, err = batch.communicate(timeout=600)
        assert batch.returncode == 0, err[-5000:]
        result = json.loads(out)
        assert result["rows"] == 4 * month.num_rows
        fs, path = filesystem_of("s3://platform/raymlops/killed")
        ids = pads.dataset(path, filesystem=fs).to_table(columns=["row_id"]).column(0)
        assert sorted(ids.to_pylist()) == list(range(result["rows"]))

        # Nothing of the platform on the surviving worker's own disk.
        survivor = hosts.workers[1 - victim]
        from raymlops.config import load_settings

        ray_temp = load_settings(storage_root="s3://platform/raymlops").ray_temp_dir
        interpreter = Path(os.path.realpath(sys.executable)).parents[1]  # bound back, read-only
        listing = survivor.run(  # Ray's own session folder (logs, sockets) aside
            f"find /tmp {os.environ.get('HOME', '/root')} -path {ray_temp} -prune "
            f"-o -path {interpreter} -prune -o -type f -print 2>/dev/null").stdout.split()
        # ONNX Runtime writes these when it is imported (a device id for its telemetry, and a
        # session marker in $TMPDIR), as Ray keeps its session folder: not the platform's state
        runtime_own = (f"{os.environ.get('HOME', '/root')}/.cache/Microsoft/DeveloperTools/.onnxruntime/",
                       "/tmp/.ses")
        leaked = [p for p in listing if not p.startswith((str(ray_temp), *runtime_own))]
        assert not leaked, leaked

        # The registry actor killed: back on the head, every version kept.
        killed = json.loads(on_head(str(BIN / "python"), "-c", KILL_REGISTRY, MODEL).stdout)
        assert killed["before"] and killed["after"] == killed["before"]
        assert killed["nodes"] == [head]
