"""Point-in-time-correct joins: the feature values an entity row could have seen, and no later.

This is what Feast's ``get_historical_features`` promises: a training row labelled at time
``t`` gets, for each feature, the value that was current at ``t`` -- never one from its
future (leakage), and nothing staler than the view's TTL.

The join is vectorized: join keys are factorized into one int64 group code, ties are
removed on the feature side (sort + keep last), and :func:`pandas.merge_asof` does the
backward search on three narrow int64 columns; feature values are then gathered once, by
position, into the entity frame. Nothing loops over rows in Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from raymlops.exceptions import SchemaMismatchError, ValidationError

__all__ = ["output_columns", "point_in_time_join"]

_UNIT_RANK = {"s": 0, "ms": 1, "us": 2, "ns": 3}
_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_NAT = np.iinfo(np.int64).min  # the int64 value of NaT
_MAX_GROUPS = 2**62  # renumber combined key codes before they could overflow int64


def output_columns(feature_columns: Sequence[str], prefix: str | None = None) -> list[str]:
    """The names :func:`point_in_time_join` gives the feature columns in its result."""
    cols = [feature_columns] if isinstance(feature_columns, str) else list(feature_columns)
    return [f"{prefix}__{c}" for c in cols] if prefix else cols


def point_in_time_join(
    entity_df: pd.DataFrame,
    features: pd.DataFrame,
    *,
    join_keys: Sequence[str],
    feature_columns: Sequence[str],
    entity_timestamp: str = "event_timestamp",
    feature_timestamp: str = "event_timestamp",
    created_timestamp: str | None = None,
    ttl: dt.timedelta | None = None,
    prefix: str | None = None,
) -> pd.DataFrame:
    """Attach to every entity row the feature values that were current at its timestamp.

    For each row of ``entity_df`` the candidates are the rows of ``features`` with

    * the same values in every column of ``join_keys`` (equality, as ``pandas`` compares
      them: ``1 == 1.0``; a null key matches nothing),
    * ``features[feature_timestamp] <= entity_df[entity_timestamp]`` (an exact match
      counts; a future row is never used), and
    * when ``ttl`` is given, ``entity_ts - feature_ts <= ttl`` (the edge is included, one
      tick more is not).

    The candidate with the latest ``feature_timestamp`` wins. Ties on it are broken by the
    latest ``created_timestamp`` (when given; a null created timestamp loses to any value),
    then by the later row in ``features`` (the last one written wins), so the result is
    deterministic. The TTL is checked on that winner only, which is exact: if the latest row
    at or before the entity time is older than the TTL, every other candidate is older still.

    The result has exactly the rows of ``entity_df``, in their order and with their index,
    every entity column untouched (the frame is not copied: pandas' copy-on-write shares its
    data), plus one column per feature, named ``f"{prefix}__{col}"`` when ``prefix`` is given
    (else ``col``; see :func:`output_columns`).

    Rows without a match -- no history for the key, all history in the future or older than
    the TTL, a null join key or a null entity timestamp -- get nulls. So that integer values
    stay exact, a missing value never turns ints into floats: NumPy ``int*``/``uint*``/
    ``bool`` feature columns always come back as pandas nullable ``Int*``/``UInt*``/
    ``boolean`` (whether or not a row is missing, so the schema does not depend on the data);
    float columns keep their dtype with ``NaN``, datetimes ``NaT``, strings and other
    extension dtypes their own missing value.

    Timestamps must be timezone-aware (``datetime64[unit, tz]``, Arrow timestamps with a
    time zone, or strings/objects that parse to aware times); they are compared as instants
    (UTC). Naive timestamps are rejected rather than assumed to be UTC, because a wrong
    guess silently shifts every row by the UTC offset, i.e. leaks future values. The two
    sides may use different units (``us`` and ``ns``): they are compared in the finer one.

    Raises:
        ValidationError: a column is missing, a timestamp column is naive or not a time,
            ``ttl`` is negative, an output column would overwrite an entity column, or a
            column is named twice. The message names the column.
        SchemaMismatchError: a join key has incompatible dtypes on the two sides (e.g. a
            number in one, a string in the other), which could never match.

    Cost: O(F log F) for the feature side, O(E log E) to sort the entity timestamps, and
    one hash lookup per entity row and join key; memory a few int64 arrays per row.
    """
    keys = _names(join_keys, "join_keys")
    feats = _names(feature_columns, "feature_columns")
    out_names = output_columns(feats, prefix)
    _require(entity_df, [*keys, entity_timestamp], "entity_df")
    ts_cols = [feature_timestamp] + ([created_timestamp] if created_timestamp else [])
    _require(features, [*keys, *ts_cols, *feats], "features")
    for name in out_names:
        if name in entity_df.columns:
            raise ValidationError(
                f"output column {name!r} already exists in entity_df; pass prefix= or rename it",
                column=name,
            )
    ttl_ns = None if ttl is None else _ttl_ns(ttl)

    n_ent = len(entity_df)
    e_ts = _as_utc(entity_df[entity_timestamp], entity_timestamp, "entity_df")
    f_ts = _as_utc(features[feature_timestamp], feature_timestamp, "features")
    unit = max(e_ts.dtype.unit, f_ts.dtype.unit, key=_UNIT_RANK.__getitem__)
    e_t = _i8(e_ts, unit, entity_timestamp, "entity_df")
    f_t = _i8(f_ts, unit, feature_timestamp, "features")
    e_g, f_g = _group_codes(entity_df, features, keys)

    # Feature side: usable rows sorted by (ts, group, created, position), then only the last
    # row of every (ts, group) run kept -- that is the tie-break -- which leaves it ts-sorted.
    f_rows = np.flatnonzero((f_g >= 0) & (f_t != _NAT))
    created = None
    if created_timestamp:
        c_ts = _as_utc(features[created_timestamp], created_timestamp, "features")
        created = _i8(c_ts, c_ts.dtype.unit, created_timestamp, "features")
    f_rows = _sort_features(f_rows, f_t, f_g, created)
    rt, rg = f_t[f_rows], f_g[f_rows]
    last = np.ones(len(f_rows), dtype=bool)
    last[:-1] = (rt[1:] != rt[:-1]) | (rg[1:] != rg[:-1])
    if not last.all():
        f_rows, rt, rg = f_rows[last], rt[last], rg[last]

    # Entity side: rows that can match at all, sorted by ts (merge_asof needs it).
    # Already sorted (a common case) costs one pass; the order among equal times is
    # irrelevant to merge_asof, so the fast unstable sort does.
    e_ok = (e_g >= 0) & (e_t != _NAT)
    e_rows = np.arange(n_ent) if e_ok.all() else np.flatnonzero(e_ok)
    lt = e_t[e_rows]
    if len(lt) > 1 and not (lt[1:] >= lt[:-1]).all():
        by_time = np.argsort(lt)
        e_rows, lt = e_rows[by_time], lt[by_time]
    take = np.full(n_ent, -1, dtype=np.int64)  # feature row per entity row, -1: none
    if len(e_rows) and len(f_rows):
        merged = pd.merge_asof(
            pd.DataFrame({"t": lt, "g": e_g[e_rows]}, copy=False),
            pd.DataFrame({"t": rt, "g": rg, "r": np.arange(len(f_rows))}, copy=False),
            on="t",
            by="g",
            allow_exact_matches=True,
            direction="backward",
        )
        hit = merged["r"].to_numpy(dtype=np.float64, na_value=np.nan)
        found = ~np.isnan(hit)
        r = np.where(found, hit, 0).astype(np.int64)
        if ttl_ns is not None:
            found &= (lt - rt[r]) <= ttl_ns // _NS_PER_UNIT[unit]  # floor: whole ticks only
        take[e_rows] = np.where(found, f_rows[r], -1)

    new = {name: _take(features[col], take) for name, col in zip(out_names, feats, strict=True)}
    return pd.concat([entity_df, pd.DataFrame(new, index=entity_df.index, copy=False)], axis=1)


# --------------------------------------------------------------------------- validation


def _names(value: Sequence[str], field: str) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValidationError(f"{field} names column {name!r} twice", field=field, column=name)
        seen.add(name)
    return names


def _ttl_ns(ttl: object) -> int:
    """The TTL in nanoseconds, as an exact Python int (no overflow for any timedelta)."""
    if isinstance(ttl, pd.Timedelta):
        ns = int(ttl.value)
    elif isinstance(ttl, dt.timedelta):
        ns = (ttl // dt.timedelta(microseconds=1)) * 1000
    else:
        try:
            ns = int(pd.Timedelta(ttl).value)  # np.timedelta64, "7d", ...
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"ttl must be a timedelta, got {ttl!r}", field="ttl") from exc
    if ns < 0:
        raise ValidationError(f"ttl must not be negative, got {ttl!r}", field="ttl")
    return ns


def _require(df: pd.DataFrame, columns: list[str], side: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(f"{side} must be a pandas DataFrame, got {type(df).__name__}")
    for col in columns:
        if col not in df.columns:
            raise ValidationError(
                f"{side} has no column {col!r} (it has: {', '.join(map(str, df.columns))})",
                column=col,
                side=side,
            )


def _as_utc(s: pd.Series, column: str, side: str) -> pd.Series:
    """``s`` as ``datetime64[unit, tz]``; naive or non-time columns raise ValidationError."""
    dtype = s.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return s
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_timestamp(dtype.pyarrow_dtype):
        if dtype.pyarrow_dtype.tz is None:
            raise _naive(column, side)
        return s.astype(pd.DatetimeTZDtype(unit=dtype.pyarrow_dtype.unit, tz="UTC"))
    if dtype.kind == "M":
        raise _naive(column, side)
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        if not s.notna().any():  # empty or all null: no zone to check, nothing can match
            return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
        try:
            parsed = pd.to_datetime(s)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                f"{side} column {column!r} does not parse as one timezone-aware time "
                f"({exc}); convert it with pd.to_datetime(..., utc=True) if that is right",
                column=column,
                side=side,
            ) from exc
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            return parsed
        raise _naive(column, side)
    raise ValidationError(
        f"{side} column {column!r} must hold timezone-aware timestamps, got dtype {dtype}",
        column=column,
        side=side,
    )


def _naive(column: str, side: str) -> ValidationError:
    return ValidationError(
        f"{side} column {column!r} holds naive timestamps; make them timezone-aware "
        f"(e.g. .dt.tz_localize('UTC') if they are UTC) -- assuming a zone here would "
        f"silently shift rows and leak future values",
        column=column,
        side=side,
    )


def _i8(s: pd.Series, unit: str, column: str, side: str) -> np.ndarray:
    """UTC ticks of ``unit`` as int64 (NaT is int64 min), without copying when possible."""
    arr = s.array.tz_convert(None)  # the UTC wall time: same ticks, no arithmetic
    if arr.unit != unit:
        try:
            arr = arr.as_unit(unit)
        except (OverflowError, ValueError) as exc:  # OutOfBoundsDatetime is a ValueError
            raise ValidationError(
                f"{side} column {column!r} has times that do not fit datetime64[{unit}] "
                f"(the finer unit of the two sides): {exc}",
                column=column,
                side=side,
            ) from exc
    return np.asarray(arr).view(np.int64)


def _sort_features(
    rows: np.ndarray, t: np.ndarray, g: np.ndarray, created: np.ndarray | None
) -> np.ndarray:
    """``rows`` ordered by (t, g, created, row): a fast unstable sort on t, then an exact
    lexsort of just the rows whose t is tied (none, usually; all, for daily snapshots)."""
    order = rows[np.argsort(t[rows])]
    ts = t[order]
    same = ts[1:] == ts[:-1]
    if not same.any():
        return order
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    slots = np.flatnonzero(tied)  # runs of equal t keep their slots: t is the primary key
    sub = order[slots]
    keys = [sub, g[sub], t[sub]]  # lexsort: last key is the primary one
    if created is not None:
        keys.insert(1, created[sub])
    order[slots] = sub[np.lexsort(keys)]
    return order


# --------------------------------------------------------------------------- join keys


def _key_family(dtype: object) -> str | None:
    """A coarse kind for the key dtype check; None for object (anything may be in it)."""
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if pd.api.types.is_object_dtype(dtype):
        return None
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype):
        return "string"
    return str(dtype)


def _group_codes(
    entity_df: pd.DataFrame, features: pd.DataFrame, keys: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """One int64 code per row for the tuple of join keys, shared by both sides.

    Codes come from the feature side (factorized); an entity row gets -1 when its key is
    null or does not occur in ``features`` at all (it cannot match), a feature row -1 when
    its key is null.
    """
    e_code = np.zeros(len(entity_df), dtype=np.int64)
    f_code = np.zeros(len(features), dtype=np.int64)
    e_bad = np.zeros(len(entity_df), dtype=bool)  # code is garbage there; -1 at the end
    f_bad = np.zeros(len(features), dtype=bool)
    n_groups = 1
    for key in keys:
        e_col, f_col = entity_df[key], features[key]
        fam_e, fam_f = _key_family(e_col.dtype), _key_family(f_col.dtype)
        if fam_e and fam_f and fam_e != fam_f:
            raise SchemaMismatchError(
                f"join key {key!r} is {e_col.dtype} in entity_df but {f_col.dtype} in "
                f"features; these never compare equal",
                column=key,
            )
        f_c, e_c, n = _key_codes(e_col, f_col)
        e_bad |= e_c < 0
        f_bad |= f_c < 0
        if n_groups * n >= _MAX_GROUPS:
            e_code[e_bad], f_code[f_bad] = -1, -1
            e_code, f_code, n_groups = _densify(e_code, f_code)
        e_code = e_code * n + e_c
        f_code = f_code * n + f_c
        n_groups *= n
    e_code[e_bad] = -1
    f_code[f_bad] = -1
    return e_code, f_code


def _key_codes(e_col: pd.Series, f_col: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes 0..n-1 of one key's values on the feature side, the same codes (or -1 for null
    or absent values) on the entity side, and n."""
    if isinstance(e_col.dtype, np.dtype) and e_col.dtype.kind in "iuf":
        f_c, uniques = pd.factorize(f_col)  # null -> -1
        n = len(uniques)
        e_c = pd.Index(uniques).get_indexer(e_col)  # a numeric hash lookup: fast
    elif (looked_up := _arrow_lookup(e_col, f_col)) is not None:
        f_c, e_c, n = looked_up
    else:
        # Other types: factorized together. Codes follow first appearance and features
        # come first, so the feature side holds exactly 0..n-1 and codes >= n are values
        # only the entity side has.
        both, _ = pd.factorize(pd.concat([f_col, e_col], ignore_index=True))
        f_c, e_c = both[: len(f_col)], both[len(f_col) :]
        n = int(f_c.max()) + 1 if len(f_c) else 0
        e_c = np.where(e_c < n, e_c, -1)
    return f_c.astype(np.int64, copy=False), e_c.astype(np.int64, copy=False), max(n, 1)


