"""Port picks for daemons that listen later: outside the ephemeral range, never a busy port,
and never a port another pick holds a lease on (no Ray needed)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from raymlops import _ports
from raymlops.exceptions import ClusterError


@pytest.fixture
def port_leases(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "leases"
    monkeypatch.setattr(_ports, "_lease_dir", lambda: folder)
    return folder


def test_free_port_stays_out_of_the_ephemeral_range_and_skips_busy_ports(
    monkeypatch, port_leases: Path
) -> None:
    """The head's daemons bind these ports seconds later: a port the kernel hands out as an
    outgoing connection's source port (the ephemeral range) could be taken by then."""
    import socket

    low, high = _ports._listen_port_range()
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert high <= ephemeral_low
    ports = [_ports.free_port() for _ in range(50)]
    assert all(low <= p < high and p != 6379 for p in ports)
    with socket.socket() as busy:  # a listener on one port of a 3-port range: the others win
        taken = next(p for p in range(low, high - 2)
                     if all(_ports.port_bindable("127.0.0.1", p + i) for i in range(3)))
        busy.bind(("127.0.0.1", taken))
        busy.listen()
        monkeypatch.setattr(_ports, "_listen_port_range", lambda: (taken, taken + 3))
        assert {_ports.free_port(), _ports.free_port()} == {taken + 1, taken + 2}


def test_a_picked_port_is_not_picked_again_before_it_is_bound(monkeypatch, port_leases: Path) -> None:
    """Serve binds HAProxy's ports minutes after the head picked them; a pick in between (a
    second head, a test's S3 store) must not take them, in this process or another."""
    import subprocess
    import sys

    low = next(p for p in range(_ports._LISTEN_PORTS[0], _ports._LISTEN_PORTS[1] - 1)
               if _ports.port_bindable("127.0.0.1", p) and _ports.port_bindable("127.0.0.1", p + 1))
    monkeypatch.setattr(_ports, "_listen_port_range", lambda: (low, low + 2))
    first = _ports.free_port()
    code = (
        "import sys, raymlops._ports as p\n"
        f"p._lease_dir = lambda: __import__('pathlib').Path({str(port_leases)!r})\n"
        f"sys.exit(0 if not p.lease_ports([{first}]) and p.lease_ports([{2 * low + 1 - first}]) else 1)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    with pytest.raises(ClusterError, match="no free port"):
        _ports.free_port()  # both leased now, though both are still bindable


def test_leases_expire_and_take_all_or_none(monkeypatch, port_leases: Path) -> None:
    assert _ports.lease_ports([20001, 20002])
    assert not _ports.lease_ports([20002, 20003])  # one held: none taken
    assert _ports.lease_ports([20003])
    old = time.time() - _ports.LEASE_TTL_S - 1
    os.utime(port_leases / "20001", (old, old))
    assert _ports.lease_ports([20001])
