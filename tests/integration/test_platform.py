"""raymlops.init on a running cluster: actors get-or-created once, restarted, reported."""

from __future__ import annotations

import pytest

from raymlops import status
from raymlops.cluster import ensure_platform_actors, init
from raymlops.config import load_settings
from raymlops.platform import PLATFORM_INFO_ACTOR, platform_actor_specs

pytestmark = pytest.mark.timeout(120)


def test_init_creates_every_platform_actor_as_named_detached(platform, ray_cluster) -> None:
    ray = ray_cluster
    names = [s.name for s in platform_actor_specs() if not s.on_demand]  # on-demand: made when first used
    assert set(platform.actors) == set(names)
    from ray.util.state import list_actors  # noqa: F401  (state API not needed: ask by name)

    for name in names:
        handle = ray.get_actor(name, namespace="raymlops")
        assert ray.get(handle.ping.remote()) == "ok"


def test_init_twice_creates_nothing_new(platform) -> None:
    again = init(platform.settings)
    assert again.created_actors == []
    assert again.started_head is False
    for name, handle in again.actors.items():
        assert handle._actor_id == platform.actors[name]._actor_id


def test_concurrent_get_or_create_yields_one_actor(platform, ray_cluster) -> None:
    """Two drivers racing on `up` must end with one actor per name (get_if_exists)."""
    ray = ray_cluster

    @ray.remote(num_cpus=0.1)
    def ensure(settings_dict):
        from raymlops.cluster import ensure_platform_actors
        from raymlops.config import load_settings

        handles, _ = ensure_platform_actors(load_settings(**settings_dict))
        return {n: h._actor_id.hex() for n, h in handles.items()}

    dump = platform.settings.model_dump(mode="json")
    a, b = ray.get([ensure.remote(dump), ensure.remote(dump)])
    assert a == b
    assert a[PLATFORM_INFO_ACTOR] == platform.actors[PLATFORM_INFO_ACTOR]._actor_id.hex()


def test_killed_platform_actor_comes_back_with_same_settings(platform, ray_cluster) -> None:
    ray = ray_cluster
    handle = ray.get_actor(PLATFORM_INFO_ACTOR, namespace="raymlops")
    before = ray.get(handle.settings.remote())
    ray.kill(handle, no_restart=False)
    # max_restarts=-1 and max_task_retries=-1: the call is retried on the restarted actor.
    after = ray.get(handle.settings.remote(), timeout=60)
    assert after == before
    assert after["storage_root"] == str(platform.settings.storage_root)


def test_attaching_driver_adopts_the_platforms_settings(platform, tmp_path) -> None:
    """A job whose own env names another root still uses the platform's (one truth)."""
    other = load_settings(storage_root=tmp_path / "elsewhere")
    attached = init(other)
    assert attached.settings.storage_root == platform.settings.storage_root
    assert attached.settings.tracking_uri == platform.settings.tracking_uri


def test_status_reports_cluster_resources_actors_and_storage(platform) -> None:
    report = status(platform.settings)
    assert report["running"] is True
    for key in ("ray_address", "dashboard_url", "serve_http", "storage_root", "tracking_uri", "actors"):
        assert key in report
    assert report["resources"]["GPU"]["total"] == 2.0  # logical GPUs are shown
    assert report["resources"]["CPU"]["total"] == 4.0
    states = {a["name"]: a["state"] for a in report["actors"]}
    assert {k: v for k, v in states.items() if k != "raymlops-ct"} == {
        s.name: "ALIVE" for s in platform_actor_specs() if not s.on_demand}
    assert states["raymlops-ct"] in ("NOT STARTED", "ALIVE")  # created by the first `ct start`
    assert report["storage_root"] == str(platform.settings.storage_root)
    assert report["serve_http"] is None and report["serve_applications"] == []


def test_status_section_failure_is_contained(platform, monkeypatch) -> None:
    from raymlops import _status

    def broken(settings):
        raise RuntimeError("boom")

    monkeypatch.setitem(_status._SECTIONS, "broken", broken)
    report = status(platform.settings)
    assert report["broken"] == {"error": "RuntimeError: boom"}
    assert report["running"] is True


def test_gpu_tasks_are_scheduled_on_logical_gpus(ray_cluster) -> None:
    ray = ray_cluster

    @ray.remote(num_gpus=0.5, num_cpus=0.1)
    def which_gpu():
        return ray.get_gpu_ids()

    ids = ray.get([which_gpu.remote() for _ in range(4)])
    assert all(len(i) == 1 for i in ids)
    assert {str(i[0]) for i in ids} <= {"0", "1"}


def test_ensure_is_idempotent_directly(platform) -> None:
    handles, created = ensure_platform_actors(platform.settings)
    assert created == [] and set(handles) == set(platform.actors)