def _arrow_lookup(e_col: pd.Series, f_col: pd.Series) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Arrow-backed strings (pandas' default ``str``): pyarrow's hash lookup, several times
    faster than pandas' for them. None when the columns are not both such strings."""
    if not all(
        pd.api.types.is_string_dtype(c.dtype) and not pd.api.types.is_object_dtype(c.dtype)
        for c in (e_col, f_col)
    ):
        return None
    try:
        f_c, uniques = pd.factorize(f_col)
        e_arr = pa.array(e_col)
        value_set = pa.array(uniques).cast(e_arr.type)
        e_c = pc.index_in(e_arr, value_set=value_set).fill_null(-1).to_numpy()
    except (pa.ArrowException, TypeError, ValueError):
        return None  # e.g. a Python-backed StringDtype: the generic path handles it
    return f_c, e_c, len(uniques)


def _densify(e_code: np.ndarray, f_code: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Renumber codes to 0..k-1 (k <= len(features)) so that combining more keys cannot
    overflow int64."""
    uniq = np.unique(f_code[f_code >= 0])
    if not len(uniq):
        return np.full_like(e_code, -1), np.full_like(f_code, -1), 1
    f_new = np.where(f_code >= 0, np.searchsorted(uniq, f_code), -1)
    pos = np.minimum(np.searchsorted(uniq, e_code), len(uniq) - 1)
    hit = (e_code >= 0) & (uniq[pos] == e_code)
    return np.where(hit, pos, -1), f_new, len(uniq)


# --------------------------------------------------------------------------- output


def _take(s: pd.Series, take: np.ndarray):
    """``s`` at positions ``take`` (-1 -> missing), ints/bools as nullable dtypes."""
    arr = s.array
    kind = getattr(s.dtype, "kind", None)
    if isinstance(s.dtype, np.dtype) and kind in "iub":
        bits = s.dtype.itemsize * 8
        arr = arr.astype("boolean" if kind == "b" else f"{'UInt' if kind == 'u' else 'Int'}{bits}")
    return arr.take(take, allow_fill=True)
