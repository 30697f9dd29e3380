"""Canary, shadow, promote and abort over real HTTP (one deploy for the module).

The tests run in order and share state: canary (share, sticky), abort, shadow, promote.
"""

from __future__ import annotations

import time

import httpx
import pytest

from raymlops.exceptions import ConflictError, ValidationError
from tests.integration.serving_helpers import register_classifier, serve_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

NAME = "serve-traffic"
PAYLOAD = {"inputs": {"temp": [30.0, 70.0], "hour": [2, 22]}}


@pytest.fixture(scope="module")
def app(platform):
    from raymlops import serving

    settings = serve_settings(platform)
    v1 = register_classifier(settings, NAME, seed=0)
    v2 = register_classifier(settings, NAME, seed=1, C=0.01, aliases=())
    serving.deploy(NAME, settings=settings, min_replicas=1, max_replicas=1, log_flush_s=0.5)
    with httpx.Client(base_url=f"{settings.serve_url}/models/{NAME}", timeout=60) as http:
        yield {"settings": settings, "v1": v1, "v2": v2, "http": http}
    serving.undeploy(NAME, settings=settings)


def _model_pid() -> int:
    from ray import serve

    handle = serve.get_app_handle(f"model-{NAME}")
    return handle.stats.remote().result(timeout_s=30)["pid"]


def _versions(http: httpx.Client, n: int, headers: dict | None = None) -> list[int]:
    out = []
    for _ in range(n):
        r = http.post("/invocations", json=PAYLOAD, headers=headers or {})
        assert r.status_code == 200, r.text
        assert r.headers["x-model-version"] == str(r.json()["version"])
        out.append(r.json()["version"])
    return out


def test_canary_share_is_within_five_points_of_the_setting(app) -> None:
    from raymlops.serving import traffic

    pid = _model_pid()
    entry = traffic.canary(NAME, app["v2"], 30, settings=app["settings"])
    assert entry["canary"] == {"version": app["v2"], "percent": 30.0, "sticky_header": None}
    versions = _versions(app["http"], 2000)
    share = 100 * versions.count(app["v2"]) / len(versions)
    print(f"\ncanary share over 2000 requests: {share:.1f}% (setting 30%)")
    assert set(versions) == {app["v1"], app["v2"]}
    assert abs(share - 30) <= 5, share
    assert _model_pid() == pid  # adding a canary did not restart the primary


def test_sticky_canary_keeps_each_caller_on_one_side(app) -> None:
    from raymlops import serving
    from raymlops.serving import traffic

    traffic.canary(NAME, app["v2"], 50, sticky_header="x-user", settings=app["settings"])
    # deploying again (e.g. new replica bounds) keeps the running split
    entry = serving.deploy(NAME, settings=app["settings"], min_replicas=1, max_replicas=1,
                           log_flush_s=0.5)
    assert entry["canary"]["percent"] == 50.0 and entry["canary"]["sticky_header"] == "x-user"
    sides = {}
    for user in range(30):
        seen = set(_versions(app["http"], 4, {"x-user": f"user-{user}"}))
        assert len(seen) == 1, (user, seen)
        sides[user] = seen.pop()
    assert set(sides.values()) == {app["v1"], app["v2"]}


def test_bad_traffic_commands_are_typed_errors(app) -> None:
    from raymlops.serving import traffic

    with pytest.raises(ValidationError):
        traffic.canary(NAME, app["v2"], 120, settings=app["settings"])
    traffic.abort(NAME, settings=app["settings"])
    assert set(_versions(app["http"], 20)) == {app["v1"]}
    with pytest.raises(ConflictError):
        traffic.abort(NAME, settings=app["settings"])
    with pytest.raises(ConflictError):
        traffic.promote(NAME, settings=app["settings"])


def test_shadow_answers_are_logged_and_compared_never_returned(app) -> None:
    import pyarrow.dataset as ds
    from ray import serve

    from raymlops import serving
    from raymlops.serving import prediction_log_dir, traffic

    traffic.shadow(NAME, app["v2"], settings=app["settings"])
    ids = [f"shadow-{i}" for i in range(60)]
    for rid in ids:
        r = app["http"].post("/invocations", json=PAYLOAD, headers={"x-request-id": rid})
        assert r.status_code == 200 and r.json()["version"] == app["v1"]
        assert r.headers["x-model-route"] == "primary"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (entry,) = serving.status(NAME, settings=app["settings"])
        counts = entry["shadow_counts"]
        if counts["agreed"] + counts["disagreed"] >= len(ids):
            break
        time.sleep(0.2)
    assert entry["shadow"]["version"] == app["v2"] and counts["failed"] == 0, entry
    assert counts["agreed"] + counts["disagreed"] >= len(ids), counts
    serve.get_deployment_handle("Shadow", f"model-{NAME}").flush_log.remote().result(timeout_s=30)
    log = ds.dataset(prediction_log_dir(app["settings"].storage_root, NAME),
                     partitioning="hive").to_table().to_pandas()
    mine = log[log["_request_id"].isin(ids)]
    assert set(mine[mine["_version"] == app["v2"]]["_request_id"]) == set(ids)


def test_promote_moves_the_alias_and_removes_the_split(app) -> None:
    from raymlops.registry import RegistryClient
    from raymlops.serving import traffic

    entry = traffic.promote(NAME, settings=app["settings"])
    assert entry["shadow"] is None and entry["canary"] is None
    assert RegistryClient.connect(app["settings"]).resolve(NAME, "champion") == app["v2"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _versions(app["http"], 1) != [app["v2"]]:
        time.sleep(0.1)
    assert set(_versions(app["http"], 20)) == {app["v2"]}
