"""One contract suite for every online-store backend: the default log backend and Redis."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from raymlops.features.online import LogBackend, RedisBackend
from tests.conftest import require_service


@pytest.fixture(params=["log", "redis"])
def backend(request, tmp_path: Path):
    if request.param == "log":
        yield LogBackend(tmp_path / "online")
        return
    require_service(6379, "Redis")
    store = RedisBackend(prefix=f"raymlops-test-{uuid.uuid4().hex[:8]}")
    yield store
    for key in store.client.scan_iter(f"{store.prefix}:*"):
        store.client.delete(key)


def test_write_then_read(backend) -> None:
    assert backend.write("weather", [(("EWR",), (10, 10, {"temp": 1.5})), (("JFK",), (10, 10, {"temp": 2.0}))]) == 2
    assert backend.read("weather", [("JFK",), ("EWR",), ("LGA",)]) == [
        (10, 10, {"temp": 2.0}), (10, 10, {"temp": 1.5}), None]
    assert backend.count("weather") == 2


def test_older_write_never_overwrites(backend) -> None:
    backend.write("w", [(("EWR",), (100, 100, {"temp": 5.0}))])
    assert backend.write("w", [(("EWR",), (50, 200, {"temp": -1.0}))]) == 0  # late-arriving, older
    assert backend.read("w", [("EWR",)]) == [(100, 100, {"temp": 5.0})]
    assert backend.write("w", [(("EWR",), (100, 150, {"temp": 6.0}))]) == 1  # same event, newer created
    assert backend.write("w", [(("EWR",), (100, 120, {"temp": 7.0}))]) == 0  # same event, older created
    assert backend.read("w", [("EWR",)]) == [(100, 150, {"temp": 6.0})]


def test_scan_returns_every_row(backend) -> None:
    backend.write("s", [(("EWR", 1), (5, 5, {"x": 1})), (("JFK", 2), (6, 6, {"x": 2}))])
    assert backend.scan("s") == {("EWR", 1): (5, 5, {"x": 1}), ("JFK", 2): (6, 6, {"x": 2})}
    assert backend.scan("empty") == {}


def test_views_and_compound_keys_are_separate(backend) -> None:
    backend.write("a", [(("EWR", 3), (1, 1, {"x": 1}))])
    backend.write("b", [(("EWR", 3), (1, 1, {"x": 2}))])
    assert backend.read("a", [("EWR", 3)])[0][2] == {"x": 1}
    assert backend.read("b", [("EWR", 3), ("EWR", 4)]) == [(1, 1, {"x": 2}), None]
    backend.clear("a")
    assert backend.read("a", [("EWR", 3)]) == [None] and backend.count("b") == 1


def test_log_backend_recovers_every_acknowledged_write(tmp_path: Path) -> None:
    store = LogBackend(tmp_path / "o", compact_every=7)
    for i in range(20):  # crosses two compactions
        store.write("w", [((f"k{i % 5}",), (i, i, {"v": i}))])
    store.clear("gone")
    del store  # no close: as if the process were killed
    with open(tmp_path / "o" / "online.log", "a") as log:
        log.write('{"view": "w", "rows": [[["k0"], 999')  # torn, unacknowledged tail
    again = LogBackend(tmp_path / "o")
    assert again.read("w", [(f"k{i}",) for i in range(5)]) == [
        (15 + i, 15 + i, {"v": 15 + i}) for i in range(5)]
    again.write("w", [(("k9",), (1, 1, {"v": 1}))])  # still writable after recovery
    assert LogBackend(tmp_path / "o").read("w", [("k9",)]) == [(1, 1, {"v": 1})]
