"""Historical retrieval on Ray Data: DataFrames, Datasets and files, broadcast and shuffled."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raymlops.exceptions import ConflictError, ValidationError
from raymlops.features.client import FeatureStoreClient
from raymlops.features.definitions import FeatureRepo
from raymlops.features.retrieval_ray import join_frame

pytestmark = pytest.mark.timeout(240)
T0 = pd.Timestamp("2013-01-01T00:00:00Z")


@pytest.fixture(scope="module")
def service(platform) -> tuple[FeatureStoreClient, str]:
    """Two views on two entities (one with a TTL and created times), 30 days of hourly rows."""
    fs = FeatureStoreClient.connect(platform.settings)
    s = uuid.uuid4().hex[:6]
    fs.apply(FeatureRepo.model_validate({
        "entities": [{"name": "origin", "join_keys": {"origin": "string"}},
                     {"name": f"plane_{s}", "join_keys": {"tailnum": "string"}}],
        "feature_views": [
            {"name": f"wx_{s}", "entity": "origin", "event_timestamp": "time_hour",
             "created_timestamp": "created", "ttl_seconds": 3 * 3600,
             "features": [{"name": "temp", "dtype": "float64"}, {"name": "gusts", "dtype": "int64"}]},
            {"name": f"pl_{s}", "entity": f"plane_{s}", "event_timestamp": "since",
             "features": [{"name": "seats", "dtype": "int64"}]},
        ],
        "feature_services": [{"name": f"svc_{s}", "features": [f"wx_{s}", f"pl_{s}"]}],
    }))
    rng = np.random.default_rng(0)
    hours = pd.date_range(T0, periods=30 * 24, freq="h")
    wx = pd.DataFrame({
        "origin": np.repeat(["EWR", "JFK", "LGA"], len(hours)),
        "time_hour": np.tile(hours, 3),
        "temp": rng.normal(40, 10, 3 * len(hours)),
        "gusts": rng.integers(0, 60, 3 * len(hours)),
    }).sample(frac=0.9, random_state=1)  # gaps, so the TTL matters
    wx["created"] = wx["time_hour"] + pd.Timedelta(minutes=5)
    fs.ingest(f"wx_{s}", wx)
    fs.ingest(f"pl_{s}", pd.DataFrame({
        "tailnum": [f"N{i}" for i in range(50)], "since": T0 - pd.Timedelta(days=1),
        "seats": rng.integers(50, 300, 50)}))
    return fs, f"svc_{s}"


def _entities(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "flight": np.arange(n),
        "origin": rng.choice(["EWR", "JFK", "LGA", "SFO"], n),
        "tailnum": rng.choice([f"N{i}" for i in range(60)], n),
        "event_timestamp": T0 + pd.to_timedelta(rng.integers(-600, 31 * 24 * 60, n), unit="min"),
    })


def _as_arrow_reads_it(df: pd.DataFrame) -> pd.DataFrame:
    """Ray Datasets hand back Arrow-backed columns (``<NA>`` for a missing float): compare
    values as a Parquet reader sees them."""
    return pa.Table.from_pandas(df, preserve_index=False).to_pandas(ignore_metadata=True)


def test_every_engine_and_both_join_ways_give_the_local_rows(service) -> None:
    fs, svc = service
    entity_df = _entities(5000, seed=1)
    entity_df.index = np.random.default_rng(2).permutation(10_000)[:5000]  # a user's own index
    local = fs.get_historical_features(svc, entity_df, engine="local")
    assert local[[c for c in local.columns if "__" in c]].notna().any().all()
    for broadcast_max_bytes in (2**30, 0):  # broadcast map; hash shuffle
        ray_df = fs.get_historical_features(svc, entity_df, engine="ray",
                                            broadcast_max_bytes=broadcast_max_bytes)
        pd.testing.assert_frame_equal(local, ray_df)
    features = fs.historical_features(svc)
    blocks = join_frame(features, entity_df, "event_timestamp", rows_per_block=700)  # 8 blocks
    pd.testing.assert_frame_equal(local, blocks)


def test_a_dataset_in_gets_a_lazy_dataset_out(service) -> None:
    import ray.data

    fs, svc = service
    entity_df = _entities(3000, seed=3)
    ds = ray.data.from_pandas([entity_df.iloc[:1500], entity_df.iloc[1500:]])
    joined = fs.get_historical_features(svc, ds)
    assert isinstance(joined, ray.data.Dataset)
    got = joined.to_pandas().sort_values("flight").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        _as_arrow_reads_it(fs.get_historical_features(svc, entity_df, engine="local")),
        _as_arrow_reads_it(got))
    with pytest.raises(ValidationError, match="engine"):
        fs.get_historical_features(svc, ds, engine="local")
    with pytest.raises(ValidationError, match="event_timestamp"):
        fs.get_historical_features(svc, ds.drop_columns(["event_timestamp"]))


def test_retrieval_to_files_streams_keeps_order_and_publishes_whole(service, tmp_path) -> None:
    fs, svc = service
    entity_df = _entities(12_000, seed=4)
    src = tmp_path / "entities"
    src.mkdir()
    for i in range(4):  # four files, out of step with the reader's blocks
        pq.write_table(pa.Table.from_pandas(
            entity_df.iloc[i * 3000:(i + 1) * 3000], preserve_index=False),
            src / f"part-{i}.parquet", row_group_size=1000)
    out = tmp_path / "train"
    result = fs.write_historical_features(svc, src, out)
    assert result.rows == 12_000 and result.service == svc and result.files >= 1
    written = pq.read_table(out).to_pandas()
    expected = fs.get_historical_features(svc, entity_df, engine="local")
    pd.testing.assert_frame_equal(expected, written, check_dtype=False)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == 12_000 and manifest["view_versions"] == result.view_versions

    with pytest.raises(ConflictError):
        fs.write_historical_features(svc, src, out)
    again = fs.write_historical_features(svc, src, out, overwrite=True,
                                         broadcast_max_bytes=0)  # the shuffle way, same rows
    assert again.rows == 12_000
    pd.testing.assert_frame_equal(expected, pq.read_table(out).to_pandas(), check_dtype=False)

    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(pa.Table.from_pandas(entity_df.drop(columns=["origin"])),
                   bad / "x.parquet")
    with pytest.raises(ValidationError, match="origin"):
        fs.write_historical_features(svc, bad, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]
