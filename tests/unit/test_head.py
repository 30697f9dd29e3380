"""Head management helpers that need no running Ray: token, env, state file, port checks."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path

import pytest
import yaml

from raymlops import _head
from raymlops.config import load_settings
from raymlops.exceptions import ClusterError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    return tmp_path / "home"


def test_token_made_once_private_and_in_rays_format(home: Path) -> None:
    assert _head.ensure_auth_token() is True
    token_file = home / ".ray" / "auth_token"
    token = token_file.read_text()
    assert len(token) == 64 and int(token, 16) >= 0  # 256 bits, hex, like Ray's generator
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert _head.ensure_auth_token() is False
    assert token_file.read_text() == token  # never replaced


def test_token_from_env_is_respected(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x" * 64)
    assert _head.ensure_auth_token() is False
    assert not (home / ".ray" / "auth_token").exists()


def test_token_path_env_is_where_it_goes(home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "tok"))
    assert _head.ensure_auth_token() is True
    assert (tmp_path / "tok").is_file()


def test_head_env_puts_this_interpreter_first(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "1.2.3.4:1")
    env = _head.head_env(load_settings(storage_root=tmp_path))
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["RAY_AUTH_MODE"] == "token"
    assert "RAY_ADDRESS" not in env


def test_state_file_round_trip_and_corruption(tmp_path: Path) -> None:
    state = _head.HeadState(True, "127.0.0.1:6385", "http://127.0.0.1:8265", pgid=42,
                            created_actors=["a"])
    state.save(tmp_path)
    assert _head.read_head_state(tmp_path) == state
    (tmp_path / _head.HEAD_STATE_FILE).write_text("{not json")
    assert _head.read_head_state(tmp_path) is None
    _head.clear_head_state(tmp_path)
    assert _head.read_head_state(tmp_path) is None


def test_port_probe() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert _head.port_is_open("127.0.0.1", port)
    assert not _head.port_is_open("127.0.0.1", port)


def test_start_head_refuses_a_busy_port_and_names_it(tmp_path: Path) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        settings = load_settings(storage_root=tmp_path, gcs_port=port)
        with pytest.raises(ClusterError, match="gcs_port"):
            _head.start_head(settings)


def test_split_address() -> None:
    assert _head.split_address("127.0.0.1:6385") == ("127.0.0.1", 6385)
    with pytest.raises(ClusterError):
        _head.split_address("nonsense")


def test_stop_head_only_acts_on_what_it_started(tmp_path: Path) -> None:
    attached = _head.HeadState(False, "10.0.0.1:6385", None, pgid=os.getpgid(0))
    assert _head.stop_head(attached) == 0  # never signals a group it did not start


def test_stop_head_terms_then_kills_its_group_and_counts_zombies_as_gone(tmp_path: Path) -> None:
    """A group like a head's: one process leaves on SIGTERM, one ignores it (as the raylet
    did); both are gone when ``stop_head`` returns, without waiting for anyone to reap them."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    code = ("import signal, subprocess, sys, time;"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")
    leader = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 10
    while len(_head._group_members(leader.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = _head._group_members(leader.pid)
    assert len(members) == 2
    state = _head.HeadState(True, "127.0.0.1:1", None, pgid=leader.pid)
    assert _head.stop_head(state, timeout_s=0.5) == 2
    # the leader ignored SIGTERM and was killed; nobody has reaped it yet: a zombie, and gone
    assert psutil.Process(leader.pid).status() == psutil.STATUS_ZOMBIE
    assert _head._wait_gone(members, timeout_s=0) == []
    assert leader.wait(timeout=5) == -signal.SIGKILL


def test_fake_cluster_config_points_provider_at_our_gcs(tmp_path: Path) -> None:
    settings = load_settings(storage_root=tmp_path, gcs_port=6411)
    args, env = _head.fake_cluster_config(settings, REPO / "cluster" / "local.yaml")
    assert env == {"RAY_FAKE_CLUSTER": "1"}
    rendered = Path(args[args.index("--autoscaling-config") + 1])
    config = yaml.safe_load(rendered.read_text())
    assert config["provider"]["gcs_address"] == "127.0.0.1:6411"
    assert args[args.index("--num-cpus") + 1] == "1"
