"""Read a spec's label source (Parquet, CSV, a folder of them, or SQL) into checked rows.

The rows that come back have a timezone-aware event time (as UTC), a non-null label and
every column the spec names, sorted by time. What cannot be trusted is refused before any
training starts, with a typed error naming the column: a column missing, a label column with
no value at all, a timestamp without a time zone (a naive time would be read as UTC here and
as local time somewhere else, shifting every period and point-in-time join).
Rows whose label is still null have not "arrived" and are left out.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from raymlops.exceptions import ConfigError, DatasetNotFoundError, SchemaMismatchError, ValidationError

__all__ = ["read_labels", "required_columns"]


def required_columns(spec: Any) -> list[str]:
    """Columns the label source must have: time, label, entity keys, input columns."""
    lab = spec.labels
    return list(dict.fromkeys([lab.timestamp, lab.label, *lab.entity_keys, *spec.features.columns]))


def read_labels(spec: Any) -> pd.DataFrame:
    """Every labelled row of the spec's source, checked and sorted by event time."""
    lab = spec.labels
    frame = _read_sql(lab.sql.url, lab.sql.query) if lab.sql is not None else _read_files(spec.resolve(lab.path))
    missing = [c for c in required_columns(spec) if c not in frame.columns]
    if missing:
        raise SchemaMismatchError(f"the label source has no column(s) {missing}; it has {list(frame.columns)}",
                                  missing=missing, field="labels")
    frame = frame[required_columns(spec)].copy()
    frame[lab.timestamp] = _utc(frame[lab.timestamp], lab.timestamp)
    if frame[lab.timestamp].isna().any():
        raise ValidationError(f"timestamp column {lab.timestamp!r} has {int(frame[lab.timestamp].isna().sum())} "
                              "empty values", field="labels.timestamp")
    labelled = frame[frame[lab.label].notna()]
    if labelled.empty and len(frame):
        raise ValidationError(f"label column {lab.label!r} has no value in any of its {len(frame)} rows",
                              field="labels.label")
    return labelled.sort_values(lab.timestamp, kind="stable").reset_index(drop=True)


def _utc(values: pd.Series, column: str) -> pd.Series:
    """The column as UTC instants; a time without a zone is refused, not guessed."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        if pd.api.types.is_numeric_dtype(values):
            raise ValidationError(f"timestamp column {column!r} holds numbers, not times", field="labels.timestamp")
        try:
            values = pd.to_datetime(values, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"timestamp column {column!r} is not parseable as times: {exc}",
                                  field="labels.timestamp") from None
    if getattr(values.dt, "tz", None) is None:
        raise ValidationError(
            f"timestamp column {column!r} has no time zone; store timezone-aware times (e.g. "
            "2013-01-01T05:00:00Z or Parquet timestamp with tz) so periods and point-in-time joins "
            "cut where you mean", field="labels.timestamp")
    return values.dt.tz_convert("UTC")


def _read_files(location: str) -> pd.DataFrame:
    """A label file or a folder of them (Hive partitions become columns), local or s3://."""
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from raymlops.storage import filesystem_of

    fs, path = filesystem_of(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise DatasetNotFoundError(f"label source {location} does not exist", field="labels.path")
    if info.type == pafs.FileType.File:
        kind = _kind(path)
        if kind == "csv":
            with fs.open_input_stream(path) as stream:
                return pacsv.read_csv(stream).to_pandas()
        return ds.dataset(path, format="parquet", filesystem=fs).to_table().to_pandas()
    base = path.rstrip("/") + "/"
    files = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                   if i.type == pafs.FileType.File
                   and not any(p.startswith((".", "_")) for p in i.path[len(base):].split("/")))
    kinds = {_kind(p) for p in files}
    if not files:
        raise DatasetNotFoundError(f"label folder {location} holds no Parquet or CSV file", field="labels.path")
    if len(kinds) > 1:
        raise ConfigError(f"label folder {location} mixes Parquet and CSV files", field="labels.path")
    return ds.dataset(files, format=kinds.pop(), filesystem=fs,
                      partitioning=ds.HivePartitioning.discover(),
                      partition_base_dir=path).to_table().to_pandas()


def _kind(path: str) -> str:
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise ConfigError(f"{path}: label files must be .parquet or .csv", field="labels.path")


def _read_sql(url: str, query: str) -> pd.DataFrame:
    from pandas.errors import DatabaseError
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        engine = create_engine(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"labels.sql.url is not a SQLAlchemy URL: {exc}", field="labels.sql.url") from None
    try:
        with engine.connect() as connection:
            return pd.read_sql(text(query), connection)
    except (SQLAlchemyError, DatabaseError) as exc:
        raise ValidationError(f"the label query failed: {str(exc).splitlines()[0]}",
                              field="labels.sql.query") from None
    finally:
        engine.dispose()
