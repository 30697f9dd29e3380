"""Batch prediction on Ray Data: input files -> (features) -> model actors -> Parquet.

The pipeline is one Ray Dataset: the planned input units (see ``batch_input``) go to a pool
of scoring actors (``map_batches`` with a callable class). Each actor maps the model bytes
from the object store once (the registry actor put them there; nothing is re-read from the
artifact store per worker), and for a model bound to a FeatureService it also maps the
service's offline rows once, so every unit is read, joined point-in-time and predicted in
the same process with no data crossing the object store except the predictions.

Exactly once: ids are fixed before anything runs, Ray Data retries a unit whose actor died
on a restarted actor, output goes to a staging folder, and the job checks that every id
appears exactly once before it publishes the folder (a rename on a local disk; on S3 the
parts are copied and ``_manifest.json`` written last, the mark of a complete output). A
failed job publishes nothing. Input and output are local paths or ``s3://`` URIs; on a
cluster of several hosts a local one must be a shared mount (``storage_shared``).
The version is resolved once, at the start, so every row is scored by the same version
even if the alias moves mid-job.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raymlops.config import Settings
from raymlops.exceptions import ConflictError, RaymlopsError, SchemaMismatchError, ValidationError
from raymlops.registry.names import split_model_ref
from raymlops.serving.batch_input import ROW_ID, input_columns, plan_units, read_unit
from raymlops.shared_state import require_reachable
from raymlops.storage import Storage, normalize_uri

__all__ = ["BatchResult", "batch_predict", "score_frame"]

MANIFEST = "_manifest.json"


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


def score_frame(predictor: Any, frame: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    """Predictions for ``frame``: row id, kept columns, prediction, score, model, version.

    ``score`` is the probability of the positive class for a binary classifier, of the
    predicted class for a multi-class one, and absent (NaN) for a regressor. A multi-class
    classifier also gets one ``proba_<class>`` column per class (float64, in ``classes_``
    order), so the whole distribution is kept for analysis (calibration, top-k) without
    scoring again.
    """
    out = frame[[ROW_ID, *keep]].reset_index(drop=True)
    task = predictor.meta.task
    columns: dict[str, np.ndarray] = {}
    if task == "classification":
        proba = np.asarray(predictor.predict_proba(frame), dtype=np.float64)
        known = getattr(predictor.model, "classes_", None)
        if proba.shape[1] == 2:
            score = proba[:, 1]
            classes = known if known is not None else np.array([0, 1])
            prediction = np.asarray(classes)[(score >= 0.5).astype(int)]
        else:
            classes = np.asarray(known) if known is not None else np.arange(proba.shape[1])
            # the most probable class, as predict() gives it, without a second pass
            prediction = classes[np.argmax(proba, axis=1)]
            score = proba.max(axis=1)
            columns = {f"proba_{label}": proba[:, k] for k, label in enumerate(classes.tolist())}
    else:
        prediction = np.asarray(predictor.predict(frame))
        if task == "regression":
            prediction = prediction.astype(np.float64)
        score = np.full(len(frame), np.nan)
    out["prediction"] = np.asarray(prediction)
    out["score"] = np.asarray(score, dtype=np.float64)
    for name, values in columns.items():
        out[name] = values
    out["model_name"] = predictor.name
    out["model_version"] = np.int64(predictor.version)
    return out


class _Scorer:
    """One pool actor: model and feature rows mapped once, then unit after unit.

    Each unit's predictions are written by the actor itself, to a file named after the
    unit's first row id (replaced atomically, on a local folder or S3), so a retried unit
    replaces its own file and the predictions never travel through the object store to
    separate write tasks.
    """

    def __init__(
        self, info: dict[str, Any], model_bytes: Any, features: Any,
        settings: dict[str, Any], keep: list[str], timestamp_column: str | None,
        columns: list[str] | None, staging: str, compiled: Any = None,
    ) -> None:
        import ray

        from raymlops.config import load_settings
        from raymlops.registry.client import predictor_from

        # Ray Data hands constructor args through unresolved: map the object-store copies.
        if isinstance(model_bytes, ray.ObjectRef):
            model_bytes = ray.get(model_bytes)
        if isinstance(features, ray.ObjectRef):
            features = ray.get(features)
        if isinstance(compiled, ray.ObjectRef):
            compiled = ray.get(compiled)
        self.predictor = predictor_from(info, model_bytes, load_settings(**settings),
                                        compiled=compiled)
        self.features = features
        self.keep = keep
        self.timestamp_column = timestamp_column
        self.columns = columns
        self.staging = Storage.open(staging)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        firsts, counts = [], []
        for i in range(len(batch["path"])):
            unit = {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in batch.items()}
            if unit["row_group"] is not None and unit["row_group"] != unit["row_group"]:  # NaN
                unit["row_group"] = None
            frame = read_unit(unit, self.columns)
            if self.features is not None:
                frame = self.features.join(frame, self.timestamp_column)
            scored = score_frame(self.predictor, frame, self.keep)
            sink = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), sink)
            # replaced atomically: a retried unit rewrites its own file, whole
            self.staging.write_bytes(_part_name(unit["first_row_id"]),
                                     sink.getvalue().to_pybytes())
            firsts.append(unit["first_row_id"])
            counts.append(len(scored))
        return {"first_row_id": np.asarray(firsts, dtype=np.int64), "rows": np.asarray(counts, dtype=np.int64)}


def _part_name(first_row_id: int) -> str:
    return f"part-{first_row_id:012d}.parquet"


def _publish(staging: Storage, output: Storage, overwrite: bool) -> None:
    """Make the verified staging folder the output.

    A local folder is renamed into place (readers never see half). S3 has no rename: the
    parts are copied to the output prefix and ``_manifest.json`` is written last, so an
    output is complete exactly when its manifest exists (one without it is what a publish
    killed midway left; ``overwrite`` replaces it)."""
    if output.exists() and not overwrite:
        raise ConflictError(f"output {output.uri} exists; pass overwrite to replace it",
                            path=output.uri)
    if output.is_local:
        target = output.local_path()
        if target.exists():
            trash = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(target, trash)
            os.replace(staging.local_path(), target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging.local_path(), target)
        return
    output.delete_tree()
    fs = output.filesystem
    for key in staging.list():
        if key != MANIFEST:
            fs.copy_file(staging.path(key), output.path(key))
    output.write_bytes(MANIFEST, staging.read_bytes(MANIFEST))
    staging.delete_tree()


def _verify_exactly_once(staging: Storage, units: list[Any]) -> None:
    """Exactly the planned files, each with its unit's row count, and nothing else.

    Ids are a function of the unit (``first_row_id + position``), units tile ``0..N-1``
    (by construction, unit-tested), and each unit has one file named after its first id:
    so one file per unit with the right count means every id exactly once. Parquet footers
    give the counts without reading the data.
    """
    import pyarrow.parquet as pq

    expected = {_part_name(u.first_row_id): u.rows for u in units}
    found = [key for key in staging.list() if "/" not in key]
    problems = sorted(set(found) ^ set(expected))
    for name in found:
        if name in expected:
            with staging.open_input(name) as source:
                if pq.ParquetFile(source).metadata.num_rows != expected[name]:
                    problems.append(name)
    if problems:
        raise RaymlopsError(
            f"batch output failed the exactly-once check ({len(problems)} files missing, extra or "
            f"of the wrong size, e.g. {problems[:3]}); nothing was published"
        )


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
    show_progress: bool = True,
) -> BatchResult:
    """Score every row of ``input_path`` with ``model`` (``NAME``, ``NAME@ALIAS`` or ``ref``).

    Writes Parquet under ``output_path`` with ``row_id`` (0-based position in the input, files
    in path order), ``keep_columns``, ``prediction``, ``score``, ``proba_<class>`` for a
    multi-class model (see :func:`score_frame`), ``model_name`` and ``model_version``, plus
    ``_manifest.json``. Needs a connected platform (``raymlops.init``).
    """
    import ray

    from raymlops.cluster import init
    from raymlops.features.client import FeatureStoreClient
    from raymlops.registry.client import RegistryClient

    started = time.perf_counter()
    settings = init(settings, start=False).settings
    name, version_ref = split_model_ref(model, default=ref if ref is not None else "champion")
    output = Storage.open(output_path)
    if output.exists() and not overwrite:
        raise ConflictError(f"output {output.uri} exists; pass overwrite to replace it",
                            path=output.uri)
    require_reachable(settings, {"input": str(input_path), "output": output.uri})
    units = plan_units(input_path, rows_per_unit)
    total = sum(u.rows for u in units)

    registry = RegistryClient.connect(settings)
    info, (model_ref,) = registry._call("model_ref", name, version_ref)
    # the compiled model, when it matched the original at registration (scores agree to 1e-5)
    compiled_ref = next(iter(registry._call("compiled_ref", name, int(info["version"]))), None)
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

    cluster_cpus = ray.cluster_resources().get("CPU", 1.0)
    workers = workers or max(1, min(len(units), int(cluster_cpus // cpus_per_worker) - 1, int(cluster_cpus)))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = show_progress
    parent, _, leaf = output.uri.rpartition("/")
    staging = Storage.open(f"{parent}/.{leaf}.staging-{uuid.uuid4().hex[:8]}")
    try:
        staging.ensure_folder()
        ds = ray.data.from_items([u.to_dict() for u in units], override_num_blocks=len(units))
        done = ds.map_batches(
            _Scorer,
            fn_constructor_args=(info, model_ref, features_ref, settings.model_dump(mode="json"),
                                 list(keep_columns), ts_col, columns, staging.uri, compiled_ref),
            batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker,
        )
        written = sum(int(b["rows"].sum()) for b in done.iter_batches(batch_size=None, batch_format="numpy"))
        if written != total:
            raise RaymlopsError(f"scored {written} rows of {total}; nothing was published")
        if staging.is_local:  # temp files of units whose actor was killed mid-write
            for leftover in staging.local_path().glob(".part-*"):
                leftover.unlink(missing_ok=True)
        _verify_exactly_once(staging, units)
        seconds = time.perf_counter() - started
        result = BatchResult(name, int(info["version"]), total, output.uri, seconds, len(units), service)
        staging.write_text(MANIFEST, json.dumps(
            {**result.to_dict(), "input": normalize_uri(input_path),
             "keep_columns": list(keep_columns), "finished_at": time.time()}, indent=2))
        _publish(staging, output, overwrite)
        return result
    except Exception as exc:
        staging.delete_tree()
        cause = _user_error(exc)
        if cause is not None:
            raise cause from None
        raise


def _check_columns(unit: Any, needed: list[str]) -> None:
    """Refuse input without the columns the model needs before starting any worker."""
    missing = [c for c in needed if c not in input_columns(unit)]
    if missing:
        raise SchemaMismatchError(f"the input lacks columns {missing} that the model needs",
                                  missing=missing)


def _user_error(exc: BaseException) -> RaymlopsError | None:
    """A typed error raised inside a worker (bad input, schema) surfaces as itself."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, RaymlopsError):
            return seen
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return None


def validate_keep(keep: str | None) -> list[str]:
    cols = [c.strip() for c in (keep or "").split(",") if c.strip()]
    if ROW_ID in cols:
        raise ValidationError(f"{ROW_ID} is always in the output; do not keep it", field="keep")
    return cols
