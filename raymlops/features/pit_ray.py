"""Point-in-time joins on Ray, for entity sets (and feature tables) larger than one process.

The result is the in-process :func:`~raymlops.features.pit.point_in_time_join`, row for row,
because every entity row is joined by that very function against exactly the feature rows
that share its join keys. How (a hash shuffle in plain Ray tasks)::

    entity blocks --split by key hash--> P buckets --+
                                                     +--> P join tasks: point_in_time_join
    feature blocks --split by key hash--> P buckets -+         | split by entity block
                                                               v
                            B gather tasks: this block's rows from every bucket, sorted by
                            their position -> B output blocks, in the input's order

1. Each entity row gets a row id before anything moves: its block number and its position
   in that block. Each block of either side is split into ``num_partitions`` buckets by a
   hash of its join-key values; equal keys hash equally whatever the dtype (numbers are
   hashed as float64, times as UTC nanoseconds, everything else as its object value).
2. One task per bucket concatenates the bucket's entity parts and its feature parts -- the
   latter in block order, so "the later row wins" sees the input's row order -- and runs
   ``point_in_time_join``.
3. Each bucket's result is split by entity block; one task per entity block gathers its
   rows and sorts them by position. The output has the entity dataset's blocks and rows in
   their order (the order ``Dataset.to_pandas_refs`` yields; set
   ``DataContext.execution_options.preserve_order`` if an upstream stage must keep it).

Why tasks and not ``groupby(...).map_groups``: that works within one dataset, and putting
two datasets with different schemas into one means a merged schema whose Arrow round trip
turns the other side's columns into nulls (ints into floats, say), losing the "identical to
in-process" guarantee. Pandas frames passed between tasks keep their dtypes. The shuffle is
written once (:func:`_plan`) against a ``call`` seam, so unit tests run it without Ray.

Ray is imported only inside :func:`point_in_time_join_ray`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from raymlops.exceptions import ValidationError
from raymlops.features.pit import output_columns, point_in_time_join

if TYPE_CHECKING:
    import ray.data

__all__ = ["default_partitions", "empty_like_schema", "feature_columns_needed", "join_kwargs_of",
           "numpy_backed", "point_in_time_join_ray", "shuffle_join_refs"]

_BLOCK = "__pit_block"  # the row id: (entity block number, position in the block)
_POS = "__pit_pos"
_HASH_MIX = np.uint64(0x9E3779B97F4A7C15)

# call(fn, num_returns, *args) -> list of num_returns results (values or ObjectRefs)
Call = Callable[..., list[Any]]


def point_in_time_join_ray(
    entity_ds: ray.data.Dataset,
    features: pd.DataFrame | ray.data.Dataset,
    *,
    join_keys: Sequence[str],
    feature_columns: Sequence[str],
    entity_timestamp: str = "event_timestamp",
    feature_timestamp: str = "event_timestamp",
    created_timestamp: str | None = None,
    ttl: dt.timedelta | None = None,
    prefix: str | None = None,
    num_partitions: int | None = None,
) -> ray.data.Dataset:
    """:func:`~raymlops.features.pit.point_in_time_join` for a Ray Dataset of entity rows.

    Same semantics, arguments and result columns as the in-process function (see there);
    ``features`` may be a pandas DataFrame (put in the object store once) or a Dataset. The
    result is a Dataset with one block per entity block, rows in the input's order; Ray
    Datasets carry no pandas index. ``num_partitions`` is the number of hash buckets (join
    tasks); by default :func:`default_partitions`.

    Argument errors (missing columns, naive timestamps, ...) raise ValidationError here,
    checked against the datasets' schemas; data errors surface when a join task runs.
    """
    import ray

    keys, feats = _listed(join_keys), _listed(feature_columns)
    if num_partitions is not None and (not isinstance(num_partitions, int) or num_partitions < 1):
        raise ValidationError(
            f"num_partitions must be a positive integer, got {num_partitions!r}",
            field="num_partitions",
        )
    join_kwargs: dict[str, Any] = dict(
        join_keys=keys,
        feature_columns=feats,
        entity_timestamp=entity_timestamp,
        feature_timestamp=feature_timestamp,
        created_timestamp=created_timestamp,
        ttl=ttl,
        prefix=prefix,
    )
    needed = feature_columns_needed(join_kwargs)

    entity_empty = empty_like_schema(entity_ds)
    if isinstance(features, pd.DataFrame):
        features_empty = features.iloc[:0]
    else:
        features_empty = empty_like_schema(features)
    _check_args(entity_empty, features_empty, join_kwargs)

    entity_ds = entity_ds.materialize()  # spilled to disk by Ray when it does not fit
    entity_rows = entity_ds.count()  # from the blocks' metadata
    entity_refs = entity_ds.to_pandas_refs()
    if not entity_refs:  # an empty dataset may have no blocks: give it one, with its schema
        entity_refs = [ray.put(entity_ds.to_pandas())]
    if isinstance(features, pd.DataFrame):
        feature_refs = [ray.put(features[needed])]
    else:  # columns are pruned in the split tasks: no extra (order-shuffling) map stage
        feature_refs = features.to_pandas_refs() or [ray.put(features.to_pandas())]

    out_refs = shuffle_join_refs(entity_refs, feature_refs, entity_rows, join_kwargs, num_partitions)
    return ray.data.from_pandas_refs(out_refs)


def shuffle_join_refs(
    entity_refs: list[Any],
    feature_refs: list[Any],
    entity_rows: int,
    join_kwargs: dict[str, Any],
    num_partitions: int | None = None,
) -> list[Any]:
    """The hash-shuffle join in plain Ray tasks over object refs of pandas frames (one per
    entity block, in order): one ref per entity block back, its rows in their order.

    ``join_kwargs`` are :func:`point_in_time_join`'s keyword arguments, already checked by the
    caller. No Ray Data here: its executor budgets the object store for its own operators,
    and a shuffle that fills the store outside that budget would stall it.
    """
    import ray

    if num_partitions is None:
        num_partitions = default_partitions(
            entity_rows, len(entity_refs), int(ray.cluster_resources().get("CPU", 1)))
    run = ray.remote(_run)

    def call(fn: Callable[..., list[Any]], num_returns: int, *args: Any) -> list[Any]:
        refs = run.options(num_returns=num_returns).remote(fn, num_returns, *args)
        return refs if num_returns > 1 else [refs]

    return _plan(entity_refs, feature_refs, num_partitions, join_kwargs, call)


def join_kwargs_of(view_rows: Any, timestamp_column: str) -> dict[str, Any]:
    """:func:`point_in_time_join`'s keyword arguments for one resolved view
    (a :class:`~raymlops.features.retrieval.ViewRows`)."""
    v = view_rows
    return dict(join_keys=list(v.entity.join_keys), feature_columns=list(v.features),
                entity_timestamp=timestamp_column, feature_timestamp=v.view.event_timestamp,
                created_timestamp=v.view.created_timestamp, ttl=v.view.ttl, prefix=v.view.name)


ROWS_PER_BUCKET = 1_000_000


def default_partitions(entity_rows: int, entity_blocks: int, cpus: int) -> int:
    """Hash buckets for a join: at least two per CPU (up to one per entity block), and
    enough that no bucket expects more than ``ROWS_PER_BUCKET`` entity rows, so a join task's
    memory does not grow with the input."""
    by_cpus = min(entity_blocks, 2 * max(1, cpus))
    by_rows = -(-entity_rows // ROWS_PER_BUCKET)
    return max(1, by_cpus, by_rows)


def _run(fn: Callable[..., list[Any]], num_returns: int, *args: Any) -> Any:
    """The one Ray task: Ray wants a bare value for num_returns=1, a sequence otherwise."""
    out = fn(*args)
    return out[0] if num_returns == 1 else out


def _check_args(
    entity_empty: pd.DataFrame | None, features_empty: pd.DataFrame | None, kwargs: dict
) -> None:
    """Fail fast, on the driver: run the join on zero-row frames with the inputs' schemas."""
    if entity_empty is None or features_empty is None:
        return  # schema unknown here; the join tasks check
    for name in (_BLOCK, _POS):
        if name in entity_empty.columns or name in output_columns(
            kwargs["feature_columns"], kwargs["prefix"]
        ):
            raise ValidationError(f"column name {name!r} is reserved for the Ray join", column=name)
    point_in_time_join(entity_empty, features_empty, **kwargs)


