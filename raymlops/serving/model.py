"""The model server: one loaded version per replica, batched, hot-swapped on alias moves.

It runs inside the ingress replica (the default, ``colocate``) or as its own ``Model`` /
``Canary`` / ``Shadow`` deployment; the code is the same either way.

Request path: ``predict(frame)`` validates the frame against the version the replica holds
*now* (422s are per request, so one bad request never fails a batch), then awaits the
``@serve.batch`` method, which groups the requests of a batch by the version they were
validated against and predicts each group in one call. A request therefore always gets an
answer from the version whose signature it passed, even while the alias moves.

Hot swap: a replica following an alias runs :meth:`RegistryClient.watch` (a long-poll on the
registry actor, pushed within milliseconds of the move). On a move it loads the new version
from the object store in the watch thread, off the request path, then swaps one reference.
Requests in flight finish on the old version; nothing is dropped or failed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from ray import serve

from raymlops.config import load_settings
from raymlops.exceptions import RaymlopsError, ValidationError
from raymlops.registry.names import parse_ref
from raymlops.serving.columns import Prepared
from raymlops.serving.metrics import ServingMetrics
from raymlops.serving.options import DeploymentOptions
from raymlops.serving.predlog import PredictionLog
from raymlops.serving.version import LoadedVersion, load_version

__all__ = ["ModelServer"]

logger = logging.getLogger("ray.serve")


@dataclass
class _Item:
    frame: pd.DataFrame | Prepared
    proba: bool
    state: LoadedVersion


def _concat(frames: list[pd.DataFrame | Prepared]) -> pd.DataFrame | Prepared:
    """One input of a batch's requests: columns when all took the hot path, else a frame."""
    if len(frames) == 1:
        return frames[0]
    if all(isinstance(f, Prepared) for f in frames):
        return Prepared.concat(frames)  # type: ignore[arg-type]
    return pd.concat([f.to_frame() if isinstance(f, Prepared) else f for f in frames], ignore_index=True)


def _model_error(exc: Exception, state: LoadedVersion) -> RaymlopsError:
    """A model that raises on validated input: the input's fault as far as HTTP goes (422)."""
    if isinstance(exc, RaymlopsError):
        return exc
    return ValidationError(
        f"model {state.predictor.name} v{state.version} could not predict on this input: "
        f"{type(exc).__name__}: {exc}", field="inputs")


