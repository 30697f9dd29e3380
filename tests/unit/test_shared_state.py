"""A cluster of several hosts refuses host-local storage and SQLite, naming each setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from raymlops.config import load_settings
from raymlops.exceptions import ConfigError
from raymlops.shared_state import check_shared_state, cluster_hosts

PG = "postgresql://postgres@10.0.0.1/raymlops"


def test_one_host_accepts_the_embedded_defaults(tmp_path: Path) -> None:
    check_shared_state(load_settings(storage_root=tmp_path), hosts=1)


def test_several_hosts_refuse_a_local_root_and_each_sqlite_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        check_shared_state(load_settings(storage_root=tmp_path), hosts=3)
    assert info.value.context["fields"] == ["storage_root", "tracking_uri", "feature_registry_uri",
                                            "serve_haproxy"]
    assert "3 hosts" in info.value.message and "s3://" in info.value.message


def test_several_hosts_accept_s3_or_a_declared_shared_mount_with_postgresql(tmp_path: Path) -> None:
    check_shared_state(load_settings(storage_root="s3://b/p", tracking_uri=PG,
                                     feature_registry_uri=PG, serve_haproxy=False), hosts=3)
    check_shared_state(load_settings(storage_root=tmp_path, storage_shared=True, tracking_uri=PG,
                                     feature_registry_uri=PG, serve_haproxy=False), hosts=2)
    with pytest.raises(ConfigError) as info:  # a shared mount does not make SQLite safe
        check_shared_state(load_settings(storage_root=tmp_path, storage_shared=True,
                                         feature_registry_uri=PG, serve_haproxy=False), hosts=2)
    assert info.value.context["fields"] == ["tracking_uri"]


def test_hosts_are_distinct_addresses_of_alive_nodes() -> None:
    nodes = [{"NodeManagerAddress": "10.0.0.1", "Alive": True},
             {"NodeManagerAddress": "10.0.0.1", "Alive": True},  # fake multi-node: one host
             {"NodeManagerAddress": "10.0.0.2", "Alive": False}]
    assert cluster_hosts(nodes) == {"10.0.0.1"}
