"""Point-in-time joins against a brute-force reference, on randomized and hand-made data.

The reference is the definition written as plain loops: for each entity row, the feature
rows with equal keys, ``ts <= entity ts`` and within the TTL, maximised by
``(ts, created, position)``. The randomized data is built so that every tricky case occurs
(ties, rows exactly on the TTL edge, no history, late and out-of-order rows, ...), and the
test asserts that they did occur, so a change to the generator cannot quietly stop testing
them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from raymlops.exceptions import SchemaMismatchError, ValidationError
from raymlops.features import pit
from raymlops.features.pit import output_columns, point_in_time_join
from raymlops.features.pit_ray import _bucket, _plan

T0 = pd.Timestamp("2024-03-01", tz="UTC")
SEC = pd.Timedelta(seconds=1)
US = pd.Timedelta(microseconds=1)
HOUR = pd.Timedelta(hours=1)


# --------------------------------------------------------------------------- reference


def reference_join(
    entity_df: pd.DataFrame,
    features: pd.DataFrame,
    *,
    join_keys,
    feature_columns,
    entity_timestamp="event_timestamp",
    feature_timestamp="event_timestamp",
    created_timestamp=None,
    ttl=None,
    prefix=None,
    stats: Counter | None = None,
) -> dict[str, list]:
    """Output column -> list of values (None for null), one per entity row, by loops."""
    stats = Counter() if stats is None else stats
    ent_keys = [entity_df[k].tolist() for k in join_keys]
    ent_ts = entity_df[entity_timestamp].tolist()
    f_keys = [features[k].tolist() for k in join_keys]
    f_ts = features[feature_timestamp].tolist()
    f_created = features[created_timestamp].tolist() if created_timestamp else None
    values = {c: features[c].tolist() for c in feature_columns}
    out: dict[str, list] = {name: [] for name in output_columns(feature_columns, prefix)}
    lowest = pd.Timestamp.min.tz_localize("UTC")

    for i in range(len(entity_df)):
        key = tuple(col[i] for col in ent_keys)
        et = ent_ts[i]
        best, best_rank, ranks, future, stale, stale_gaps = None, None, [], False, None, []
        if pd.isna(et) or any(pd.isna(k) for k in key):
            stats["null_entity_key_or_ts"] += 1
        else:
            for j in range(len(features)):
                fkey = tuple(col[j] for col in f_keys)
                ft = f_ts[j]
                if any(pd.isna(k) for k in fkey) or pd.isna(ft) or fkey != key:
                    continue
                if ft > et:
                    future = True
                    continue
                if ttl is not None and et - ft > ttl:
                    stale = j
                    stale_gaps.append(et - ft)
                    continue
                created = f_created[j] if f_created is not None else None
                rank = (ft, lowest if pd.isna(created) else created, j)
                ranks.append(rank)
                if best_rank is None or rank > best_rank:
                    best, best_rank = j, rank
            if not ranks and stale is None and not future:
                stats["no_history"] += 1
            if future:
                stats["future_rows_ignored"] += 1
            if best is None and stale is not None:
                stats["only_stale_history"] += 1
                if min(stale_gaps) == ttl + US:  # null only because of that microsecond
                    stats["just_past_ttl_excluded"] += 1
            if best is not None:
                same_ts = [r for r in ranks if r[0] == best_rank[0]]
                if len(same_ts) > 1:
                    if any(r[1] != best_rank[1] for r in same_ts):
                        stats["tie_broken_by_created"] += 1
                    if sum(r[1] == best_rank[1] for r in same_ts) > 1:
                        stats["tie_broken_by_position"] += 1
                if ttl is not None and et - best_rank[0] == ttl:
                    stats["ttl_edge_included"] += 1
        for name, col in zip(out, feature_columns, strict=True):
            v = None if best is None else values[col][best]
            out[name].append(None if v is None or pd.isna(v) else v)
    return out


def as_lists(result: pd.DataFrame, columns) -> dict[str, list]:
    return {c: [None if pd.isna(v) else v for v in result[c].tolist()] for c in columns}


# --------------------------------------------------------------------------- random data

UNITS = ["s", "ms", "us", "ns"]


def random_case(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Small frames on a coarse time grid, so that coincidences are the rule."""
    rng = np.random.default_rng(seed)
    n_feat, n_ent = int(rng.integers(15, 60)), int(rng.integers(20, 60))
    f_unit, e_unit = UNITS[seed % 4], UNITS[(seed // 4) % 4]
    if "s" in (f_unit, e_unit):
        # A TTL of 5s + 1us cannot be told apart from 5s on a seconds grid: use microseconds.
        f_unit, e_unit = "us", e_unit if e_unit != "s" else "ns"

    def ts(n: int, unit: str, lo: int, hi: int, null_rate: float):
        secs = rng.integers(lo, hi, n)
        micros = np.where(rng.random(n) < 0.15, 1, 0)  # some land 1us past a whole second
        s = pd.Series(T0 + pd.to_timedelta(secs, unit="s") + pd.to_timedelta(micros, unit="us"))
        s = s.dt.as_unit(unit)
        return s.mask(rng.random(n) < null_rate).array  # an array: frames below have own index

    features = pd.DataFrame(
        {
            "k1": rng.integers(0, 3, n_feat),  # entities also use k1 == 3: no history
            "k2": pd.array(rng.choice(["a", "b"], n_feat), dtype="str"),
            "event_timestamp": ts(n_feat, f_unit, 0, 20, 0.05),
            "f_float": rng.normal(size=n_feat).round(3),
            "f_int": rng.integers(-5, 100, n_feat),
            "f_str": pd.array([f"v{i}" for i in range(n_feat)], dtype="str"),
            "f_bool": rng.random(n_feat) < 0.5,
        }
    )
    # Late arrivals: created at or after the event, often much later, on a coarse grid so
    # that (ts, created) ties happen too; rows are in no particular order.
    delay = rng.choice([0, 0, 1, 2, 30], n_feat)
    features["created"] = features["event_timestamp"] + pd.to_timedelta(delay, unit="s")
    features.loc[rng.random(n_feat) < 0.05, "created"] = pd.NaT
    # Duplicate a few rows wholesale (same keys, ts and created): position breaks the tie.
    dup = features.sample(n=max(1, n_feat // 10), random_state=seed).assign(
        f_str=lambda d: d["f_str"] + "-dup", f_int=lambda d: d["f_int"] + 1000
    )
    features = pd.concat([features, dup], ignore_index=True)
    features = features.sample(frac=1.0, random_state=seed + 1).reset_index(drop=True)
    k2 = features["k2"].astype(object)
    k2[rng.random(len(features)) < 0.04] = None  # a null key never matches
    features["k2"] = pd.array(k2, dtype="str")

    entity = pd.DataFrame(
        {
            "k1": rng.integers(0, 4, n_ent),
            "k2": pd.array(rng.choice(["a", "b", "c"], n_ent, p=[0.45, 0.45, 0.1]), dtype="str"),
            "event_timestamp": ts(n_ent, e_unit, 0, 26, 0.04),
            "label": rng.integers(0, 2, n_ent),
        },
        index=pd.Index(rng.permutation(n_ent) * 7 + 3, name="row"),
    )
    k2 = entity["k2"].astype(object)
    k2[rng.random(n_ent) < 0.04] = None
    entity["k2"] = pd.array(k2, dtype="str")
    # Rows right on the TTL edge of a key's newest value, and one tick past it (1us where
    # the entity unit has it), so both sides of the edge are decisive in every seed.
    newest = (
        features.dropna(subset=["k2", "event_timestamp"])
        .sort_values("event_timestamp", kind="stable")
        .groupby(["k1", "k2"])
        .tail(1)
        .head(4)
    )
    tick = US if e_unit in ("us", "ns") else pd.Timedelta(milliseconds=1)
    past = pd.to_timedelta(np.resize([0, tick.value], len(newest)), unit="ns")
    edge = pd.DataFrame(
        {
            "k1": newest["k1"].to_numpy(),
            "k2": newest["k2"].array,
            "event_timestamp": (newest["event_timestamp"] + 5 * SEC + past.to_numpy())
            .dt.as_unit(e_unit)
            .array,
            "label": 0,
        },
        index=pd.Index(np.arange(len(newest)) * 7 + 1, name="row"),
    )
    entity = pd.concat([entity, edge]).sample(frac=1.0, random_state=seed + 2)
    if seed % 5 == 4:  # also a non-UTC zone: compared as instants
        features["event_timestamp"] = features["event_timestamp"].dt.tz_convert("Asia/Kolkata")

    kwargs = dict(
        join_keys=["k1", "k2"],
        feature_columns=["f_float", "f_int", "f_str", "f_bool"],
        created_timestamp="created" if seed % 3 else None,
        ttl=None if seed % 6 == 5 else pd.Timedelta(seconds=5).to_pytimedelta(),
        prefix="fv" if seed % 2 else None,
    )
    return entity, features, kwargs


SEEDS = range(30)


def test_randomized_against_reference() -> None:
    stats: Counter = Counter()
    sorted_inputs = 0
    for seed in SEEDS:
        entity, features, kwargs = random_case(seed)
        entity_before, features_before = entity.copy(), features.copy()
        got = point_in_time_join(entity, features, **kwargs)
        want = reference_join(entity, features, **kwargs, stats=stats)
        names = output_columns(kwargs["feature_columns"], kwargs["prefix"])

        assert as_lists(got, names) == want, f"seed {seed}"
        assert list(got.columns) == [*entity.columns, *names]
        assert got.index.equals(entity.index)
        pd.testing.assert_frame_equal(got[list(entity.columns)], entity)
        pd.testing.assert_frame_equal(entity, entity_before)  # inputs untouched
        pd.testing.assert_frame_equal(features, features_before)
        prefix = f"{kwargs['prefix']}__" if kwargs["prefix"] else ""
        assert got[f"{prefix}f_int"].dtype == "Int64"
        assert got[f"{prefix}f_bool"].dtype == "boolean"
        assert got[f"{prefix}f_float"].dtype == "float64"
        sorted_inputs += features["event_timestamp"].is_monotonic_increasing

        late = (features["created"] > features["event_timestamp"]).sum()
        stats["late_arriving_rows"] += int(late)

    # Every tricky case happened, in earnest, somewhere in the 30 seeds.
    for case in (
        "tie_broken_by_created",
        "tie_broken_by_position",
        "ttl_edge_included",
        "just_past_ttl_excluded",
        "only_stale_history",
        "no_history",
        "future_rows_ignored",
        "null_entity_key_or_ts",
        "late_arriving_rows",
    ):
        assert stats[case] >= 3, (case, stats)
    assert sorted_inputs == 0  # features arrive out of order


def test_randomized_many_keys_with_densify(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three keys, and the renumbering that keeps combined codes within int64 forced on."""
    monkeypatch.setattr(pit, "_MAX_GROUPS", 4)
    for seed in range(10):
        entity, features, kwargs = random_case(seed)
        rng = np.random.default_rng(seed)
        features["k3"] = rng.integers(0, 2, len(features)).astype("int32")
        entity["k3"] = rng.integers(0, 3, len(entity))  # int64 vs int32: still equal
        kwargs["join_keys"] = ["k1", "k2", "k3"]
        got = point_in_time_join(entity, features, **kwargs)
        want = reference_join(entity, features, **kwargs)
        assert as_lists(got, output_columns(kwargs["feature_columns"], kwargs["prefix"])) == want


# --------------------------------------------------------------------------- explicit cases


def frames(feature_rows, entity_rows, *, created=None):
    """features: (key, seconds, value); entities: (key, seconds)."""
    features = pd.DataFrame(
        {
            "id": [r[0] for r in feature_rows],
            "event_timestamp": [T0 + r[1] for r in feature_rows],
            "x": [r[2] for r in feature_rows],
        }
    )
    if created is not None:
        features["created"] = [T0 + c for c in created]
    entity = pd.DataFrame(
        {"id": [r[0] for r in entity_rows], "event_timestamp": [T0 + r[1] for r in entity_rows]}
    )
    return entity, features


def join(entity, features, **kw):
    kw.setdefault("join_keys", ["id"])
    kw.setdefault("feature_columns", ["x"])
    return point_in_time_join(entity, features, **kw)


def test_ttl_edge_is_included_and_one_microsecond_past_is_not() -> None:
    ttl = dt.timedelta(hours=1)
    entity, features = frames(
        [(1, 0 * SEC, 10), (2, 0 * SEC, 20)],
        [(1, HOUR), (2, HOUR + US), (1, HOUR - US)],
    )
    assert join(entity, features, ttl=ttl)["x"].tolist() == [10, pd.NA, 10]
    assert join(entity, features)["x"].tolist() == [10, 20, 10]  # no ttl: no limit


def test_ttl_edge_with_mixed_units() -> None:
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 5 * SEC), (1, 5 * SEC + US)])
    entity["event_timestamp"] = entity["event_timestamp"].dt.as_unit("ns")
    features["event_timestamp"] = features["event_timestamp"].dt.as_unit("s")
    got = join(entity, features, ttl=dt.timedelta(seconds=5))
    assert got["x"].tolist() == [10, pd.NA]


def test_ttl_forms_huge_and_finer_than_the_unit() -> None:
    far = pd.Timedelta(days=400 * 365)
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 1 * US), (1, 2 * US), (1, far)])
    # 1.5us on microsecond data: 1us is inside, 2us is not.
    got = join(entity, features, ttl=pd.Timedelta(nanoseconds=1500))
    assert got["x"].tolist() == [10, pd.NA, pd.NA]
    # Longer than datetime64[ns] can span: no overflow, everything is fresh enough.
    assert join(entity, features, ttl=dt.timedelta(days=1000 * 365))["x"].tolist() == [10, 10, 10]
    assert join(entity, features, ttl="2us")["x"].tolist() == [10, 10, pd.NA]


def test_future_rows_are_never_used() -> None:
    entity, features = frames(
        [(1, 0 * SEC, 1), (1, 10 * SEC, 2), (1, 10 * SEC + US, 3)],
        [(1, 10 * SEC), (1, 10 * SEC - US), (1, -1 * SEC)],
    )
    assert join(entity, features)["x"].tolist() == [2, 1, pd.NA]


def test_tie_broken_by_created_then_by_position() -> None:
    entity, features = frames(
        [(1, 0 * SEC, 1), (1, 0 * SEC, 2), (1, 0 * SEC, 3), (2, 0 * SEC, 4), (2, 0 * SEC, 5)],
        [(1, 1 * SEC), (2, 1 * SEC)],
        created=[5 * SEC, 9 * SEC, 7 * SEC, 3 * SEC, 3 * SEC],
    )
    got = join(entity, features, created_timestamp="created")
    assert got["x"].tolist() == [2, 5]  # latest created; equal created: the later row
    assert join(entity, features)["x"].tolist() == [3, 5]  # no created: the later row


def test_null_created_loses_a_tie() -> None:
    entity, features = frames(
        [(1, 0 * SEC, 1), (1, 0 * SEC, 2)], [(1, 1 * SEC)], created=[1 * SEC, 1 * SEC]
    )
    features.loc[1, "created"] = pd.NaT
    assert join(entity, features, created_timestamp="created")["x"].tolist() == [1]


def test_no_history_gives_nulls_and_nullable_dtypes() -> None:
    entity, features = frames([(1, 0 * SEC, 7)], [(1, 1 * SEC), (2, 1 * SEC), (1, -1 * SEC)])
    features["flag"] = [True]
    features["f"] = [1.5]
    features["s"] = pd.array(["a"], dtype="str")
    features["t"] = [T0]
    features["u8"] = np.array([3], dtype="uint8")
    got = join(entity, features, feature_columns=["x", "flag", "f", "s", "t", "u8"])
    assert str(got["x"].dtype) == "Int64" and str(got["u8"].dtype) == "UInt8"
    assert str(got["flag"].dtype) == "boolean"
    assert got["f"].dtype == "float64" and got["t"].dtype == features["t"].dtype
    assert got["s"].dtype == features["s"].dtype
    assert got["x"].tolist() == [7, pd.NA, pd.NA]
    assert got.iloc[1:][["flag", "f", "s", "t", "u8"]].isna().all().all()


def test_entity_order_index_and_columns_are_preserved() -> None:
    entity, features = frames(
        [(1, 0 * SEC, 10), (1, 5 * SEC, 15), (2, 3 * SEC, 23)],
        [(2, 9 * SEC), (1, 1 * SEC), (1, 9 * SEC), (3, 0 * SEC), (2, 1 * SEC)],
    )
    entity.index = pd.Index(["e", "b", "b", "a", "z"], name="who")  # not sorted, not unique
    entity["label"] = pd.array([1, None, 0, 1, 0], dtype="Int8")
    entity["event_timestamp"] = entity["event_timestamp"].dt.tz_convert("US/Pacific")
    before = entity.copy()
    got = join(entity, features, prefix="v")
    assert got.index.equals(before.index)
    pd.testing.assert_frame_equal(got[list(before.columns)], before)
    pd.testing.assert_frame_equal(entity, before)
    assert got["v__x"].tolist() == [23, 10, 15, pd.NA, pd.NA]


def test_null_entity_timestamp_or_key_gives_nulls() -> None:
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 1 * SEC), (1, 1 * SEC), (None, 1 * SEC)])
    entity.loc[1, "event_timestamp"] = pd.NaT
    features = pd.concat([features, features.assign(id=np.nan, x=99)], ignore_index=True)
    assert join(entity, features)["x"].tolist() == [10, pd.NA, pd.NA]


def test_two_join_keys() -> None:
    features = pd.DataFrame(
        {
            "user": [1, 1, 2, 2],
            "item": ["a", "b", "a", "b"],
            "event_timestamp": [T0] * 4,
            "x": [11, 12, 21, 22],
        }
    )
    entity = pd.DataFrame(
        {
            "user": [2, 1, 2, 1, 3],
            "item": ["b", "a", "a", "c", "a"],
            "event_timestamp": [T0 + SEC] * 5,
        }
    )
    got = point_in_time_join(entity, features, join_keys=["user", "item"], feature_columns=["x"])
    assert got["x"].tolist() == [22, 11, 21, pd.NA, pd.NA]


@pytest.mark.parametrize(
    "entity_dtype",
    ["str", "object", "category", pd.StringDtype("python"), pd.ArrowDtype(pa.string())],
)
@pytest.mark.parametrize("feature_dtype", ["str", "object", "category"])
def test_string_keys_match_across_representations(entity_dtype, feature_dtype) -> None:
    features = pd.DataFrame(
        {
            "k": pd.Series(["a", "b", None, "c"], dtype=object).astype(feature_dtype),
            "event_timestamp": [T0] * 4,
            "x": [1, 2, 3, 4],
        }
    )
    entity = pd.DataFrame(
        {
            "k": pd.Series(["c", None, "b", "zz", "a"], dtype=object).astype(entity_dtype),
            "event_timestamp": [T0 + SEC] * 5,
        }
    )
    got = point_in_time_join(entity, features, join_keys=["k"], feature_columns=["x"])
    assert got["x"].tolist() == [4, pd.NA, 2, pd.NA, 1]


def test_prefix_naming_and_output_columns() -> None:
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 1 * SEC)])
    features["y"] = [2.5]
    got = join(entity, features, feature_columns=["x", "y"], prefix="stats")
    assert list(got.columns) == ["id", "event_timestamp", "stats__x", "stats__y"]
    assert output_columns(["x", "y"], "stats") == ["stats__x", "stats__y"]
    assert output_columns(["x"]) == ["x"]


def test_different_timestamp_column_names_and_string_keys_argument() -> None:
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 1 * SEC)])
    entity = entity.rename(columns={"event_timestamp": "as_of"})
    features = features.rename(columns={"event_timestamp": "ts"})
    got = point_in_time_join(
        entity,
        features,
        join_keys="id",
        feature_columns="x",
        entity_timestamp="as_of",
        feature_timestamp="ts",
    )
    assert got["x"].tolist() == [10]


def test_timestamps_in_other_representations() -> None:
    entity, features = frames([(1, 0 * SEC, 10), (1, 2 * SEC, 12)], [(1, 1 * SEC)])
    as_arrow = features.assign(
        event_timestamp=features["event_timestamp"].astype(pd.ArrowDtype(pa.timestamp("ms", "UTC")))
    )
    assert join(entity, as_arrow)["x"].tolist() == [10]
    as_text = entity.assign(event_timestamp=["2024-03-01T01:00:01+01:00"])
    assert join(as_text, features)["x"].tolist() == [10]


def test_empty_inputs() -> None:
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 1 * SEC)])
    as_text = entity.assign(event_timestamp=pd.Series([None], dtype=object))  # all null
    assert join(as_text, features)["x"].tolist() == [pd.NA]
    assert len(join(as_text.iloc[:0].astype({"event_timestamp": "str"}), features)) == 0
    empty = join(entity.iloc[:0], features)
    assert list(empty.columns) == ["id", "event_timestamp", "x"] and len(empty) == 0
    assert str(empty["x"].dtype) == "Int64"
    assert join(entity, features.iloc[:0])["x"].tolist() == [pd.NA]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("side", ["entity", "features", "created"])
def test_naive_timestamps_are_rejected(side: str) -> None:
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 1 * SEC)], created=[0 * SEC])
    if side == "entity":
        entity["event_timestamp"] = entity["event_timestamp"].dt.tz_localize(None)
    elif side == "features":
        features["event_timestamp"] = features["event_timestamp"].dt.tz_localize(None)
    else:
        features["created"] = features["created"].dt.tz_localize(None)
    with pytest.raises(ValidationError, match="naive") as err:
        join(entity, features, created_timestamp="created")
    column = "created" if side == "created" else "event_timestamp"
    assert repr(column) in str(err.value) and err.value.context["column"] == column


def test_naive_text_and_epoch_numbers_are_rejected() -> None:
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 1 * SEC)])
    with pytest.raises(ValidationError, match="naive"):
        join(entity.assign(event_timestamp=["2024-03-01 00:00:01"]), features)
    with pytest.raises(ValidationError, match="timezone-aware"):
        join(entity.assign(event_timestamp=[1709251201]), features)


@pytest.mark.parametrize(
    ("drop_from", "column", "kw"),
    [
        ("entity", "id", {}),
        ("entity", "event_timestamp", {}),
        ("features", "x", {}),
        ("features", "id", {}),
        ("features", "created", {"created_timestamp": "created"}),
    ],
)
def test_missing_columns_are_rejected(drop_from: str, column: str, kw: dict) -> None:
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 1 * SEC)], created=[0 * SEC])
    if drop_from == "entity":
        entity = entity.drop(columns=[column])
    else:
        features = features.drop(columns=[column])
    with pytest.raises(ValidationError, match=repr(column)) as err:
        join(entity, features, **kw)
    assert err.value.context["column"] == column
    assert err.value.http_status == 422


def test_other_argument_errors() -> None:
    entity, features = frames([(1, 0 * SEC, 10)], [(1, 1 * SEC)])
    with pytest.raises(ValidationError, match="already exists"):
        join(entity.assign(x=1), features)
    with pytest.raises(ValidationError, match="negative"):
        join(entity, features, ttl=dt.timedelta(seconds=-1))
    with pytest.raises(ValidationError, match="timedelta"):
        join(entity, features, ttl="soon")
    with pytest.raises(ValidationError, match="twice"):
        join(entity, features, feature_columns=["x", "x"])
    with pytest.raises(SchemaMismatchError, match="'id'"):
        join(entity.assign(id=["1"]), features)


# --------------------------------------------------------------------------- speed


def test_vectorized_speed_smoke() -> None:
    """200k x 20k in well under a second: no Python loop over rows (a loop takes minutes)."""
    import time

    rng = np.random.default_rng(0)
    n, m = 200_000, 20_000
    features = pd.DataFrame(
        {
            "a": rng.integers(0, 500, m),
            "b": pd.array(rng.choice(["x", "y", "z"], m), dtype="str"),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 10**6, m), unit="s"),
            "v": rng.normal(size=m),
        }
    )
    entity = pd.DataFrame(
        {
            "a": rng.integers(0, 500, n),
            "b": pd.array(rng.choice(["x", "y", "z"], n), dtype="str"),
            "event_timestamp": T0 + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
        }
    )
    start = time.perf_counter()
    got = point_in_time_join(
        entity, features, join_keys=["a", "b"], feature_columns=["v"], ttl=dt.timedelta(days=3)
    )
    assert time.perf_counter() - start < 2.0
    assert got["v"].notna().any() and got["v"].isna().any()


# --------------------------------------------------------------------------- Ray shuffle


@pytest.mark.parametrize("num_partitions", [1, 3, 8])
def test_ray_shuffle_plan_without_ray(num_partitions: int) -> None:
    """The Ray variant's shuffle, run with plain calls: identical to the in-process join."""

    def call(fn, num_returns, *args):
        out = fn(*args)
        assert len(out) == num_returns
        return out

    for seed in range(6):
        entity, features, kwargs = random_case(seed)
        entity = entity.reset_index(drop=True)
        want = point_in_time_join(entity, features, **kwargs)
        entity_blocks = np.array_split(np.arange(len(entity)), 4)
        feature_blocks = np.array_split(np.arange(len(features)), 3)
        out = _plan(
            [entity.iloc[b] for b in entity_blocks],
            [features.iloc[b] for b in feature_blocks],
            num_partitions,
            kwargs,
            call,
        )
        assert [len(o) for o in out] == [len(b) for b in entity_blocks]
        pd.testing.assert_frame_equal(pd.concat(out, ignore_index=True), want)


def test_ray_buckets_agree_across_dtypes() -> None:
    a = pd.DataFrame({"k": [1, 2, 3, -0.0], "s": ["x", "y", "z", "w"]})
    b = pd.DataFrame(
        {
            "k": pd.array([1, 2, 3, 0], dtype="Int32"),
            "s": pd.Series(["x", "y", "z", "w"], dtype=object).astype("category"),
        }
    )
    assert (_bucket(a, ["k", "s"], 7) == _bucket(b, ["k", "s"], 7)).all()
    t = pd.Series([T0, T0 + SEC])
    c = pd.DataFrame({"t": t.dt.as_unit("ns")})
    d = pd.DataFrame({"t": t.dt.tz_convert("Asia/Tokyo").dt.as_unit("s")})
    assert (_bucket(c, ["t"], 5) == _bucket(d, ["t"], 5)).all()


def test_default_partitions_bound_the_rows_per_join_task() -> None:
    from raymlops.features.pit_ray import ROWS_PER_BUCKET, default_partitions

    assert default_partitions(10_000, 3, cpus=2) == 3  # small: one per block, <= 2 per CPU
    assert default_partitions(10_000, 50, cpus=2) == 4
    assert default_partitions(0, 0, cpus=2) == 1
    big = 20 * ROWS_PER_BUCKET + 1
    assert default_partitions(big, 200, cpus=2) == 21  # no bucket expects more than the cap
    assert default_partitions(big, 200, cpus=64) == 128
