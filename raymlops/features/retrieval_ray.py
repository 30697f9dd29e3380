"""Historical retrieval on the cluster, for entity sets larger than one process holds.

Two ways to join a view, chosen per view from the size of its offline rows:

- **broadcast** (the usual case: feature tables are far smaller than entity sets): the
  view's rows go into the object store once, and every entity block is joined against them
  where it is. Nothing is shuffled and a process holds one block at a time, so memory does
  not grow with the number of entity rows.
- **shuffle** (rows above ``broadcast_max_bytes``): both sides are hash-partitioned by join
  key (:func:`~raymlops.features.pit_ray.point_in_time_join_ray`); the whole entity set is
  materialized in the object store (spilled to disk when it does not fit).

Three entry points: :func:`join_dataset` (a Ray Dataset in, a lazy Dataset out),
:func:`join_frame` (a DataFrame, in blocks of Ray tasks) and :func:`write_historical` (files
in, files out, in plain Ray tasks over the input's units: several times faster here than Ray
Data's Parquet reader, and free of its executor's object-store budget, which a shuffle
outside it would stall). Every way joins
each row with the in-process :func:`~raymlops.features.pit.point_in_time_join`, so results
equal the local engine's (tested).

Ray is imported only inside the functions.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from raymlops.features.pit_ray import (
    empty_like_schema,
    feature_columns_needed,
    join_kwargs_of,
    numpy_backed,
    point_in_time_join_ray,
    shuffle_join_refs,
)
from raymlops.features.retrieval import HistoricalFeatures, ViewRows

if TYPE_CHECKING:
    import ray.data

__all__ = ["BROADCAST_MAX_BYTES", "RetrievalResult", "join_dataset", "write_historical"]

# Feature rows up to this size are mapped by every join task; larger views are shuffled.
BROADCAST_MAX_BYTES = 256 * 2**20


@dataclass(frozen=True)
class RetrievalResult:
    """What a retrieval to files did: the service, rows in (= rows out), where, how long."""

    service: str
    rows: int
    output: str
    seconds: float
    files: int
    view_versions: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def join_dataset(
    features: HistoricalFeatures,
    entity_ds: ray.data.Dataset,
    timestamp_column: str,
    *,
    broadcast_max_bytes: int = BROADCAST_MAX_BYTES,
) -> ray.data.Dataset:
    """``features`` joined onto every row of ``entity_ds``, lazily, block by block.

    Argument errors (a missing join key or timestamp column, naive timestamps) raise
    :class:`~raymlops.exceptions.ValidationError` here, judged on the dataset's schema.
    """
    import ray

    empty = empty_like_schema(entity_ds)
    if empty is not None:
        features.join(empty, timestamp_column)  # fail fast, on the caller's side
    result = entity_ds
    for group in _groups(features, broadcast_max_bytes):
        if isinstance(group, list):
            part = HistoricalFeatures(features.service, group)
            result = result.map_batches(
                _join_batch, fn_args=([ray.put(part)], timestamp_column),
                batch_format="pandas", batch_size=None, zero_copy_batch=True,
            )
        else:
            v = group
            result = point_in_time_join_ray(
                result, v.rows, join_keys=list(v.entity.join_keys), feature_columns=v.features,
                entity_timestamp=timestamp_column, feature_timestamp=v.view.event_timestamp,
                created_timestamp=v.view.created_timestamp, ttl=v.view.ttl, prefix=v.view.name,
            )
    return result


def _groups(features: HistoricalFeatures, broadcast_max_bytes: int) -> list[list[ViewRows] | ViewRows]:
    """Views in order: runs of broadcast views as lists, each shuffled view on its own."""
    groups: list[list[ViewRows] | ViewRows] = []
    for v in features.views:
        if int(v.rows.memory_usage(deep=True).sum()) <= broadcast_max_bytes:
            if groups and isinstance(groups[-1], list):
                groups[-1].append(v)
            else:
                groups.append([v])
        else:
            groups.append(v)
    return groups


# Per worker process: the features of the jobs it ran last, by object id, so a worker that
# runs many map tasks of one job deserializes the feature rows once.
_MAPPED: dict[str, HistoricalFeatures] = {}


def _join_batch(batch: pd.DataFrame, features_ref: list[Any], timestamp_column: str) -> pd.DataFrame:
    return _mapped(features_ref).join(numpy_backed(batch), timestamp_column)


def _mapped(features_ref: list[Any]) -> HistoricalFeatures:
    import ray

    key = features_ref[0].hex()
    features = _MAPPED.get(key)
    if features is None:
        features = ray.get(features_ref[0])
        while len(_MAPPED) >= 4:
            _MAPPED.pop(next(iter(_MAPPED)))
        _MAPPED[key] = features
    return features


def join_frame(
    features: HistoricalFeatures,
    entity_df: pd.DataFrame,
    timestamp_column: str,
    *,
    rows_per_block: int = 100_000,
    broadcast_max_bytes: int = BROADCAST_MAX_BYTES,
) -> pd.DataFrame:
    """The same joins for a DataFrame, on the cluster: split into blocks joined by Ray tasks
    (pandas frames travel pickled, so dtypes are kept exactly), and returned in the input's
    row order with its index."""
    import ray

    empty = entity_df.iloc[:0].reset_index(drop=True)
    features.join(empty, timestamp_column)  # argument errors here, not in a task
    n = max(1, -(-len(entity_df) // rows_per_block))
    refs = [ray.put(entity_df.iloc[i * rows_per_block:(i + 1) * rows_per_block].reset_index(drop=True))
            for i in range(n)]
    refs = _join_refs(features, refs, len(entity_df), timestamp_column, broadcast_max_bytes)
    out = pd.concat(ray.get(refs), ignore_index=True)
    out.index = entity_df.index
    return out


def _join_refs(features: HistoricalFeatures, refs: list[Any], rows: int, timestamp_column: str,
               broadcast_max_bytes: int) -> list[Any]:
    """Every view joined onto blocks given as object refs (pandas frames, in order), in plain
    Ray tasks: one ref per block back, in the same order."""
    import ray

    join_task = ray.remote(_join_batch)
    for group in _groups(features, broadcast_max_bytes):
        if isinstance(group, list):
            part = [ray.put(HistoricalFeatures(features.service, group))]
            refs = [join_task.remote(ref, part, timestamp_column) for ref in refs]
        else:
            kwargs = join_kwargs_of(group, timestamp_column)
            feature_refs = [ray.put(group.rows[feature_columns_needed(kwargs)])]
            refs = shuffle_join_refs(refs, feature_refs, rows, kwargs)
    return refs


def write_historical(
    features: HistoricalFeatures,
    entities: str | Path,
    output: str | Path,
    timestamp_column: str,
    *,
    overwrite: bool = False,
    broadcast_max_bytes: int = BROADCAST_MAX_BYTES,
    rows_per_unit: int = 200_000,
    progress: Callable[[int, int], Any] | None = None,
) -> RetrievalResult:
    """Read entity rows from Parquet/CSV files at ``entities``, join ``features`` and write
    Parquet files to ``output`` (a local folder or ``s3://`` prefix), rows in input order
    (part files sort in input order).

    With every view broadcast, the input is cut into units (:mod:`raymlops.tabular_input`)
    and each unit is read, joined and written by one Ray task, at most two per CPU in
    flight: a process holds one unit, and nothing but row counts crosses the object store.
    A view too large to broadcast is hash-shuffled instead (the units are read into the
    object store first, :func:`_run_shuffled`). The output is published whole or not at all
    (:mod:`raymlops.staged_output`), after the exactly-once check of the unit parts.
    ``progress(rows_done, rows_total)`` is called as units finish.
    """
    from raymlops.exceptions import typed_cause
    from raymlops.staged_output import MANIFEST, publish, refuse_existing, staging_for
    from raymlops.storage import Storage, normalize_uri
    from raymlops.tabular_input import plan_units, read_unit

    started = time.perf_counter()
    out = Storage.open(output)
    refuse_existing(out, overwrite)
    units = plan_units(entities, rows_per_unit)
    total = sum(u.rows for u in units)
    features.join(read_unit(units[0], with_row_id=False).iloc[:0], timestamp_column)  # arguments
    staging = staging_for(out)
    try:
        staging.ensure_folder()
        if all(isinstance(g, list) for g in _groups(features, broadcast_max_bytes)):
            _run_units(features, units, timestamp_column, staging, total, progress)
        else:
            _run_shuffled(features, units, timestamp_column, staging, total, broadcast_max_bytes)
            if progress:
                progress(total, total)
        files = len(units)
        result = RetrievalResult(features.service, total, out.uri, time.perf_counter() - started,
                                 files, features.view_versions())
        staging.write_text(MANIFEST, json.dumps(
            {**result.to_dict(), "input": normalize_uri(entities), "finished_at": time.time()},
            indent=2))
        publish(staging, out, overwrite)
        return result
    except BaseException as exc:
        staging.delete_tree()
        cause = typed_cause(exc) if isinstance(exc, Exception) else None
        if cause is not None and cause is not exc:
            raise cause from None
        raise


def _run_units(features: HistoricalFeatures, units: list[Any], timestamp_column: str,
               staging: Any, total: int, progress: Callable[[int, int], Any] | None) -> None:
    """Every unit joined and written by a task; then the exactly-once check."""
    import ray

    from raymlops.tabular_input import verify_parts

    features_ref = [ray.put(features)]
    task = ray.remote(_retrieve_unit).options(num_cpus=1, max_retries=3)
    limit = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    queue, pending, done = deque(units), {}, 0
    while queue or pending:
        while queue and len(pending) < limit:
            unit = queue.popleft()
            pending[task.remote(unit.to_dict(), features_ref, timestamp_column, staging.uri)] = unit
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            del pending[ref]
            done += ray.get(ref)
            if progress:
                progress(done, total)
    if staging.is_local:  # temp files of tasks killed mid-write (retried by Ray)
        for leftover in staging.local_path().glob(".part-*"):
            leftover.unlink(missing_ok=True)
    verify_parts(staging, units, "retrieval")


def _retrieve_unit(unit: dict[str, Any], features_ref: list[Any], timestamp_column: str,
                   staging_uri: str) -> int:
    """One unit read, joined and written as its part file (atomically: a retry rewrites it)."""
    joined = _mapped(features_ref).join(_read_unit(unit), timestamp_column)
    return _write_part(joined, unit["first_row_id"], staging_uri)


def _run_shuffled(features: HistoricalFeatures, units: list[Any], timestamp_column: str,
                  staging: Any, total: int, broadcast_max_bytes: int) -> None:
    """With a view to shuffle: every unit read by a task into the object store (spilled to
    disk when it does not fit: a shuffle needs all of it), the views joined by
    :func:`_join_refs`, each unit's rows written as its part by a task; then the
    exactly-once check."""
    import ray

    from raymlops.tabular_input import verify_parts

    read, write = ray.remote(_read_unit), ray.remote(_write_part).options(max_retries=3)
    blocks = [read.remote(u.to_dict()) for u in units]
    joined = _join_refs(features, blocks, total, timestamp_column, broadcast_max_bytes)
    ray.get([write.remote(block, u.first_row_id, staging.uri) for block, u in zip(joined, units, strict=True)])
    verify_parts(staging, units, "retrieval")


def _write_part(frame: pd.DataFrame, first_row_id: int, staging_uri: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raymlops.storage import Storage
    from raymlops.tabular_input import part_name

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    Storage.open(staging_uri).write_bytes(part_name(first_row_id), sink.getvalue().to_pybytes())
    return len(frame)


def _read_unit(unit: dict[str, Any]) -> pd.DataFrame:
    from raymlops.tabular_input import read_unit

    return read_unit(unit, with_row_id=False)
