"""The scoring actor of batch prediction's warm pools (see :mod:`raymlops.serving.scoring_pool`).

One actor holds one model version, mapped once; each call scores one planned input unit of
one job and writes its part file itself, so predictions never travel through the object store.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import ray

from raymlops.serving.scoring import score_frame
from raymlops.tabular_input import part_name, read_unit

__all__ = ["IdleTimer", "Scorer", "score_unit"]


def score_unit(predictor: Any, features: Any, unit: dict[str, Any], job: dict[str, Any],
               staging: Any) -> int:
    """Read ``unit``, join its features, score it and write its part file; rows written.

    The part is named after the unit's first row id and replaced atomically, so a unit
    scored again (its actor died) rewrites its own file, whole.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = read_unit(unit, job["columns"])
    if features is not None:
        frame = features.join(frame, job["timestamp_column"])
    scored = score_frame(predictor, frame, job["keep"])
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), sink)
    staging.write_bytes(part_name(unit["first_row_id"]), sink.getvalue().to_pybytes())
    return len(scored)


class IdleTimer:
    """Calls ``expire`` once nothing was used for ``idle_s`` seconds (0: never)."""

    def __init__(self, idle_s: float, expire: Any) -> None:
        self.idle_s = idle_s
        self.last_used = time.monotonic()
        self.busy = 0
        self._lock = threading.Lock()
        self._expire = expire
        if idle_s > 0:
            threading.Thread(target=self._watch, name="scoring-pool-idle", daemon=True).start()

    def __enter__(self) -> IdleTimer:
        with self._lock:
            self.busy += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.busy -= 1
            self.last_used = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self.busy else time.monotonic() - self.last_used

    def expired(self) -> bool:
        return self.idle_s > 0 and self.idle_for() >= self.idle_s

    def _watch(self) -> None:
        while True:
            wait = self.idle_s - self.idle_for()
            if wait <= 0:
                self._expire()
                wait = self.idle_s  # asked; if work came in meanwhile, look again later
            time.sleep(max(wait, 0.05))


@ray.remote(max_concurrency=1, concurrency_groups={"control": 1})
class Scorer:
    """A pool actor: :meth:`score` runs one unit at a time; the ``control`` methods answer
    even while a unit is being scored."""

    def __init__(self, info: dict[str, Any], model_ref: Any, settings: dict[str, Any],
                 compiled_ref: Any, idle_s: float) -> None:
        from threadpoolctl import threadpool_limits

        from raymlops.config import load_settings
        from raymlops.registry.client import predictor_from

        # One thread per actor, as when each held half a CPU (Ray then set OMP_NUM_THREADS=1):
        # the job's CPUs are counted by its reservation, and actors, not threads, spread it.
        threadpool_limits(1)
        model_bytes = ray.get(model_ref) if isinstance(model_ref, ray.ObjectRef) else model_ref
        compiled = (ray.get(compiled_ref) if isinstance(compiled_ref, ray.ObjectRef)
                    else compiled_ref)
        # the original loads only if the compiled model cannot answer alone (skops would
        # import all of scikit-learn: ~1.7 s of a cold start)
        self.predictor = predictor_from(info, model_bytes, load_settings(**settings),
                                        compiled=compiled, defer_original=True)
        self.units = 0
        self.rows = 0
        self.retiring = False
        self._features: tuple[str | None, Any] = (None, None)
        self._staging: tuple[str | None, Any] = (None, None)
        self._self = ray.get_runtime_context().current_actor
        self.timer = IdleTimer(idle_s, lambda: self._self.expire.remote())

    def score(self, job: dict[str, Any], unit: dict[str, Any]) -> tuple[int, int]:
        """Score one unit of ``job``; (its first row id, rows written)."""
        try:
            with self.timer:
                rows = score_unit(self.predictor, self._features_of(job), unit, job,
                                  self._staging_of(job["staging"]))
                self.units += 1
                self.rows += rows
                return int(unit["first_row_id"]), rows
        finally:
            if self.retiring:
                self._self.retire.remote()

    def _features_of(self, job: dict[str, Any]) -> Any:
        """The job's feature rows, fetched once per job (``job["features"]``: [ref] or [])."""
        if not job["features"]:
            return None
        (ref,) = job["features"]
        if self._features[0] != ref.hex():
            self._features = (None, None)  # drop the last job's rows before fetching these
            self._features = (ref.hex(), ray.get(ref))
        return self._features[1]

    def _staging_of(self, uri: str) -> Any:
        from raymlops.storage import Storage

        if self._staging[0] != uri:
            self._staging = (uri, Storage.open(uri))
        return self._staging[1]

    @ray.method(concurrency_group="control")
    def describe(self) -> dict[str, Any]:
        return {"state": "scoring" if self.timer.busy else "idle",
                "idle_s": round(self.timer.idle_for(), 1), "units": self.units,
                "rows": self.rows, "idle_timeout_s": self.timer.idle_s, "pid": os.getpid(),
                "node": ray.get_runtime_context().get_node_id(),
                "compiled": self.predictor.compiled is not None}

    @ray.method(concurrency_group="control")
    def expire(self) -> None:
        """Asked by the idle timer: end this actor if it is still idle past its timeout."""
        if self.timer.expired():
            ray.actor.exit_actor()

    @ray.method(concurrency_group="control")
    def retire(self) -> None:
        """End this actor once its current unit (if any) is written."""
        self.retiring = True
        if not self.timer.busy:
            ray.actor.exit_actor()

