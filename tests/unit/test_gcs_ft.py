"""GCS fault-tolerance settings: Redis address and a fresh key namespace per head, no password
on a command line, and `down` deleting only its own namespace's keys (against the local Redis)."""

from __future__ import annotations

import uuid

import pytest

from raymlops._gcs_ft import drop_namespace, gcs_env, new_namespace
from raymlops.config import load_settings
from raymlops.exceptions import ConfigError


def test_env_points_the_gcs_at_redis_under_its_own_namespace(tmp_path) -> None:
    settings = load_settings(storage_root=tmp_path, gcs_storage="redis",
                             redis_url="redis://127.0.0.1:6380/0")
    ns = new_namespace(settings)
    assert gcs_env(settings, ns) == {"RAY_REDIS_ADDRESS": "127.0.0.1:6380",
                                     "RAY_external_storage_namespace": ns}
    other = load_settings(storage_root=tmp_path / "other")
    assert new_namespace(other).split("-")[1] != ns.split("-")[1]  # roots never share one


def test_a_redis_password_is_refused_not_put_on_a_command_line(tmp_path) -> None:
    settings = load_settings(storage_root=tmp_path, gcs_storage="redis",
                             redis_url="redis://:hunter2@127.0.0.1:6379/0")
    with pytest.raises(ConfigError) as err:
        gcs_env(settings, "ns")
    assert "hunter2" not in str(err.value) and err.value.context["field"] == "redis_url"


def test_drop_namespace_deletes_only_its_own_keys(tmp_path) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis must run on 127.0.0.1:6379 (.ci/run starts it)")
    mine, theirs = f"t-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
    for ns in (mine, theirs):
        client.hset(f"RAY{ns}@NODE", "k", "v")
        client.hset(f"RAY{ns}@ACTOR", "k", "v")
    try:
        settings = load_settings(storage_root=tmp_path)
        assert drop_namespace(settings, mine) == 2
        assert list(client.scan_iter(match=f"RAY{mine}@*")) == []
        assert len(list(client.scan_iter(match=f"RAY{theirs}@*"))) == 2
    finally:
        drop_namespace(load_settings(storage_root=tmp_path), theirs)
