"""Batch prediction's warm pool without Ray: how many actors a job takes, and the idle timer
that ends an actor (the pool's life cycle on a cluster is in tests/integration)."""

from __future__ import annotations

import threading
import time

import pytest

from raymlops.serving.batch import choose_workers
from raymlops.serving.scorer import IdleTimer


@pytest.mark.parametrize("units,cluster,free,expected", [
    (1, 16.0, 16.0, 1),     # a small input gets one actor, not a pool it cannot use
    (3, 16.0, 16.0, 3),
    (100, 2.0, 2.0, 2),     # 2 CPUs: 2 actors of 0.5 (one share left for driver and platform)
    (100, 2.0, 0.6, 1),     # CPUs taken by other work: only what is free
    (100, 2.0, 0.0, 1),     # nothing free: still one
    (100, 64.0, 64.0, 64),  # never more than the cluster's CPUs
])
def test_workers_follow_the_input_size_and_the_free_cpus(units, cluster, free, expected) -> None:
    assert choose_workers(units, 0.5, cluster, free) == expected


def test_the_timer_fires_only_after_idle_time_without_work() -> None:
    fired = threading.Event()
    timer = IdleTimer(0.3, fired.set)
    with timer:  # busy: never idle, however long it takes
        time.sleep(0.5)
        assert timer.idle_for() == 0.0 and not timer.expired() and not fired.is_set()
    assert fired.wait(2.0)
    assert timer.expired()
    with timer:
        assert not timer.expired()  # work came in after it fired: the actor stays


def test_a_zero_timeout_never_expires() -> None:
    fired = threading.Event()
    timer = IdleTimer(0, fired.set)
    time.sleep(0.2)
    assert not timer.expired() and not fired.is_set()
