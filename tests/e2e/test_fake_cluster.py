"""cluster/local.yaml: a fake multi-node cluster with a logical-GPU worker, launched locally.

`ray up` cannot launch Ray's fake multi-node provider in 2.60 (its defaults file is missing
from the wheel); `RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config` can, and that is
what `raymlops up --autoscaling-config` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.timeout(300)

GPU_PROBE = """
import json, ray
ray.init(address="{address}", logging_level="ERROR", log_to_driver=False)
head = ray.get_runtime_context().get_node_id()

@ray.remote(num_gpus=1, num_cpus=0.1)
def where():
    return ray.get_runtime_context().get_node_id(), [str(g) for g in ray.get_gpu_ids()]

node, gpus = ray.get(where.remote(), timeout=60)
gpu_nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")]
print(json.dumps({{"head": head, "node": node, "gpus": gpus, "gpu_nodes": gpu_nodes}}))
"""


def test_fake_multinode_cluster_places_gpu_work_on_the_gpu_worker(cli) -> None:
    started = cli.json("up", "--autoscaling-config", str(REPO / "cluster" / "local.yaml"))
    assert started["started_head"] is True
    address = started["ray_address"]

    deadline = time.monotonic() + 90
    report = cli.json("status")
    while report["resources"]["GPU"]["total"] < 1 and time.monotonic() < deadline:
        time.sleep(2)
        report = cli.json("status")
    assert report["resources"]["GPU"]["total"] == 1.0, report["resources"]
    assert report["resources"]["nodes"] >= 2  # head + the logical-GPU worker

    attached = cli.json("up")  # `raymlops up` against the running cluster attaches
    assert attached["started_head"] is False and attached["ray_address"] == address

    env = dict(cli.env, RAY_AUTH_MODE="token")
    probe = subprocess.run(
        [sys.executable, "-c", GPU_PROBE.format(address=address)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    placed = json.loads(probe.stdout.strip().splitlines()[-1])
    assert placed["node"] != placed["head"]  # the head has no GPU
    assert placed["node"] in placed["gpu_nodes"]
    assert placed["gpus"] == ["0"] or len(placed["gpus"]) == 1

    down = cli.json("down")
    assert down["head_stopped"] is True
    assert cli.run("status", check=False).returncode == 1
