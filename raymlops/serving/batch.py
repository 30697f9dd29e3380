"""Batch prediction: input files -> (features) -> warm scoring actors -> Parquet.

The planned input units (see :mod:`raymlops.tabular_input`) go to the model version's pool of scoring
actors (:mod:`raymlops.serving.scoring_pool`), at most two in flight per actor. Each actor
mapped the model bytes from the object store once when it started (the registry actor put
them there; nothing is re-read from the artifact store) and stays warm between jobs; for a
model bound to a FeatureService it maps the job's offline rows once, so every unit is read,
joined point-in-time, predicted and written by the same process, and only unit descriptors
and row counts cross the object store. Memory stays bounded at any input size: the driver
holds the unit plan, each actor one unit at a time.

Exactly once: ids are fixed before anything runs, a unit whose actor died is scored again
by a new actor, output goes to a staging folder, and the job checks that every id
appears exactly once before it publishes the folder (a rename on a local disk; on S3 the
parts are copied and ``_manifest.json`` written last, the mark of a complete output). A
failed job publishes nothing. Input and output are local paths or ``s3://`` URIs; on a
cluster of several hosts a local one must be a shared mount (``storage_shared``).
The version is resolved once, at the start, so every row is scored by the same version
even if the alias moves mid-job.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from raymlops.config import Settings
from raymlops.exceptions import RaymlopsError, SchemaMismatchError, ValidationError, typed_cause
from raymlops.registry.names import split_model_ref
from raymlops.serving import scoring_pool
from raymlops.serving.scoring import score_frame
from raymlops.shared_state import require_reachable
from raymlops.staged_output import MANIFEST, publish, refuse_existing, staging_for
from raymlops.storage import Storage, normalize_uri
from raymlops.tabular_input import ROW_ID, input_columns, part_name, plan_units, verify_parts

__all__ = ["BatchResult", "batch_predict", "part_name", "score_frame"]


@dataclass(frozen=True)
class BatchResult:
    """What a batch job did: the version used, rows in and out, where, how long."""

    model: str
    version: int
    rows: int
    output: str
    seconds: float
    units: int
    feature_service: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def batch_predict(
    model: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    ref: int | str | None = None,
    settings: Settings | None = None,
    keep_columns: list[str] | tuple[str, ...] = (),
    workers: int | None = None,
    rows_per_unit: int = 100_000,
    cpus_per_worker: float = 0.5,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    pool_idle_s: float | None = None,
) -> BatchResult:
    """Score every row of ``input_path`` with ``model`` (``NAME``, ``NAME@ALIAS`` or ``ref``).

    Writes Parquet under ``output_path`` with ``row_id`` (0-based position in the input, files
    in path order), ``keep_columns``, ``prediction``, ``score``, ``proba_<class>`` for a
    multi-class model (see :func:`score_frame`), ``model_name`` and ``model_version``, plus
    ``_manifest.json``. Needs a connected platform (``raymlops.init``).

    ``workers``: scoring actors (default: as many as units, free CPUs and the cluster's CPUs
    allow; at least one). ``progress(rows_done, rows_total)`` is called as units finish.
    ``pool_idle_s``: how long the actors this job starts stay warm (default: the platform's
    ``scoring_pool_idle_s``; 0: they end with the job).
    """
    import ray

    from raymlops.cluster import init
    from raymlops.features.client import FeatureStoreClient
    from raymlops.registry.client import RegistryClient

    started = time.perf_counter()
    settings = init(settings, start=False).settings
    name, version_ref = split_model_ref(model, default=ref if ref is not None else "champion")
    output = Storage.open(output_path)
    refuse_existing(output, overwrite)
    require_reachable(settings, {"input": str(input_path), "output": output.uri})
    units = plan_units(input_path, rows_per_unit)
    total = sum(u.rows for u in units)

    registry = RegistryClient.connect(settings)
    info, (model_ref,) = registry._call("model_ref", name, version_ref)
    # the compiled model, when it matched the original at registration (scores agree to 1e-5)
    compiled_ref = next(iter(registry._call("compiled_ref", name, int(info["version"]))), None)
    idle_s = settings.scoring_pool_idle_s if pool_idle_s is None else pool_idle_s
    workers = workers or choose_workers(len(units), cpus_per_worker,
                                        ray.cluster_resources().get("CPU", 1.0),
                                        ray.available_resources().get("CPU", 0.0))
    # The scoring actors first: a cold one's start (a worker process, the imports, the model
    # mapped: ~2.5 s) then overlaps fetching the feature rows and the checks below. A job
    # refused by those checks leaves warm actors for the next one (or ends them, idle_s 0).
    members = scoring_pool.acquire(info, model_ref, compiled_ref, settings, workers, idle_s)
    staging = staging_for(output)
    try:
        meta = info["meta"]
        service, ts_col = meta.get("feature_service"), meta.get("entity_timestamp")
        features_ref = None
        columns = None
        if service:
            features = FeatureStoreClient.connect(settings).historical_features(service)
            features_ref = ray.put(features)
            needed = [*features.join_keys, ts_col or "event_timestamp"]
            if meta.get("feature_names"):
                own = set(features.output_columns)
                needed += [c for c in meta["feature_names"] if c not in own]
            columns = list(dict.fromkeys([*needed, *keep_columns]))
            ts_col = ts_col or "event_timestamp"
        _check_columns(units[0], columns or list(keep_columns))
        staging.ensure_folder()
        job = {"staging": staging.uri, "keep": list(keep_columns), "timestamp_column": ts_col,
               "columns": columns, "features": [features_ref] if features_ref is not None else []}

        def start() -> Any:
            return scoring_pool.start_member(info, model_ref, compiled_ref, settings, idle_s)

        with scoring_pool.Reservation(len(members), cpus_per_worker):
            written = dispatch_units(members, job, [u.to_dict() for u in units], start,
                                     lambda done: progress and progress(done, total))
        if written != total:
            raise RaymlopsError(f"scored {written} rows of {total}; nothing was published")
        if staging.is_local:  # temp files of units whose actor was killed mid-write
            for leftover in staging.local_path().glob(".part-*"):
                leftover.unlink(missing_ok=True)
        verify_parts(staging, units, "batch")
        seconds = time.perf_counter() - started
        result = BatchResult(name, int(info["version"]), total, output.uri, seconds, len(units), service)
        staging.write_text(MANIFEST, json.dumps(
            {**result.to_dict(), "input": normalize_uri(input_path),
             "keep_columns": list(keep_columns), "finished_at": time.time()}, indent=2))
        publish(staging, output, overwrite)
        return result
    except Exception as exc:
        staging.delete_tree()
        cause = typed_cause(exc)
        if cause is not None:
            raise cause from None
        raise
    finally:
        if idle_s <= 0:  # pooling off: this job's actors go with it
            for member in members:
                scoring_pool.retire(member)


def choose_workers(units: int, cpus_per_worker: float, cluster_cpus: float,
                   free_cpus: float) -> int:
    """Scoring actors for a job of ``units`` units: never more than units (a small input
    gets one actor, not a pool it cannot use), nor than the free CPUs hold (warm actors of
    other work keep theirs), nor than the cluster's CPUs less one worker's share (the
    driver and the platform actors run too); at least one."""
    by_cluster = int(cluster_cpus // cpus_per_worker) - 1
    by_free = int(free_cpus // cpus_per_worker)
    return max(1, min(units, by_cluster, by_free, int(max(cluster_cpus, 1))))


# A unit is scored again after its actor died at most this often; more means something
# kills every actor that takes it (e.g. it does not fit in memory), not bad luck.
MAX_ATTEMPTS = 4
IN_FLIGHT_PER_ACTOR = 2  # one scoring, the next one already queued at the actor


def dispatch_units(members: list[Any], job: dict[str, Any], units: list[dict[str, Any]],
                   start: Callable[[], Any], on_rows: Callable[[int], Any]) -> int:
    """Score ``units`` on ``members`` (pool actors), two in flight per actor; rows written.

    An actor that dies (killed, its node lost) is replaced by ``start()`` once, and every
    unit it had is queued again. A typed error raised while scoring (bad input) ends the job.
    """
    import ray
    from ray.exceptions import RayActorError

    members = list(members)
    queue = deque(units)
    attempts: Counter[int] = Counter()
    in_flight: dict[Any, tuple[int, str, dict[str, Any]]] = {}
    load = [0] * len(members)
    written = 0
    while queue or in_flight:
        for slot, member in enumerate(members):
            while load[slot] < IN_FLIGHT_PER_ACTOR and queue:
                unit = queue.popleft()
                in_flight[member.handle.score.remote(job, unit)] = (slot, member.name, unit)
                load[slot] += 1
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        slot, name, unit = in_flight.pop(ref)
        load[slot] -= 1
        try:
            _, rows = ray.get(ref)
        except RayActorError as exc:
            attempts[unit["first_row_id"]] += 1
            if attempts[unit["first_row_id"]] >= MAX_ATTEMPTS:
                raise RaymlopsError(
                    f"the unit at row {unit['first_row_id']} lost its scoring actor "
                    f"{MAX_ATTEMPTS} times; nothing was published") from exc
            queue.appendleft(unit)
            if members[slot].name == name:  # the first of its units to fail: replace it
                members[slot] = start()
            continue
        written += rows
        on_rows(written)
    return written


def _check_columns(unit: Any, needed: list[str]) -> None:
    """Refuse input without the columns the model needs before any unit is scored."""
    missing = [c for c in needed if c not in input_columns(unit)]
    if missing:
        raise SchemaMismatchError(f"the input lacks columns {missing} that the model needs",
                                  missing=missing)


def validate_keep(keep: str | None) -> list[str]:
    cols = [c.strip() for c in (keep or "").split(",") if c.strip()]
    if ROW_ID in cols:
        raise ValidationError(f"{ROW_ID} is always in the output; do not keep it", field="keep")
    return cols
