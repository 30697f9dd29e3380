"""The prediction log: every request's inputs, outputs, version and latency, as Parquet.

Why Parquet under the storage root: it is the "current" data that drift detection compares to
training data and that labels are joined to later, and both read it with Ray Data / pyarrow.
Rows are the model's input columns as they were predicted on (after feature enrichment, so the
drift job sees what the model saw) plus ``_``-prefixed columns: ``_ts`` (UTC),
``_request_id``, ``_model``, ``_version``, ``_latency_ms``, ``_prediction``.

Off the request path: ``record`` appends to a list under a lock (microseconds); a background
thread writes a file every ``flush_s`` seconds (or sooner when ``max_pending_rows`` pile up),
atomically (see :meth:`raymlops.storage.Storage.write_bytes`: a local folder or S3, so the log
of replicas on every node lands in one place), one file per flush and version:
``predictions/<model>/date=YYYY-MM-DD/<writer>-<seq>.parquet`` under the storage root. A failed write is
counted and logged, never raised into a request.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raymlops.serving.columns import Prepared
from raymlops.storage import Storage

__all__ = ["PredictionLog", "prediction_log_dir"]

logger = logging.getLogger(__name__)


def prediction_log_dir(storage_root: Path | str, model: str) -> str:
    """Where the prediction log of ``model`` lives (one folder per model, date partitions):
    a path for a local root, an ``s3://`` URI otherwise."""
    return Storage.open(storage_root).uri_of("predictions", model)


class PredictionLog:
    """Buffers records in memory and writes them as Parquet from a background thread."""

    def __init__(
        self, storage_root: Path | str, model: str, writer_id: str,
        flush_s: float = 2.0, max_pending_rows: int = 50_000,
    ) -> None:
        self.storage = Storage.open(storage_root).child("predictions", model)
        self.model = model
        self.writer_id = writer_id
        self.flush_s = flush_s
        self.max_pending_rows = max_pending_rows
        self._pending: list[tuple[pd.DataFrame, np.ndarray, int, float, str, float]] = []
        self._pending_rows = 0
        self._lock = threading.Lock()  # guards the pending list: held for microseconds
        # held for a whole flush, so a flush returns only once every row recorded before it
        # is on disk, even rows the timer thread took a moment earlier and is still writing
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._seq = 0
        self.rows_written = 0
        self.files_written = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"prediction-log-{model}")

    def start(self) -> PredictionLog:
        self._thread.start()
        return self

    def record(self, frame: pd.DataFrame | Prepared, predictions: np.ndarray, version: int,
               latency_ms: float, request_id: str) -> None:
        """Queue one request's rows; never blocks on I/O."""
        with self._lock:
            self._pending.append((frame, predictions, version, latency_ms, request_id,
                                  time.time()))
            self._pending_rows += len(frame)
            full = self._pending_rows >= self.max_pending_rows
        if full:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is pending (a replica shutting down loses nothing)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()

    def flush(self) -> list[str]:
        """Write what is pending; on return, every row recorded before the call is on disk.

        Why the flush lock: without it, a caller's flush that found the list empty because the
        timer thread had just taken it returned before that thread's file existed, and a reader
        right after (a test, a drift job after ``flush_log``) missed those rows.
        """
        with self._flush_lock:
            return self._flush_pending()

    def _flush_pending(self) -> list[str]:
        with self._lock:
            pending, self._pending, self._pending_rows = self._pending, [], 0
        if not pending:
            return []
        by_version: dict[int, list[Any]] = {}
        for item in pending:
            by_version.setdefault(item[2], []).append(item)
        written = []
        for version, items in by_version.items():
            try:
                written.append(self._write(version, items))
            except Exception:
                self.failures += 1
                logger.exception("prediction log: could not write %d requests", len(items))
        return written

    def _write(self, version: int, items: list[Any]) -> str:
        import pyarrow as pa
        import pyarrow.parquet as pq

        frames = []
        for frame, predictions, _v, latency_ms, request_id, ts in items:
            # a request that took the hot path is made a frame here, off the request path
            part = frame.to_frame() if isinstance(frame, Prepared) else frame.reset_index(drop=True).copy()
            part["_ts"] = pd.Timestamp(ts, unit="s", tz="UTC")
            part["_request_id"] = request_id
            part["_model"] = self.model
            part["_version"] = version
            part["_latency_ms"] = latency_ms
            part["_prediction"] = np.asarray(predictions).reshape(len(part), -1)[:, 0]
            frames.append(part)
        table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
        day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        self._seq += 1
        key = f"date={day}/{self.writer_id}-{int(time.time() * 1000)}-{self._seq:06d}.parquet"
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        # Atomic on both backends: readers (drift over the log) never see half a file.
        self.storage.write_bytes(key, buffer.getvalue().to_pybytes())
        self.rows_written += table.num_rows
        self.files_written += 1
        return self.storage.uri_of(key)
