"""Tabular input (batch prediction, retrieval to files): files -> numbered units of work,
each readable on its own, and the part files written per unit.

Exactly-once output needs a row id that does not depend on which worker read a row or how
often it was retried. So the input is cut, before anything runs, into *units* (a Parquet row
group or a slice of one; a whole CSV file) that know their first row id: the number of rows
before them, over the files in sorted path order. A unit read twice yields the same rows with
the same ids, so a retried task can only rewrite what it wrote before, and the final check
(every id ``0..N-1`` exactly once) proves the output complete.

The input is a local path or an ``s3://`` URI (see :mod:`raymlops.storage`). Pure
pyarrow/pandas (no Ray): tested on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raymlops.exceptions import DatasetNotFoundError, ValidationError
from raymlops.storage import filesystem_of, is_remote_uri, normalize_uri

__all__ = ["ROW_ID", "InputUnit", "input_columns", "list_input_files", "part_name", "plan_units",
           "read_unit", "verify_parts"]

ROW_ID = "row_id"
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class InputUnit:
    """Rows ``[start, stop)`` of one row group (Parquet) or of one file (CSV)."""

    path: str  # a local path or an s3:// URI: what a worker on any node opens
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


def list_input_files(path: str | Path) -> tuple[list[str], str]:
    """A file, or every Parquet/CSV file under a folder (sorted; hidden and ``_`` files
    skipped), as local paths or ``s3://`` URIs, and their one format."""
    fs, base = filesystem_of(path)
    shown = str(path)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.File:
        names = [base]
    else:
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        prefix = base.rstrip("/") + "/"
        names = sorted(
            i.path for i in fs.get_file_info(selector)
            if i.type == pafs.FileType.File and _suffix(i.path) in FORMATS
            and not any(part.startswith((".", "_")) for part in i.path[len(prefix):].split("/"))
        )
        if not names and info.type == pafs.FileType.NotFound:
            raise DatasetNotFoundError(f"input {shown} does not exist", path=shown)
    if not names:
        raise ValidationError(f"no Parquet or CSV files in {shown}", field="input")
    kinds = {FORMATS.get(_suffix(n)) for n in names}
    if None in kinds:
        raise ValidationError(f"{shown} is neither Parquet (.parquet) nor CSV (.csv)", field="input")
    if len(kinds) > 1:
        raise ValidationError(f"{shown} mixes Parquet and CSV files; use one format", field="input")
    remote = is_remote_uri(normalize_uri(path))
    return [f"s3://{n}" if remote else n for n in names], kinds.pop()  # type: ignore[return-value]


def _suffix(name: str) -> str:
    tail = name.rsplit("/", 1)[-1]
    return "." + tail.rsplit(".", 1)[-1].lower() if "." in tail else ""


def _open(uri: str) -> Any:
    fs, path = filesystem_of(uri)
    return fs.open_input_file(path)


def _csv_rows(path: str) -> int:
    """Rows of a CSV, counted by parsing one column (quoted newlines counted right)."""
    with _open(path) as source:
        first = pacsv.open_csv(source).schema.names[0]
    with _open(path) as source:
        table = pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(include_columns=[first]))
    return table.num_rows


def input_columns(unit: InputUnit) -> list[str]:
    """The column names of a unit's file (its footer or header only)."""
    with _open(unit.path) as source:
        if unit.fmt == "parquet":
            return pq.ParquetFile(source).schema_arrow.names
        return pacsv.open_csv(source).schema.names


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
                units.append(InputUnit(file, fmt, None, 0, n, offset))
            offset += n
            continue
        try:
            with _open(file) as source:
                meta = pq.ParquetFile(source).metadata
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValidationError(f"{file} is not a readable Parquet file: {exc}", field="input") from None
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            for start in range(0, n, rows_per_unit):
                stop = min(n, start + rows_per_unit)
                units.append(InputUnit(file, fmt, rg, start, stop, offset + start))
            offset += n
    if offset == 0:
        raise ValidationError(f"the input {path} has no rows", field="input")
    return units


def read_unit(unit: InputUnit | dict[str, Any], columns: list[str] | None = None,
              with_row_id: bool = True) -> pd.DataFrame:
    """The unit's rows, with their ``row_id`` first (a retried read gives the same ids)."""
    if isinstance(unit, dict):
        if unit.get("row_group") is not None and unit["row_group"] != unit["row_group"]:
            unit = {**unit, "row_group": None}  # NaN: a CSV unit that passed through a table
        unit = InputUnit(**unit)
    with _open(unit.path) as source:
        if unit.fmt == "parquet":
            table = pq.ParquetFile(source).read_row_group(unit.row_group or 0, columns=columns)
        else:
            options = pacsv.ConvertOptions(include_columns=columns) if columns else None
            table = pacsv.read_csv(source, convert_options=options)
    table = table.slice(unit.start, unit.rows)
    frame = table.to_pandas()
    if not with_row_id:
        return frame
    if ROW_ID in frame.columns:
        raise ValidationError(f"the input has a column named {ROW_ID!r}, which the output uses",
                              field=ROW_ID)
    frame.insert(0, ROW_ID, np.arange(unit.first_row_id, unit.first_row_id + len(frame), dtype=np.int64))
    return frame


def part_name(first_row_id: int) -> str:
    """The part file of the unit whose first row id this is (sorted names = input order)."""
    return f"part-{first_row_id:012d}.parquet"


def verify_parts(staging: Any, units: list[InputUnit], what: str) -> None:
    """Exactly the planned part files in ``staging`` (a Storage), each with its unit's row
    count, and nothing else; else a RaymlopsError saying nothing of ``what`` was published.

    Units tile the row ids ``0..N-1`` (by construction, unit-tested) and each has one file
    named after its first id: so one file per unit with the right count means every row
    exactly once. Parquet footers give the counts without reading the data.
    """
    from raymlops.exceptions import RaymlopsError

    expected = {part_name(u.first_row_id): u.rows for u in units}
    found = [key for key in staging.list() if "/" not in key and not key.startswith("_")]
    problems = sorted(set(found) ^ set(expected))
    for name in found:
        if name in expected:
            with staging.open_input(name) as source:
                if pq.ParquetFile(source).metadata.num_rows != expected[name]:
                    problems.append(name)
    if problems:
        raise RaymlopsError(
            f"{what} output failed the exactly-once check ({len(problems)} files missing, extra "
            f"or of the wrong size, e.g. {problems[:3]}); nothing was published")