class ModelServer:
    """Serve deployment class (decorated in :mod:`raymlops.serving.app`)."""

    def __init__(self, name: str, ref: int | str, settings: dict[str, Any],
                 options: dict[str, Any]) -> None:
        import ray

        from raymlops.registry.client import REGISTRY_ACTOR, RegistryClient

        self.name = name
        self.ref = parse_ref(ref)
        self.settings = load_settings(**{k: v for k, v in settings.items() if v is not None})
        self.options = DeploymentOptions(**options)
        self.registry = RegistryClient(
            ray.get_actor(REGISTRY_ACTOR, namespace=self.settings.namespace), self.settings)
        self.metrics = ServingMetrics(name)
        self.swaps = 0
        self._active = 0  # requests inside predict() now (validation to answer)
        self.last_error: str | None = None
        self._swap_lock = threading.Lock()
        self.threads = max(1, int(self.options.model_num_cpus))  # ONNX Runtime's, per replica
        self._state = load_version(self.registry, name, self.ref, self.settings, self.threads)
        self.metrics.serving(self._state.version)
        self._predict_batch.set_max_batch_size(self.options.max_batch_size)
        self._predict_batch.set_batch_wait_timeout_s(self.options.batch_wait_timeout_s)
        writer = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.log = (PredictionLog(self.settings.storage_root, name, writer,
                                  flush_s=self.options.log_flush_s).start()
                    if self.options.log_predictions else None)
        self._watch = None
        if isinstance(self.ref, str):
            self._watch = self.registry.watch(name, self.ref, self._on_alias_moved, poll_s=10.0)
            # the alias may have moved between our load and the watch's first resolve
            if self._watch.version is not None and self._watch.version != self._state.version:
                self._on_alias_moved(self._watch.version)

    # -- hot swap ---------------------------------------------------------------------------

    def _on_alias_moved(self, version: int | None) -> None:
        """Watch thread: load the new version, then swap (the old one serves meanwhile)."""
        if version is None:
            self.last_error = f"alias {self.ref!r} was removed; still serving v{self.version}"
            logger.warning("%s: %s", self.name, self.last_error)
            return
        with self._swap_lock:
            if version == self._state.version:
                return
            try:
                new = load_version(self.registry, self.name, version, self.settings, self.threads)
            except Exception as exc:
                self.last_error = f"could not load v{version}: {type(exc).__name__}: {exc}"
                logger.exception("%s: hot swap to v%s failed", self.name, version)
                return
            old, self._state = self._state, new
            self.swaps += 1
            self.last_error = None
            self.metrics.serving(new.version, previous=old.version)
        logger.info("%s: now serving v%s (was v%s)", self.name, new.version, old.version)
        old.close()

    @property
    def version(self) -> int:
        return self._state.version

    # -- requests ---------------------------------------------------------------------------

    async def predict(self, frame: pd.DataFrame, proba: bool = False,
                      request_id: str = "") -> dict[str, Any]:
        """Validated, batched prediction; raises typed errors (the ingress maps them to 4xx)."""
        started = time.perf_counter()
        state = self._state
        try:
            checked = state.prepare(frame)
        except RaymlopsError as exc:  # say whose signature refused it
            exc.context.setdefault("version", state.version)
            raise
        self._active += 1
        try:
            # Let requests that arrived together enter first (one loop turn), then: alone in
            # this replica -> nothing to batch with, skip the batch queue and its task hops;
            # several -> batch them.
            await asyncio.sleep(0)
            if self._active == 1:
                result = self._predict_now(state, checked, proba)
            else:
                result = await self._predict_batch(_Item(checked, proba, state))
        finally:
            self._active -= 1
        if isinstance(result, Exception):
            if isinstance(result, RaymlopsError):
                result.context.setdefault("version", state.version)
            raise result
        if self.log is not None:
            self.log.record(checked, result["predictions"], result["version"],
                            (time.perf_counter() - started) * 1000, request_id)
        return result

    def _predict_now(self, state: LoadedVersion, frame: pd.DataFrame,
                     proba: bool) -> dict[str, Any] | Exception:
        self.metrics.batch(state.version, 1)
        try:
            return self._result(state, *state.predict(frame, proba))
        except Exception as exc:  # noqa: BLE001 - same answer as the batched path
            return _model_error(exc, state)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _predict_batch(self, items: list[_Item]) -> list[dict[str, Any] | Exception]:
        out: list[dict[str, Any] | Exception | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(id(item.state), []).append(i)
        for positions in groups.values():
            state = items[positions[0]].state
            self.metrics.batch(state.version, len(positions))
            frames = [items[i].frame for i in positions]
            want_proba = any(items[i].proba for i in positions)
            try:
                big = _concat(frames)
                predictions, probabilities = state.predict(big, want_proba)
            except Exception:  # noqa: BLE001 - find the request at fault, answer the rest
                for i in positions:
                    try:
                        p, q = state.predict(items[i].frame, items[i].proba)
                        out[i] = self._result(state, p, q)
                    except Exception as exc:  # noqa: BLE001
                        out[i] = _model_error(exc, state)
                continue
            start = 0
            for i, frame in zip(positions, frames, strict=True):
                stop = start + len(frame)
                q = probabilities[start:stop] if probabilities is not None and items[i].proba \
                    else None
                out[i] = self._result(state, predictions[start:stop], q)
                start = stop
        return out  # type: ignore[return-value]

    @staticmethod
    def _result(state: LoadedVersion, predictions: np.ndarray,
                probabilities: np.ndarray | None) -> dict[str, Any]:
        return {"version": state.version, "predictions": predictions,
                "proba": probabilities, "classes": state.classes if probabilities is not None
                else None}

    # -- introspection ----------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {**self._state.describe(), "ref": self.ref}

    def stats(self) -> dict[str, Any]:
        log = self.log
        return {
            "version": self.version, "ref": self.ref, "swaps": self.swaps,
            "last_error": self.last_error, "metrics": self.metrics.snapshot(),
            "log": {"rows": log.rows_written, "files": log.files_written,
                    "failures": log.failures} if log else None,
            "pid": os.getpid(),
        }

    def flush_log(self) -> int:
        """Write the pending prediction log now (tests, graceful shutdown); files written."""
        return len(self.log.flush()) if self.log else 0

    def check_health(self) -> None:
        """Serve's health check: a replica whose alias watch died would serve stale versions."""
        if self._watch is not None and not self._watch._thread.is_alive():
            raise RuntimeError(f"{self.name}: the alias watch thread stopped")

    def __del__(self) -> None:
        watch = getattr(self, "_watch", None)
        if watch is not None:
            watch.stop()
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
        state = getattr(self, "_state", None)
        if state is not None:
            metrics = getattr(self, "metrics", None)
            if metrics is not None and not getattr(self, "_stopped", False):
                self._stopped = True  # Serve calls __del__ on shutdown, Python may again
                metrics.stopped(state.version)
            state.close()
