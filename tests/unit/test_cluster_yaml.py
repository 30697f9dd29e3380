"""The cluster configs in ``cluster/`` are valid for Ray 2.60 and follow our own rules.

Validation uses Ray's own cluster-config JSON schema (``ray/autoscaler/ray-schema.json``)
through ``ray.autoscaler._private.util.validate_config`` -- the same check ``ray up`` and the
running autoscaler do -- without starting or attaching to Ray.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[2]
AWS_YAML = REPO / "cluster" / "aws.yaml"
LOCAL_YAML = REPO / "cluster" / "local.yaml"
SCHEMA_PATH = Path(ray.autoscaler.__file__).parent / "ray-schema.json"

REDIS_PORT = 6379
GCS_PORT = 6385
FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"


def _load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        config = yaml.safe_load(f)
    assert isinstance(config, dict), path
    return config


@pytest.fixture()
def aws() -> dict[str, Any]:
    return _load(AWS_YAML)


@pytest.fixture()
def local() -> dict[str, Any]:
    return _load(LOCAL_YAML)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    with SCHEMA_PATH.open() as f:
        return json.load(f)


# --- our own rules, as functions returning the violations so they can be tested too ------


def _start_commands(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "head": list(config.get("head_start_ray_commands") or []),
        "worker": list(config.get("worker_start_ray_commands") or []),
    }


def _ray_start_command(commands: list[str]) -> str | None:
    """The one list entry that runs ``ray start`` (exports must be in that same entry)."""
    found = [c for c in commands if re.search(r"\bray start\b", c)]
    assert len(found) <= 1, found
    return found[0] if found else None


def _port_violations(config: dict[str, Any]) -> list[str]:
    """GCS ports given to ``ray start`` (``--port``, ``--address``, ``--gcs-address``) and the
    fake provider's ``gcs_address`` must never be Redis's 6379."""
    problems = []
    for kind, commands in _start_commands(config).items():
        for cmd in commands:
            for m in re.finditer(r"--port[= ](\d+)", cmd):
                if int(m.group(1)) == REDIS_PORT:
                    problems.append(f"{kind}: GCS --port {REDIS_PORT}: {cmd!r}")
            for m in re.finditer(r"--(?:gcs-)?address[= ]['\"]?\S*?:(\d+)", cmd):
                if int(m.group(1)) == REDIS_PORT:
                    problems.append(f"{kind}: joins a GCS on {REDIS_PORT}: {cmd!r}")
            if re.search(r"\bray start\b", cmd) and "--head" in cmd and "--port" not in cmd:
                problems.append(f"{kind}: head without --port uses Ray's default {REDIS_PORT}")
    gcs_address = (config.get("provider") or {}).get("gcs_address")
    if gcs_address is not None and str(gcs_address).rsplit(":", 1)[-1] == str(REDIS_PORT):
        problems.append(f"provider.gcs_address on {REDIS_PORT}: {gcs_address}")
    return problems


def _dashboard_violations(config: dict[str, Any]) -> list[str]:
    problems = []
    for kind, commands in _start_commands(config).items():
        for cmd in commands:
            if re.search(r"--dashboard-host[= ]['\"]?(0\.0\.0\.0|::|\[::\])(?![\w.:])", cmd):
                problems.append(f"{kind}: dashboard exposed on all interfaces: {cmd!r}")
    return problems


def _token_auth_violations(config: dict[str, Any]) -> list[str]:
    """Head and workers start with RAY_AUTH_MODE=token and a token they can read."""
    problems = []
    mounts = config.get("file_mounts") or {}
    mounted_token = any(str(remote).endswith("/.ray/auth_token") for remote in mounts)
    for kind, commands in _start_commands(config).items():
        cmd = _ray_start_command(commands)
        if cmd is None:
            problems.append(f"{kind}: no `ray start` command")
            continue
        if not re.search(r"\bRAY_AUTH_MODE=token\b", cmd):
            problems.append(f"{kind}: `ray start` without RAY_AUTH_MODE=token")
        has_token = re.search(r"\bRAY_AUTH_TOKEN(_PATH)?=\S", cmd) or mounted_token
        if not has_token:
            problems.append(f"{kind}: no token (RAY_AUTH_TOKEN[_PATH] or ~/.ray/auth_token)")
    return problems


def _gcs_ft_violations(config: dict[str, Any]) -> list[str]:
    """The head keeps GCS state in an external Redis, in its own namespace."""
    problems = []
    head = _ray_start_command(_start_commands(config)["head"]) or ""
    redis = re.search(r"\bRAY_REDIS_ADDRESS=(\S+)", head)
    if not redis:
        problems.append("head: no RAY_REDIS_ADDRESS=<host>:<port> with `ray start`")
    elif not re.fullmatch(r"(rediss?://)?[^\s:;]+:\d+(,[^\s:;]+:\d+)*;?", redis.group(1)):
        problems.append(f"head: malformed RAY_REDIS_ADDRESS {redis.group(1)!r}")
    if not re.search(r"\bRAY_external_storage_namespace=[A-Za-z0-9_.-]+", head):
        problems.append("head: no RAY_external_storage_namespace with `ray start`")
    worker = _ray_start_command(_start_commands(config)["worker"]) or ""
    if "RAY_REDIS_ADDRESS" in worker:
        problems.append("worker: only the head talks to Redis")
    return problems


def _gpu_node_types(config: dict[str, Any]) -> list[str]:
    return [
        name
        for name, node_type in config["available_node_types"].items()
        if name != config["head_node_type"]
        and (node_type.get("resources") or {}).get("GPU", 0) >= 1
        and node_type.get("max_workers", 0) >= 1
    ]


# --- schema validation -------------------------------------------------------------------


def test_aws_yaml_validates_as_ray_up_would(aws: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.validate(aws, schema)  # the file itself, before defaults
    prepared = prepare_config(copy.deepcopy(aws))  # what `ray up` does before validating
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["provider"]["region"] == "us-west-2"
    assert prepared["provider"]["cache_stopped_nodes"] is False
    assert prepared["auth"]["ssh_user"] == "ubuntu"
    assert prepared["cluster_name"] == "raymlops"


def test_local_yaml_validates_as_the_autoscaler_reads_it(local: dict[str, Any]) -> None:
    # The running autoscaler validates the raw file (no defaults are filled in), so it must
    # be complete on its own, e.g. carry cluster_synced_files and per-type min/max_workers.
    validate_config(local)
    for name, node_type in local["available_node_types"].items():
        assert "max_workers" in node_type, name
        assert "min_workers" in node_type, name


def test_local_yaml_uses_the_fake_multinode_provider(local: dict[str, Any]) -> None:
    from ray.autoscaler._private.loader import load_function_or_class
    from ray.autoscaler.node_provider import NodeProvider

    provider = local["provider"]
    assert provider["type"] == "external"
    assert provider["module"] == FAKE_PROVIDER
    cls = load_function_or_class(provider["module"])
    assert issubclass(cls, NodeProvider)
    host, port = provider["gcs_address"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) != REDIS_PORT
    # The provider registers its head under this fixed type name.
    assert local["head_node_type"] == "ray.head.default"
    assert local["available_node_types"]["ray.head.default"]["resources"] == {"CPU": 1}


def test_local_yaml_node_types(local: dict[str, Any]) -> None:
    types = local["available_node_types"]
    assert types["cpu_worker"]["resources"] == {"CPU": 1}
    assert (types["cpu_worker"]["min_workers"], types["cpu_worker"]["max_workers"]) == (0, 1)
    assert types["gpu_worker"]["resources"] == {"CPU": 1, "GPU": 1}
    assert (types["gpu_worker"]["min_workers"], types["gpu_worker"]["max_workers"]) == (1, 1)


def test_aws_yaml_node_types(aws: dict[str, Any]) -> None:
    types = aws["available_node_types"]
    head = types[aws["head_node_type"]]
    assert head["node_config"]["InstanceType"] == "m5.2xlarge"
    cpu, gpu = types["cpu_worker"], types["gpu_worker"]
    assert cpu["node_config"]["InstanceType"] == "m5.4xlarge"
    assert (cpu["min_workers"], cpu["max_workers"]) == (1, 10)
    assert gpu["node_config"]["InstanceType"] == "g5.xlarge"
    assert gpu["resources"]["GPU"] == 1
    assert (gpu["min_workers"], gpu["max_workers"]) == (0, 4)
    assert aws["max_workers"] >= sum(t.get("min_workers", 0) for t in types.values())
    assert aws["idle_timeout_minutes"] > 0
    # Per-type worker_setup_commands replace the global ones: the GPU type must install the
    # project itself, with a CUDA torch.
    gpu_setup = " ".join(gpu["worker_setup_commands"])
    assert "pip install raymlops" in gpu_setup
    assert re.search(r"download\.pytorch\.org/whl/cu\d+", gpu_setup)


# --- our own rules -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [AWS_YAML, LOCAL_YAML], ids=["aws", "local"])
def test_no_gcs_on_redis_port(path: Path) -> None:
    assert _port_violations(_load(path)) == []


def test_aws_head_gcs_port_and_workers_join_it(aws: dict[str, Any]) -> None:
    head = _ray_start_command(aws["head_start_ray_commands"])
    worker = _ray_start_command(aws["worker_start_ray_commands"])
    assert head is not None and f"--port={GCS_PORT}" in head
    assert worker is not None and f"--address=$RAY_HEAD_IP:{GCS_PORT}" in worker
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head


@pytest.mark.parametrize("path", [AWS_YAML, LOCAL_YAML], ids=["aws", "local"])
def test_dashboard_not_on_all_interfaces(path: Path) -> None:
    assert _dashboard_violations(_load(path)) == []


def test_aws_dashboard_explicitly_on_localhost(aws: dict[str, Any]) -> None:
    head = _ray_start_command(aws["head_start_ray_commands"])
    assert head is not None and "--dashboard-host=127.0.0.1" in head


def test_aws_token_auth_on_head_and_workers(aws: dict[str, Any]) -> None:
    assert _token_auth_violations(aws) == []
    # The token reaches every node at the path Ray reads by default.
    assert aws["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"


def test_aws_gcs_fault_tolerance_with_external_redis(aws: dict[str, Any]) -> None:
    assert _gcs_ft_violations(aws) == []
    head = _ray_start_command(aws["head_start_ray_commands"]) or ""
    assert "RAY_external_storage_namespace=raymlops" in head


@pytest.mark.parametrize("path", [AWS_YAML, LOCAL_YAML], ids=["aws", "local"])
def test_gpu_worker_type_exists(path: Path) -> None:
    assert _gpu_node_types(_load(path)) == ["gpu_worker"]


# --- the checks can fail ------------------------------------------------------------------


def test_validator_rejects_config_without_provider(local: dict[str, Any]) -> None:
    del local["provider"]
    with pytest.raises(jsonschema.ValidationError, match="provider"):
        validate_config(local)


def test_validator_rejects_unknown_node_type_key(aws: dict[str, Any]) -> None:
    aws["available_node_types"]["gpu_worker"]["gpus_please"] = 1
    with pytest.raises(jsonschema.ValidationError, match="gpus_please"):
        validate_config(prepare_config(aws))


def test_validator_rejects_fractional_gpu_resource(local: dict[str, Any]) -> None:
    local["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        validate_config(local)


def test_validator_rejects_min_workers_over_max_workers(local: dict[str, Any]) -> None:
    local["max_workers"] = 0
    with pytest.raises(ValueError, match="max_workers"):
        validate_config(local)


def test_rules_catch_broken_configs(aws: dict[str, Any], local: dict[str, Any]) -> None:
    broken = copy.deepcopy(aws)
    broken["head_start_ray_commands"] = [
        "ray start --head --port=6379 --dashboard-host=0.0.0.0 "
        "--autoscaling-config=~/ray_bootstrap_config.yaml"
    ]
    broken["worker_start_ray_commands"] = ["ray start --address=$RAY_HEAD_IP:6379"]
    broken["file_mounts"] = {}
    assert len(_port_violations(broken)) == 2
    assert len(_dashboard_violations(broken)) == 1
    assert len(_token_auth_violations(broken)) == 4  # mode + token, head + worker
    assert len(_gcs_ft_violations(broken)) == 2  # no Redis address, no namespace

    no_port = copy.deepcopy(aws)
    no_port["head_start_ray_commands"] = [
        c.replace(f"--port={GCS_PORT}", "") for c in no_port["head_start_ray_commands"]
    ]
    assert _port_violations(no_port) != []

    redis_port_fake = copy.deepcopy(local)
    redis_port_fake["provider"]["gcs_address"] = "127.0.0.1:6379"
    assert _port_violations(redis_port_fake) != []

    no_gpu = copy.deepcopy(local)
    no_gpu["available_node_types"]["gpu_worker"]["resources"] = {"CPU": 1}
    assert _gpu_node_types(no_gpu) == []


def test_the_cluster_settings_pass_the_guard_rails_and_reach_every_node(
        aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from raymlops.config import load_settings

    monkeypatch.delenv("RAYMLOPS_STORAGE_ROOT")  # the file's values, as on a node
    from raymlops.shared_state import check_shared_state

    settings_file = REPO / "cluster" / "raymlops-cluster.yaml"
    settings = load_settings(settings_file)
    check_shared_state(settings, hosts=15)  # the head and aws.yaml's 14 workers at most
    assert settings.storage_root.startswith("s3://") and settings.online_store == "redis"
    assert aws["file_mounts"]["~/raymlops.yaml"] == "cluster/raymlops-cluster.yaml"
    for commands in (aws["head_start_ray_commands"], aws["worker_start_ray_commands"]):
        assert any("RAYMLOPS_CONFIG=$HOME/raymlops.yaml" in c for c in commands)
    for node_type in aws["available_node_types"].values():  # S3 rights on every node
        assert node_type["node_config"]["IamInstanceProfile"]["Arn"]