def empty_like_schema(ds: ray.data.Dataset) -> pd.DataFrame | None:
    """A zero-row frame with the dataset's columns and pandas dtypes, or None if unknown."""
    try:
        schema = ds.schema()
        base = schema.base_schema
        if hasattr(base, "empty_table"):  # an Arrow schema
            return base.empty_table().to_pandas()
        return pd.DataFrame(
            {n: pd.Series(dtype=t) for n, t in zip(base.names, base.types, strict=True)}
        )
    except Exception:  # noqa: BLE001 - validation is best effort; the join tasks re-check
        return None


# --------------------------------------------------------------------------- the shuffle


def _plan(
    entity_blocks: Sequence[Any],
    feature_blocks: Sequence[Any],
    num_partitions: int,
    join_kwargs: dict[str, Any],
    call: Call,
) -> list[Any]:
    """Wire the shuffle: returns one result (value or ref) per entity block, in order."""
    keys = _listed(join_kwargs["join_keys"])
    needed = feature_columns_needed(join_kwargs)
    n_blocks, n_parts = len(entity_blocks), num_partitions
    ent = [
        call(_split_entity, n_parts, blk, i, keys, n_parts) for i, blk in enumerate(entity_blocks)
    ]
    fea = [call(_split_features, n_parts, blk, keys, n_parts, needed) for blk in feature_blocks]
    per_bucket = [
        call(
            _join_bucket,
            n_blocks,
            len(ent),
            n_blocks,
            join_kwargs,
            *[parts[b] for parts in ent],
            *[parts[b] for parts in fea],
        )
        for b in range(n_parts)
    ]
    return [call(_gather, 1, *[pb[i] for pb in per_bucket])[0] for i in range(n_blocks)]


