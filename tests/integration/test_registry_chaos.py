"""Acknowledged registrations survive the registry actor being killed again and again."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from raymlops.registry import REGISTRY_ACTOR, RegistryClient

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

WRITERS, PER_WRITER, KILLS = 4, 15, 6


def test_kill_registry_while_four_writers_register(platform, ray_cluster) -> None:
    ray = ray_cluster
    client = RegistryClient.connect(platform.settings)
    rng = np.random.default_rng(7)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X["a"] > 0).astype(int)
    models = [LogisticRegression(C=0.1 * (i + 1)).fit(X, y) for i in range(WRITERS * PER_WRITER)]
    name = f"chaos-{uuid.uuid4().hex[:6]}"
    acked: dict[str, int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        for j in range(PER_WRITER):
            key = f"w{w}-{j}"
            for _attempt in range(20):  # a client retries with the same key until acknowledged
                try:
                    v = client.register(name, models[w * PER_WRITER + j], idempotency_key=key)
                    break
                except Exception as exc:  # noqa: BLE001 - actor died under us
                    if "ActorDied" not in type(exc).__name__ and "Unavailable" not in type(exc).__name__:
                        errors.append(exc)
                        return
                    time.sleep(0.2)
            with lock:
                acked[key] = v["version"]

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    # Kill on progress, not on a clock: a fast machine would otherwise finish the writes
    # between two timed kills. Each kill lands after a further share of acknowledgements.
    kills = 0
    thresholds = [int(WRITERS * PER_WRITER * f) for f in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8)][:KILLS]
    while any(t.is_alive() for t in threads) and kills < len(thresholds):
        with lock:
            done = len(acked)
        if done >= thresholds[kills]:
            ray.kill(ray.get_actor(REGISTRY_ACTOR, namespace="raymlops"), no_restart=False)
            kills += 1
        time.sleep(0.005)
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors
    assert kills >= 2, "the writers finished before the actor could be killed twice"
    assert len(acked) == WRITERS * PER_WRITER

    versions = client.list_versions(name)  # from the restarted actor, rebuilt from SQL
    numbers = [v["version"] for v in versions]
    assert numbers == list(range(1, WRITERS * PER_WRITER + 1))  # contiguous, no duplicates
    stored_keys = sorted(acked)
    assert sorted(acked.values()) == numbers  # every acknowledged version is there, once
    assert len(set(acked.values())) == len(stored_keys)
