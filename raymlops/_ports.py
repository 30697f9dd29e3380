"""Ports for daemons that listen later: picked free now, and leased so no other pick takes them.

Why a lease: a port handed to a daemon is often bound minutes after the pick (Serve starts
HAProxy, whose metrics and stats ports are chosen when the head starts, only at the first
deployment). A second pick in that gap, by this process or another one on the machine (a
second head, a test's S3 store), finds the port bindable and takes it; the first daemon then
dies with EADDRINUSE. So every pick writes a lease file (one per port, under a lock) in a
folder that all processes of this user on this machine share, and no pick returns a leased
port until the lease is :data:`LEASE_TTL_S` old. A port that is actually bound is refused by
the bind check anyway, so a lease only has to outlive the gap.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from raymlops.exceptions import ClusterError

__all__ = ["LEASE_TTL_S", "free_port", "lease_ports", "port_bindable"]

# Ports handed to daemons that bind them later are drawn from here: above Ray's worker
# ports (10002-19999), below Serve's direct-ingress replicas (30000-31000) and Linux's
# default ephemeral range (32768-60999).
_LISTEN_PORTS = (20000, 30000)

LEASE_TTL_S = 6 * 3600.0


def port_bindable(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing uses now and no other pick holds, for a process that listens later.

    Never 6379 (Redis). Why not the kernel's choice (bind to port 0): that is an ephemeral
    port, the range every outgoing connection takes its source port from, so one of the
    head's own connections could take it before the daemon binds. A port below the ephemeral
    range can only be taken by another explicit bind, and :func:`lease_ports` keeps other
    picks off it.
    """
    low, high = _listen_port_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, high)
        if port != 6379 and port_bindable(host, port) and lease_ports([port]):
            return port
    raise ClusterError(f"no free port in {low}-{high - 1} on {host}", host=host)


def lease_ports(ports: Iterable[int]) -> bool:
    """Lease all of ``ports`` for :data:`LEASE_TTL_S`, or none when one is leased already.

    Best effort where the lease folder cannot be written (a read-only temp dir): the bind
    check still holds, only the gap goes unguarded.
    """
    wanted = [int(port) for port in ports]
    try:
        folder = _lease_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = time.time()
            if any(_leased(folder / str(port), now) for port in wanted):
                return False
            for port in wanted:
                (folder / str(port)).write_text(f"{os.getpid()}\n")
            return True
    except OSError:
        return True


def _leased(path: Path, now: float) -> bool:
    try:
        return now - path.stat().st_mtime < LEASE_TTL_S
    except FileNotFoundError:
        return False


def _lease_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"raymlops-port-leases-{os.getuid()}"


def _listen_port_range() -> tuple[int, int]:
    """:data:`_LISTEN_PORTS`, ending where this machine's ephemeral range starts if lower."""
    low, high = _LISTEN_PORTS
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return low, high
    if ephemeral_low - low >= 1000:
        return low, min(high, ephemeral_low)
    return low, high
