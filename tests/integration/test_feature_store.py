"""The feature store actor on the shared cluster: apply, ingest, materialize, push, read."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from raymlops.exceptions import FeatureViewNotFoundError, SchemaMismatchError, ValidationError
from raymlops.features.actor import FEATURES_ACTOR
from raymlops.features.client import FeatureStoreClient
from raymlops.features.definitions import FeatureRepo

pytestmark = pytest.mark.timeout(240)
UTC = dt.UTC
T0 = pd.Timestamp("2013-01-01T00:00:00Z")


def _repo(suffix: str, ttl_hours: float = 2.0) -> FeatureRepo:
    return FeatureRepo.model_validate({
        "entities": [{"name": "origin", "join_keys": {"origin": "string"}}],
        "feature_views": [{
            "name": f"weather_{suffix}", "entity": "origin", "event_timestamp": "time_hour",
            "created_timestamp": "created", "ttl_seconds": ttl_hours * 3600,
            "features": [{"name": "temp", "dtype": "float64"}, {"name": "visib", "dtype": "float64"}],
        }],
        "feature_services": [{"name": f"svc_{suffix}", "features": [f"weather_{suffix}"]}],
    })


def _rows(hours: int, origins=("EWR", "JFK", "LGA"), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for h in range(hours):
        ts = T0 + pd.Timedelta(hours=h)
        frames.append(pd.DataFrame({
            "origin": list(origins), "time_hour": ts, "created": ts + pd.Timedelta(minutes=5),
            "temp": rng.normal(40, 10, len(origins)), "visib": rng.uniform(0, 10, len(origins)),
        }))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def fs(platform) -> FeatureStoreClient:
    return FeatureStoreClient.connect(platform.settings)


def test_apply_ingest_materialize_and_read_online(fs) -> None:
    s = uuid.uuid4().hex[:6]
    changes = fs.apply(_repo(s))
    # The shared "origin" entity may already exist (other modules apply the flights repo).
    assert {c["action"] for c in changes if c["name"] != "origin"} == {"created"}
    rows = _rows(24)
    assert fs.ingest(f"weather_{s}", rows) == 72
    report = fs.materialize(end=dt.datetime(2013, 1, 2, tzinfo=UTC), views=[f"weather_{s}"])
    assert report[0]["online_changed"] == 3
    now = dt.datetime(2013, 1, 1, 23, 30, tzinfo=UTC)
    got = fs.get_online_features(f"svc_{s}", [{"origin": "JFK"}, {"origin": "SFO"}], now=now)
    last = rows[rows["origin"] == "JFK"].iloc[-1]
    assert got["rows"][0][f"weather_{s}__temp"] == pytest.approx(last["temp"])  # offline == online
    assert got["rows"][1][f"weather_{s}__temp"] is None and got["expired"] == [[], []]
    later = fs.get_online_features(f"svc_{s}", [{"origin": "JFK"}], now=now + dt.timedelta(hours=3))
    assert later["rows"][0][f"weather_{s}__temp"] is None  # TTL enforced on read
    assert later["expired"] == [[f"weather_{s}__temp", f"weather_{s}__visib"]]


def test_materialize_is_incremental(fs) -> None:
    s = uuid.uuid4().hex[:6]
    fs.apply(_repo(s))
    fs.ingest(f"weather_{s}", _rows(10))
    first = fs.materialize(end=dt.datetime(2013, 1, 1, 5, tzinfo=UTC), views=[f"weather_{s}"])[0]
    assert first["latest_rows"] == 3 and first["start"] is None
    second = fs.materialize(end=dt.datetime(2013, 1, 1, 10, tzinfo=UTC), views=[f"weather_{s}"])[0]
    assert second["start"].startswith("2013-01-01T05:00")  # resumed where the last one ended
    now = dt.datetime(2013, 1, 1, 9, 30, tzinfo=UTC)
    got = fs.get_online_features(f"svc_{s}", [{"origin": "LGA"}], now=now)["rows"][0]
    assert got[f"weather_{s}__temp"] == pytest.approx(_rows(10).iloc[-1]["temp"])


def test_push_newest_wins_and_bad_input(fs) -> None:
    s = uuid.uuid4().hex[:6]
    fs.apply(_repo(s, ttl_hours=1000))
    rows = _rows(1, origins=("EWR",))
    fs.push(f"weather_{s}", rows.assign(temp=1.0))
    older = rows.assign(time_hour=T0 - pd.Timedelta(hours=1), created=T0, temp=-5.0)
    assert fs.push(f"weather_{s}", older)["online_changed"] == 0
    got = fs.get_online_features(f"svc_{s}", [{"origin": "EWR"}], now=dt.datetime(2013, 1, 2, tzinfo=UTC))
    assert got["rows"][0][f"weather_{s}__temp"] == 1.0
    with pytest.raises(SchemaMismatchError, match="visib"):
        fs.push(f"weather_{s}", rows.drop(columns=["visib"]))
    with pytest.raises(ValidationError, match="join keys"):
        fs.get_online_features(f"svc_{s}", [{"airport": "EWR"}])
    with pytest.raises(FeatureViewNotFoundError):
        fs.ingest("no_such_view", rows)


def test_acknowledged_pushes_survive_actor_kills(fs, ray_cluster) -> None:
    ray = ray_cluster
    s = uuid.uuid4().hex[:6]
    fs.apply(_repo(s, ttl_hours=10_000))
    acked: dict[str, float] = {}
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 200:
            key = f"K{i}"
            row = pd.DataFrame({"origin": [key], "time_hour": [T0], "created": [T0],
                                "temp": [float(i)], "visib": [1.0]})
            try:
                fs.push(f"weather_{s}", row, to_offline=False)
            except Exception:  # noqa: BLE001 - the actor died under us: retry the same row
                time.sleep(0.1)
                continue
            acked[key] = float(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    kills = 0
    for _ in range(3):
        time.sleep(1.0)
        ray.kill(ray.get_actor(FEATURES_ACTOR, namespace="raymlops"), no_restart=False)
        kills += 1
    stop.set()
    thread.join(timeout=120)
    assert kills == 3 and len(acked) > 10
    got = fs.get_online_features(f"svc_{s}", [{"origin": k} for k in acked],
                                 now=dt.datetime(2013, 1, 2, tzinfo=UTC))["rows"]
    assert [r[f"weather_{s}__temp"] for r in got] == list(acked.values())


def test_historical_features_are_point_in_time(fs) -> None:
    s = uuid.uuid4().hex[:6]
    fs.apply(_repo(s))
    rows = _rows(6)
    fs.ingest(f"weather_{s}", rows)
    entity_df = pd.DataFrame({
        "origin": ["EWR", "JFK", "EWR"],
        "event_timestamp": [T0 + pd.Timedelta(minutes=90), T0 - pd.Timedelta(hours=1),
                            T0 + pd.Timedelta(hours=20)],
    })
    out = fs.get_historical_features(f"svc_{s}", entity_df)
    ewr = rows[rows["origin"] == "EWR"].reset_index(drop=True)
    assert out.loc[0, f"weather_{s}__temp"] == pytest.approx(ewr.loc[1, "temp"])  # 01:00, not 02:00
    assert pd.isna(out.loc[1, f"weather_{s}__temp"])  # before any history
    assert pd.isna(out.loc[2, f"weather_{s}__temp"])  # last row 05:00 is beyond the 2 h TTL
    rng = np.random.default_rng(3)
    many = pd.DataFrame({
        "origin": rng.choice(["EWR", "JFK", "LGA", "SFO"], 3000),
        "event_timestamp": T0 + pd.to_timedelta(rng.integers(-60, 600, 3000), unit="min"),
    })
    local = fs.get_historical_features(f"svc_{s}", many, engine="local")
    distributed = fs.get_historical_features(f"svc_{s}", many, engine="ray")
    pd.testing.assert_frame_equal(local, distributed)


def test_replica_cache_matches_actor_and_follows_pushes(fs, ray_cluster) -> None:
    from raymlops.features.cache import OnlineFeatureCache

    ray = ray_cluster
    s = uuid.uuid4().hex[:6]
    fs.apply(_repo(s, ttl_hours=2))
    fs.ingest(f"weather_{s}", _rows(5))
    fs.materialize(end=dt.datetime(2013, 1, 2, tzinfo=UTC), views=[f"weather_{s}"])
    cache = OnlineFeatureCache(fs, f"svc_{s}", poll_s=2).start()
    try:
        rows = [{"origin": o} for o in ("EWR", "JFK", "LGA", "SFO")]
        for now in (dt.datetime(2013, 1, 1, 5, tzinfo=UTC), dt.datetime(2013, 1, 1, 9, tzinfo=UTC)):
            assert cache.get(rows, now=now) == fs.get_online_features(f"svc_{s}", rows, now=now)
        newer = _rows(1, origins=("JFK",)).assign(time_hour=T0 + pd.Timedelta(hours=8),
                                                  created=T0 + pd.Timedelta(hours=8), temp=99.0)
        t0 = time.monotonic()
        fs.push(f"weather_{s}", newer)
        while cache.get([{"origin": "JFK"}], now=dt.datetime(2013, 1, 1, 8, 30, tzinfo=UTC))["rows"][0][
                f"weather_{s}__temp"] != 99.0:
            assert time.monotonic() - t0 < 2.0, "push did not reach the replica cache within 2 s"
            time.sleep(0.01)
        # A restarted actor (new epoch) makes the cache re-snapshot; it keeps answering.
        ray.kill(ray.get_actor(FEATURES_ACTOR, namespace="raymlops"), no_restart=False)
        fs.push(f"weather_{s}", newer.assign(time_hour=T0 + pd.Timedelta(hours=9),
                                             created=T0 + pd.Timedelta(hours=9), temp=100.0))
        deadline = time.monotonic() + 20
        while cache.get([{"origin": "JFK"}], now=dt.datetime(2013, 1, 1, 9, 30, tzinfo=UTC))["rows"][0][
                f"weather_{s}__temp"] != 100.0:
            assert time.monotonic() < deadline, "cache did not recover after the actor restarted"
            time.sleep(0.05)
    finally:
        cache.stop()


def test_redis_online_backend_behind_the_store(tmp_path, ray_cluster) -> None:
    """The store's logic on the Redis backend (the class itself, run in this process)."""
    from raymlops.config import load_settings
    from raymlops.features.actor import FeatureStore
    from tests.conftest import require_service

    require_service(6379, "Redis")
    prefix = f"raymlops-test-{uuid.uuid4().hex[:8]}"
    settings = load_settings(storage_root=tmp_path, online_store="redis", redis_prefix=prefix)
    store = FeatureStore(settings.model_dump(mode="json"))
    try:
        s = "r"
        store.apply(_repo(s).model_dump())
        import pyarrow as pa

        store.ingest(f"weather_{s}", pa.Table.from_pandas(_rows(4), preserve_index=False))
        store.materialize(end=dt.datetime(2013, 1, 2, tzinfo=UTC))
        now_us = int(dt.datetime(2013, 1, 1, 4, tzinfo=UTC).timestamp() * 1_000_000)
        got = store.get_online_features(f"svc_{s}", [{"origin": "LGA"}], now_us=now_us)
        assert got["rows"][0][f"weather_{s}__temp"] == pytest.approx(_rows(4).iloc[-1]["temp"])
        restarted = FeatureStore(settings.model_dump(mode="json"))  # state lives in Redis
        assert restarted.get_online_features(f"svc_{s}", [{"origin": "LGA"}], now_us=now_us) == got
    finally:
        for key in store.online.client.scan_iter(f"{prefix}:*"):
            store.online.client.delete(key)