def feature_columns_needed(kwargs: dict[str, Any]) -> list[str]:
    """The feature-side columns a join reads (keys, times, features)."""
    created = [kwargs["created_timestamp"]] if kwargs.get("created_timestamp") else []
    ts = kwargs.get("feature_timestamp", "event_timestamp")
    cols = [*_listed(kwargs["join_keys"]), ts, *created, *_listed(kwargs["feature_columns"])]
    return list(dict.fromkeys(cols))


def _listed(names: str | Sequence[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def numpy_backed(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with pandas' default (NumPy-backed) dtypes where Ray Data handed out Arrow-backed
    ones (``int64[pyarrow]``...): the join is built for those, and ~10x slower otherwise."""
    if not any(isinstance(t, pd.ArrowDtype) for t in df.dtypes):
        return df
    import pyarrow as pa

    out = pa.Table.from_pandas(df, preserve_index=False).to_pandas(ignore_metadata=True)
    out.index = df.index
    return out


def _split_entity(df: pd.DataFrame, block: int, keys: list[str], n: int) -> list[pd.DataFrame]:
    df = numpy_backed(df).reset_index(drop=True).assign(
        **{_BLOCK: np.full(len(df), block, dtype=np.int64), _POS: np.arange(len(df))}
    )
    return _partition(df, _bucket(df, keys, n), n)


def _split_features(
    df: pd.DataFrame, keys: list[str], n: int, columns: list[str]
) -> list[pd.DataFrame]:
    df = numpy_backed(df[columns])
    return _partition(df, _bucket(df, keys, n), n)


def _join_bucket(
    n_entity_parts: int, n_blocks: int, kwargs: dict[str, Any], *parts: pd.DataFrame
) -> list[pd.DataFrame]:
    entity = pd.concat(parts[:n_entity_parts], ignore_index=True)
    features = pd.concat(parts[n_entity_parts:], ignore_index=True)  # block order kept
    out = point_in_time_join(entity, features, **kwargs)
    return _partition(out, out[_BLOCK].to_numpy(dtype=np.int64), n_blocks)


def _gather(*parts: pd.DataFrame) -> list[pd.DataFrame]:
    out = pd.concat(parts, ignore_index=True)
    out = out.iloc[np.argsort(out[_POS].to_numpy(), kind="stable")]
    return [out.drop(columns=[_BLOCK, _POS]).reset_index(drop=True)]


def _partition(df: pd.DataFrame, labels: np.ndarray, n: int) -> list[pd.DataFrame]:
    """``df`` split into n frames by ``labels`` (0..n-1), rows keeping their order."""
    if n == 1:
        return [df]
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n + 1))
    return [df.iloc[order[bounds[i] : bounds[i + 1]]] for i in range(n)]


def _bucket(df: pd.DataFrame, keys: list[str], n: int) -> np.ndarray:
    """A bucket 0..n-1 per row such that rows with equal join keys share it."""
    if n == 1 or not keys or not len(df):
        return np.zeros(len(df), dtype=np.int64)
    h = np.zeros(len(df), dtype=np.uint64)
    for key in keys:
        h = (h * _HASH_MIX) ^ _hash_key(df[key])  # uint64 arithmetic wraps around
    return (h % np.uint64(n)).astype(np.int64)


def _hash_key(s: pd.Series) -> np.ndarray:
    """uint64 hashes under which values that pandas calls equal (1 == 1.0 == True in an
    object column, the same instant in two zones) hash equally."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.dtype.categories.dtype)
    dtype = s.dtype
    if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(s, skipna=True) in (
        "integer",
        "floating",
        "mixed-integer-float",
        "boolean",
        "decimal",
    ):
        dtype = np.dtype("float64")
        s = s.astype("float64")
    if pd.api.types.is_datetime64_any_dtype(dtype):
        # UTC microseconds: equal instants agree in any unit or zone (naive ones are read as
        # UTC here only to pick a bucket; the join itself never matches naive with aware).
        utc = pd.to_datetime(s, utc=True).dt.tz_convert(None).dt.as_unit("us")
        return pd.util.hash_array(utc.to_numpy().view(np.int64))
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        # (hash_array itself hashes -0.0 as 0.0)
        return pd.util.hash_array(s.to_numpy(dtype=np.float64, na_value=np.nan))
    return pd.util.hash_array(s.to_numpy(dtype=object))
