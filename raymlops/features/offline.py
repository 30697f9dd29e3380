"""Offline store: feature rows as Parquet, partitioned by event date, validated before writing.

Layout: ``<storage_root>/offline/<view>/v<version>/date=YYYY-MM-DD/part-<uuid>.parquet``.
A view's version is part of the path, so a schema change (new version) never mixes its rows
with the old ones. ``ingest`` checks everything first (columns present, dtypes compatible,
no null join keys, UTC event times) and raises a typed error having written nothing; each
partition file is written to a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from raymlops.exceptions import SchemaMismatchError, ValidationError
from raymlops.features.definitions import DType, Entity, FeatureView

__all__ = ["OfflineStore", "arrow_type", "view_schema"]

_ARROW: dict[str, pa.DataType] = {
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_type(dtype: DType) -> pa.DataType:
    return _ARROW[dtype]


def view_schema(view: FeatureView, entity: Entity) -> pa.Schema:
    """The exact Arrow schema rows of ``view`` are stored with."""
    fields = [pa.field(k, arrow_type(t)) for k, t in entity.join_keys.items()]
    fields.append(pa.field(view.event_timestamp, _ARROW["timestamp"]))
    if view.created_timestamp:
        fields.append(pa.field(view.created_timestamp, _ARROW["timestamp"]))
    fields += [pa.field(f.name, arrow_type(f.dtype)) for f in view.features]
    return pa.schema(fields)


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Safe widenings only: int -> wider int / float, float32 -> float64, any tz-aware ts."""
    if actual.equals(expected) or pa.types.is_null(actual):
        return True
    if pa.types.is_integer(actual) and (pa.types.is_integer(expected) or pa.types.is_floating(expected)):
        return not pa.types.is_integer(expected) or actual.bit_width <= expected.bit_width
    if pa.types.is_floating(actual) and pa.types.is_floating(expected):
        return actual.bit_width <= expected.bit_width
    if pa.types.is_timestamp(actual) and pa.types.is_timestamp(expected):
        return actual.tz is not None
    if pa.types.is_large_string(actual) and pa.types.is_string(expected):
        return True
    return False


def validate_rows(table: pa.Table, view: FeatureView, entity: Entity) -> pa.Table:
    """Raise a typed error naming the first problem, else return the table cast to the schema."""
    schema = view_schema(view, entity)
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaMismatchError(
            f"rows for view {view.name!r} lack columns {missing}", view=view.name, missing=missing
        )
    for field in schema:
        actual = table.schema.field(field.name).type
        if not _compatible(actual, field.type):
            hint = " (event times must be timezone-aware UTC)" if pa.types.is_timestamp(field.type) else ""
            raise SchemaMismatchError(
                f"column {field.name!r} of view {view.name!r} is {actual}, expected {field.type}{hint}",
                view=view.name, column=field.name,
            )
    for key in [*entity.join_keys, view.event_timestamp]:
        nulls = table.column(key).null_count
        if nulls:
            raise ValidationError(
                f"column {key!r} of view {view.name!r} has {nulls} null values; join keys and "
                "event times must be set on every row",
                view=view.name, column=key,
            )
    return table.select(schema.names).cast(schema)


class OfflineStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def view_dir(self, view: str, version: int) -> Path:
        return self.root / view / f"v{version}"

    def ingest(
        self, view: FeatureView, entity: Entity, version: int, rows: pd.DataFrame | pa.Table
    ) -> int:
        """Validate then append ``rows``; returns the number written (all or none)."""
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        table = validate_rows(table, view, entity)
        if table.num_rows == 0:
            return 0
        dates = pa.compute.strftime(table.column(view.event_timestamp), format="%Y-%m-%d")
        table = table.append_column("date", dates)
        base = self.view_dir(view.name, version)
        written: list[Path] = []
        try:
            for date in sorted(set(dates.to_pylist())):
                part = table.filter(pa.compute.equal(table.column("date"), date)).drop_columns(["date"])
                folder = base / f"date={date}"
                folder.mkdir(parents=True, exist_ok=True)
                final = folder / f"part-{uuid.uuid4().hex}.parquet"
                tmp = folder / f".{final.name}.tmp"
                pq.write_table(part, tmp)
                written.append(tmp)
            for tmp in written:  # publish only once every partition is on disk
                os.replace(tmp, tmp.with_name(tmp.name[1:-4]))
        except BaseException:
            for tmp in written:
                tmp.unlink(missing_ok=True)
            raise
        return table.num_rows

    def dataset(self, view: FeatureView, entity: Entity, version: int) -> pads.Dataset | None:
        base = self.view_dir(view.name, version)
        if not base.is_dir() or not any(base.rglob("*.parquet")):
            return None
        return pads.dataset(
            base, format="parquet", partitioning="hive", schema=view_schema(view, entity),
            exclude_invalid_files=True,
        )

    def read(
        self,
        view: FeatureView,
        entity: Entity,
        version: int,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> pa.Table:
        """Rows with start <= event time < end (partition pruning on the date folders)."""
        dataset = self.dataset(view, entity, version)
        schema = view_schema(view, entity)
        if dataset is None:
            return schema.empty_table()
        ts = pads.field(view.event_timestamp)
        condition = None
        if start is not None:
            condition = ts >= pa.scalar(_utc(start), type=schema.field(view.event_timestamp).type)
        if end is not None:
            upper = ts < pa.scalar(_utc(end), type=schema.field(view.event_timestamp).type)
            condition = upper if condition is None else condition & upper
        return dataset.to_table(filter=condition, columns=schema.names)


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValidationError(f"time {value} has no timezone; pass UTC times", field="time")
    return value.astimezone(dt.timezone.utc)