def test_materialize_in_actor_and_with_ray_data_give_the_same_rows(ray_cluster, tmp_path) -> None:
    """The small-view shortcut (one pyarrow scan) and the Ray Data path agree, window by window."""
    from raymlops.features.actor import FeatureStore

    rows = _rows(30, origins=("EWR", "JFK", "LGA", "SFO"), seed=3)
    # Same event time twice for one key: the later created time must win on both paths.
    tie = rows.iloc[[0]].assign(created=rows.iloc[0]["created"] + pd.Timedelta(minutes=1), temp=99.0)
    table = pa.Table.from_pandas(pd.concat([rows, tie], ignore_index=True), preserve_index=False)
    stores = []
    for label, threshold in (("local", 1 << 40), ("ray", 0)):
        store = FeatureStore({"storage_root": str(tmp_path / label),
                              "materialize_local_below_bytes": threshold})
        store.apply(_repo("paths").model_dump(mode="json"))
        store.ingest("weather_paths", table)
        stores.append(store)
    view, entity, version = stores[0]._view("weather_paths")
    windows = ((None, dt.datetime(2013, 1, 1, 0, 30, tzinfo=UTC)),
               (None, dt.datetime(2013, 1, 1, 17, tzinfo=UTC)),
               (dt.datetime(2013, 1, 1, 3, tzinfo=UTC), dt.datetime(2013, 1, 2, 2, tzinfo=UTC)))
    for start, end in windows:
        local, distributed = (s._latest_offline_rows(view, entity, version, start, end).sort_by("origin")
                              for s in stores)
        assert local.to_pylist() == distributed.to_pylist() and local.num_rows == 4
        if start is None and end.hour == 0:
            assert local.filter(pc.equal(local["origin"], "EWR"))["temp"].to_pylist() == [99.0]
