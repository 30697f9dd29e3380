"""The Ray point-in-time join gives exactly the in-process result, on the shared cluster.

Randomized data, ~20k entity rows, three join keys (int, string, int32), coarse times so
that ties and TTL edges occur, late-arriving and duplicated feature rows, null keys/times.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from raymlops.exceptions import ValidationError
from raymlops.features.pit import point_in_time_join
from raymlops.features.pit_ray import point_in_time_join_ray

T0 = pd.Timestamp("2024-03-01", tz="UTC")
KEYS = ["user", "region", "shard"]
FEATURES = ["f_float", "f_int", "f_str", "f_bool"]


def make_data(seed: int = 0, n_entity: int = 20_000, n_features: int = 6_000):
    rng = np.random.default_rng(seed)

    def keys(n: int, regions: list[str]) -> dict:
        return {
            "user": rng.integers(0, 150, n),
            "region": pd.array(rng.choice(regions, n), dtype="str"),
            "shard": rng.integers(0, 3, n).astype("int32"),
        }

    minutes = rng.integers(0, 2_000, n_features)
    features = pd.DataFrame(
        {
            **keys(n_features, ["eu", "us"]),
            "event_timestamp": (T0 + pd.to_timedelta(minutes, unit="min")).as_unit("ns"),
            "f_float": rng.normal(size=n_features),
            "f_int": rng.integers(0, 1_000, n_features),
            "f_str": pd.array([f"v{i}" for i in range(n_features)], dtype="str"),
            "f_bool": rng.random(n_features) < 0.5,
        }
    )
    features["created"] = features["event_timestamp"] + pd.to_timedelta(
        rng.choice([0, 0, 1, 90], n_features), unit="min"
    )
    dup = features.sample(n=min(300, len(features)), random_state=seed).assign(f_int=-1)  # ties
    features = pd.concat([features, dup], ignore_index=True)
    features = features.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    features.loc[rng.random(len(features)) < 0.01, "user"] = np.nan  # null keys -> float ids

    entity = pd.DataFrame(
        {
            **keys(n_entity, ["eu", "us", "ap"]),  # "ap" has no history
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 2_100, n_entity), unit="min"),
            "label": rng.integers(0, 2, n_entity),
        }
    )
    entity.loc[rng.random(n_entity) < 0.01, "event_timestamp"] = pd.NaT
    return entity, features


def blocks(df: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    bounds = np.linspace(0, len(df), n + 1).astype(int)
    return [df.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def normalized(df: pd.DataFrame) -> pd.DataFrame:
    """Dtype-neutral view: what may change through Arrow (nullable ints, str storage) does
    not count; values, nulls, column order and row order do."""
    out = {}
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            out[col] = pd.to_datetime(s, utc=True).dt.as_unit("ns")
        elif pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            out[col] = s.to_numpy(dtype="float64", na_value=np.nan)
        else:
            out[col] = s.astype(object).where(s.notna(), None)
    return pd.DataFrame(out).reset_index(drop=True)


JOIN = dict(
    join_keys=KEYS,
    feature_columns=FEATURES,
    created_timestamp="created",
    ttl=dt.timedelta(hours=12),
    prefix="fv",
)


@pytest.mark.parametrize("features_as", ["pandas", "dataset"])
@pytest.mark.parametrize("num_partitions", [None, 1, 7])
def test_ray_join_equals_in_process(ray_cluster, features_as: str, num_partitions) -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    preserve = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True  # "the later row wins" needs a row order
    try:
        entity, features = make_data()
        want = point_in_time_join(entity, features, **JOIN)
        assert want["fv__f_int"].notna().mean() > 0.4 and want["fv__f_int"].isna().any()

        entity_ds = ray.data.from_pandas(blocks(entity, 8))
        feats = features if features_as == "pandas" else ray.data.from_pandas(blocks(features, 3))
        got_ds = point_in_time_join_ray(entity_ds, feats, **JOIN, num_partitions=num_partitions)
        got = got_ds.to_pandas()
    finally:
        ctx.execution_options.preserve_order = preserve

    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(normalized(got), normalized(want), check_exact=True)


def test_ray_join_without_created_or_ttl(ray_cluster) -> None:
    import ray.data

    entity, features = make_data(seed=1, n_entity=5_000, n_features=2_000)
    kwargs = dict(join_keys=KEYS, feature_columns=["f_float", "f_str"])
    want = point_in_time_join(entity, features, **kwargs)
    got = point_in_time_join_ray(
        ray.data.from_pandas(blocks(entity, 4)), features, **kwargs, num_partitions=5
    ).to_pandas()
    pd.testing.assert_frame_equal(normalized(got), normalized(want), check_exact=True)


def test_ray_join_rejects_bad_arguments(ray_cluster) -> None:
    import ray.data

    entity, features = make_data(seed=2, n_entity=100, n_features=50)
    naive = entity.assign(event_timestamp=entity["event_timestamp"].dt.tz_localize(None))
    with pytest.raises(ValidationError, match="naive"):
        point_in_time_join_ray(ray.data.from_pandas(naive), features, **JOIN).to_pandas()
    with pytest.raises(ValidationError, match="no_such_feature"):
        point_in_time_join_ray(
            ray.data.from_pandas(entity),
            features,
            join_keys=KEYS,
            feature_columns=["no_such_feature"],
        ).to_pandas()
    with pytest.raises(ValidationError, match="num_partitions"):
        point_in_time_join_ray(ray.data.from_pandas(entity), features, **JOIN, num_partitions=0)
