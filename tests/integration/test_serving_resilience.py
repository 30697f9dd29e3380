"""Autoscaling up under load and back down; a replica killed under load is replaced.

Thresholds are counts, not timings: how many replicas, how many non-2xx answers.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.serving_helpers import (
    Load,
    register_classifier,
    serve_settings,
    wait_for_replicas,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]


def _running_replicas(name: str, settings) -> int:
    from raymlops import serving

    (entry,) = serving.status(name, settings=settings)
    return entry["replicas"].get("RUNNING", 0)


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_autoscaling_up_under_load_and_back_down(platform) -> None:
    from raymlops import serving

    name = "serve-scale"
    settings = serve_settings(platform)
    version = register_classifier(settings, name)
    serving.deploy(name, settings=settings, min_replicas=1, max_replicas=2,
                   target_ongoing_requests=0.25, upscale_delay_s=1, downscale_delay_s=3,
                   max_batch_size=1, log_predictions=False)
    try:
        assert _running_replicas(name, settings) == 1
        with Load(f"{settings.serve_url}/models/{name}/invocations", threads=8) as load:
            _wait(lambda: _running_replicas(name, settings) == 2, 120, "a second replica")
            # raymlops_serve_replicas follows: two replicas hold the version (load keeps them)
            up = wait_for_replicas(name, {version: 2})
        summary = load.summary()
        assert all(key.startswith("200/") for key in summary), summary
        _wait(lambda: _running_replicas(name, settings) == 1, 120, "scale back to one")
        down = wait_for_replicas(name, {version: 1})  # the stopped replica's series is gone
        print(f"\nreplicas per version: scaling up {up}, scaling down {down}")
    finally:
        serving.undeploy(name, settings=settings)


def test_a_replica_killed_under_load_is_replaced(platform) -> None:
    import ray
    from ray import serve

    from raymlops import serving

    name = "serve-kill"
    settings = serve_settings(platform)
    version = register_classifier(settings, name)
    serving.deploy(name, settings=settings, min_replicas=2, max_replicas=2,
                   log_predictions=False)
    try:
        handle = serve.get_app_handle(f"model-{name}")
        replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                    if a["name"].startswith(f"SERVE_REPLICA::model-{name}#Ingress#")]
        assert len(replicas) == 2, replicas
        with Load(f"{settings.serve_url}/models/{name}/invocations", threads=4) as load:
            _wait(lambda: load.count() >= 200, 120, "load before the kill")
            victim = ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"])
            ray.kill(victim, no_restart=True)
            killed_at = load.count()
            _wait(lambda: load.count() >= killed_at + 1500, 300, "load after the kill")
        with load._lock:
            statuses = [s for _, s, _ in load.results]
        ok = sum(1 for s in statuses if 200 <= s < 300) / len(statuses)
        print(f"\nreplica kill: {len(statuses)} requests, {100 * ok:.2f}% 2xx, "
              f"non-2xx {sorted(set(statuses) - {200})}")
        assert ok >= 0.995, load.summary()
        def replica_names() -> set[str]:
            return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                    if a["name"].startswith(f"SERVE_REPLICA::model-{name}#Ingress#")}

        # Serve's status can still count the killed replica as RUNNING for a moment while the
        # actor list has already dropped it: wait for both views to show the replacement.
        _wait(lambda: _running_replicas(name, settings) == 2 and len(replica_names()) == 2
              and replicas[0]["name"] not in replica_names(), 120, "the replacement replica")
        pids = {handle.stats.remote().result(timeout_s=30)["pid"] for _ in range(20)}
        assert len(pids) == 2
        # the killed replica never shut down: its series ages out, the replacement's counts
        wait_for_replicas(name, {version: 2})
    finally:
        serving.undeploy(name, settings=settings)
