"""Serve's HAProxy mode on loopback: the wrapper's rewrite and the head's environment (no Ray)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from raymlops._haproxy import HAPROXY_ENV, haproxy_env, real_haproxy_binary, write_wrapper
from raymlops.config import load_settings

# The listeners as Ray 2.60's template renders them (haproxy_templates.py), plus other spellings
CONFIG = """global
    stats socket /tmp/x/admin.sock mode 666 level admin expose-fd listeners
frontend prometheus
    bind :9101
frontend http_frontend
    bind 127.0.0.1:8000
backend x
    server r1 127.0.0.1:30000 check
listen stats
  bind *:8404
frontend a
    bind 0.0.0.0:1
frontend b
    bind :::2
frontend c
    bind [::]:3
"""


def test_wrapper_moves_every_wildcard_bind_to_loopback_and_runs_haproxy_with_same_args(
        tmp_path: Path) -> None:
    fake = tmp_path / "haproxy"
    fake.write_text('#!/bin/sh\necho "ARGS $*"\n')
    fake.chmod(0o755)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(CONFIG)
    wrapper = write_wrapper(tmp_path / "bin", binary=str(fake))
    out = subprocess.run([str(wrapper), "-db", "-f", str(cfg), "-dR", "-sf", "123"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"ARGS -db -f {cfg} -dR -sf 123"
    binds = [line.split()[1] for line in cfg.read_text().splitlines()
             if line.strip().startswith("bind")]
    assert binds == ["127.0.0.1:9101", "127.0.0.1:8000", "127.0.0.1:8404", "127.0.0.1:1",
                     "127.0.0.1:2", "127.0.0.1:3"]
    # everything but the binds is untouched
    assert [x for x in cfg.read_text().splitlines() if "bind" not in x] == \
        [x for x in CONFIG.splitlines() if "bind" not in x]


def test_head_env_only_when_on_and_never_unwrapped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(HAPROXY_ENV, raising=False)
    monkeypatch.delenv("RAYMLOPS_SERVE_HAPROXY", raising=False)
    assert haproxy_env(load_settings(storage_root=tmp_path / "a", serve_haproxy=False)) == {}
    settings = load_settings(storage_root=tmp_path / "b")  # on by default
    env = haproxy_env(settings)
    assert env[HAPROXY_ENV] == "1"
    wrapper = Path(env["RAY_SERVE_HAPROXY_BINARY_PATH"])
    assert wrapper.parent == settings.state_dir and wrapper.stat().st_mode & 0o111
    assert f"exec {real_haproxy_binary()} " in wrapper.read_text()
    ports = {env[k] for k in ("RAY_SERVE_HAPROXY_METRICS_PORT", "RAY_SERVE_HAPROXY_STATS_PORT",
                              "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT")}
    assert len(ports) == 3 and not ports & {"9101", "8404", "8500"}
    assert float(env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]) < 30
    # Serve's own switch in the environment gets the wrapper too
    monkeypatch.setenv(HAPROXY_ENV, "1")
    assert "RAY_SERVE_HAPROXY_BINARY_PATH" in haproxy_env(
        load_settings(storage_root=tmp_path / "c", serve_haproxy=False))


def test_setting_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAYMLOPS_SERVE_HAPROXY", "0")  # opt out of the default
    assert load_settings(storage_root=tmp_path).serve_haproxy is False
    monkeypatch.setenv("RAYMLOPS_SERVE_HAPROXY", "1")
    assert load_settings(storage_root=tmp_path).serve_haproxy is True


def test_real_binary_is_serves_choice_without_importing_serve(tmp_path: Path, monkeypatch) -> None:
    """`up` needs the path before starting the head: asking without ray.serve saves ~1.2 s."""
    import sys

    from raymlops._haproxy import _serve_resolved_binary

    monkeypatch.delenv("RAY_SERVE_HAPROXY_BINARY_PATH", raising=False)
    serves_choice = _serve_resolved_binary()
    wrapper = write_wrapper(tmp_path, binary="/bin/true")
    monkeypatch.setenv("RAY_SERVE_HAPROXY_BINARY_PATH", str(wrapper))  # never the wrapper
    assert real_haproxy_binary() == serves_choice != str(wrapper)
    assert os.environ["RAY_SERVE_HAPROXY_BINARY_PATH"] == str(wrapper)  # left as it was
    code = ("import sys; from raymlops._haproxy import real_haproxy_binary as f; f();"
            "print('ray.serve' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
