"""Batch-prediction input: files -> numbered units of work, each readable on its own.

Exactly-once output needs a row id that does not depend on which worker read a row or how
often it was retried. So the input is cut, before anything runs, into *units* (a Parquet row
group or a slice of one; a whole CSV file) that know their first row id: the number of rows
before them, over the files in sorted path order. A unit read twice yields the same rows with
the same ids, so a retried task can only rewrite what it wrote before, and the final check
(every id ``0..N-1`` exactly once) proves the output complete.

Pure pyarrow/pandas (no Ray): tested on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from raymlops.exceptions import DatasetNotFoundError, ValidationError

__all__ = ["ROW_ID", "InputUnit", "list_input_files", "plan_units", "read_unit"]

ROW_ID = "row_id"
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class InputUnit:
    """Rows ``[start, stop)`` of one row group (Parquet) or of one file (CSV)."""

    path: str
    fmt: str
    row_group: int | None
    start: int
    stop: int
    first_row_id: int

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_input_files(path: str | Path) -> tuple[list[Path], str]:
    """A file, or every Parquet/CSV file under a folder (sorted; hidden and ``_`` files skipped)."""
    root = Path(path)
    if not root.exists():
        raise DatasetNotFoundError(f"input {root} does not exist", path=str(root))
    if root.is_file():
        files = [root]
    else:
        files = sorted(
            p for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in FORMATS
            and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
        )
    if not files:
        raise ValidationError(f"no Parquet or CSV files in {root}", field="input")
    kinds = {FORMATS.get(p.suffix.lower()) for p in files}
    if None in kinds:
        raise ValidationError(f"{root} is neither Parquet (.parquet) nor CSV (.csv)", field="input")
    if len(kinds) > 1:
        raise ValidationError(f"{root} mixes Parquet and CSV files; use one format", field="input")
    return files, kinds.pop()  # type: ignore[return-value]


def _csv_rows(path: Path) -> int:
    """Rows of a CSV, counted by parsing one column (quoted newlines counted right)."""
    reader = pacsv.open_csv(path)
    first = reader.schema.names[0]
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=[first]))
    return table.num_rows


def plan_units(path: str | Path, rows_per_unit: int = 200_000) -> list[InputUnit]:
    """Cut the input into units of at most ``rows_per_unit`` rows (CSV: one per file).

    Row groups larger than that are sliced, which re-reads the row group once per slice:
    cheap next to predicting on it, and it keeps every worker busy on a file written as
    one big row group.
    """
    if rows_per_unit < 1:
        raise ValidationError("rows_per_unit must be >= 1", field="rows_per_unit")
    files, fmt = list_input_files(path)
    units: list[InputUnit] = []
    offset = 0
    for file in files:
        if fmt == "csv":
            n = _csv_rows(file)
            if n:
                units.append(InputUnit(str(file), fmt, None, 0, n, offset))
            offset += n
            continue
        try:
            meta = pq.ParquetFile(file).metadata
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValidationError(f"{file} is not a readable Parquet file: {exc}", field="input") from None
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            for start in range(0, n, rows_per_unit):
                stop = min(n, start + rows_per_unit)
                units.append(InputUnit(str(file), fmt, rg, start, stop, offset + start))
            offset += n
    if offset == 0:
        raise ValidationError(f"the input {path} has no rows", field="input")
    return units


def read_unit(unit: InputUnit | dict[str, Any], columns: list[str] | None = None) -> pd.DataFrame:
    """The unit's rows with their ``row_id`` (a retried read gives the same ids)."""
    if isinstance(unit, dict):
        unit = InputUnit(**unit)
    if unit.fmt == "parquet":
        table = pq.ParquetFile(unit.path).read_row_group(unit.row_group or 0, columns=columns)
    else:
        options = pacsv.ConvertOptions(include_columns=columns) if columns else None
        table = pacsv.read_csv(unit.path, convert_options=options)
    table = table.slice(unit.start, unit.rows)
    frame = table.to_pandas()
    if ROW_ID in frame.columns:
        raise ValidationError(f"the input has a column named {ROW_ID!r}, which the output uses",
                              field=ROW_ID)
    frame.insert(0, ROW_ID, np.arange(unit.first_row_id, unit.first_row_id + len(frame), dtype=np.int64))
    return frame
