"""The Serve controller killed under load: requests keep flowing through the proxy to the
replicas (the controller is only the control plane), the controller comes back (Ray restarts
it), and not one request fails. Counts, not timings."""

from __future__ import annotations

import time

import pytest

from tests.integration.serving_helpers import Load, register_classifier, serve_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]


def test_serve_controller_killed_under_load_fails_no_request(platform) -> None:
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    from raymlops import serving

    name = "serve-controller-kill"
    settings = serve_settings(platform)
    register_classifier(settings, name)
    serving.deploy(name, settings=settings, min_replicas=1, max_replicas=1, log_predictions=False)
    try:
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        old_id = controller._actor_id.hex()
        with Load(f"{settings.serve_url}/models/{name}/invocations", threads=2) as load:
            load.wait_for(lambda r: len(r) >= 20)
            ray.kill(controller, no_restart=False)
            killed_at = load.count()
            deadline = time.monotonic() + 120
            new_id = None
            while time.monotonic() < deadline:
                try:
                    handle = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
                    ray.get(handle.check_alive.remote(), timeout=10)
                    new_id = handle._actor_id.hex()
                    break
                except Exception:  # noqa: BLE001 - restarting
                    time.sleep(0.5)
            assert new_id is not None, "the Serve controller never came back"
            load.wait_for(lambda r: len(r) >= killed_at + 40)
        summary = load.summary()
        assert all(key.startswith("200/") for key in summary), summary
        assert load.count() >= killed_at + 40
        deadline, replicas = time.monotonic() + 120, {}
        while time.monotonic() < deadline:  # the new controller re-adopts the live replica
            (entry,) = serving.status(name, settings=settings)
            replicas = entry["replicas"]
            if replicas == {"RUNNING": 1}:
                break
            time.sleep(0.5)
        assert replicas == {"RUNNING": 1}
        assert new_id == old_id  # same actor, restarted by Ray (max_restarts), not replaced
    finally:
        serving.undeploy(name, settings=settings)
