"""Offline store: feature rows as Parquet, partitioned by event date, validated before writing.

Layout: ``offline/<view>/v<version>/date=YYYY-MM-DD/part-<uuid>.parquet`` under the storage
root (a local folder or S3: see :mod:`raymlops.storage`).
A view's version is part of the path, so a schema change (new version) never mixes its rows
with the old ones. ``ingest`` checks everything first (columns present, dtypes compatible,
no null join keys, UTC event times) and raises a typed error having written nothing; each
partition file is written under a hidden name and published afterwards, so readers never see
half a file.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from raymlops.exceptions import SchemaMismatchError, ValidationError
from raymlops.features.definitions import DType, Entity, FeatureView
from raymlops.storage import Storage

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
    """A view's rows under ``offline/`` of the storage root, readable from any node."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def view_prefix(self, view: str, version: int) -> str:
        return f"{view}/v{version}"

    def view_uri(self, view: str, version: int) -> str:
        return self.storage.uri_of(self.view_prefix(view, version))

    def files(self, view: str, version: int) -> list[str]:
        """The view's published Parquet files as paths of :attr:`filesystem`."""
        prefix = self.view_prefix(view, version)
        return [self.storage.path(key) for key in self.storage.list(prefix, suffix=".parquet")]

    @property
    def filesystem(self) -> Any:
        return self.storage.filesystem

    def ingest(
        self, view: FeatureView, entity: Entity, version: int, rows: pd.DataFrame | pa.Table
    ) -> int:
        """Validate then append ``rows``; returns the number written (all or none).

        Each date's part is written under a hidden name and published (renamed locally,
        copied to its final key on S3, where objects appear whole) only once every part
        is written; a failure removes what it wrote."""
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
        table = validate_rows(table, view, entity)
        if table.num_rows == 0:
            return 0
        dates = pa.compute.strftime(table.column(view.event_timestamp), format="%Y-%m-%d")
        table = table.append_column("date", dates)
        base = self.view_prefix(view.name, version)
        staged: list[tuple[str, str]] = []
        published: list[str] = []
        try:
            for date in sorted(set(dates.to_pylist())):
                part = table.filter(pa.compute.equal(table.column("date"), date)).drop_columns(["date"])
                name = f"part-{uuid.uuid4().hex}.parquet"
                tmp = f"{base}/date={date}/.{name}.tmp"
                with self.storage.open_output(tmp) as out:
                    pq.write_table(part, out)
                staged.append((tmp, f"{base}/date={date}/{name}"))
            for tmp, final in staged:  # publish only once every partition is stored
                self.storage.filesystem.move(self.storage.path(tmp), self.storage.path(final))
                published.append(final)
        except BaseException:
            for key in [tmp for tmp, _ in staged] + published:
                self.storage.delete(key)
            raise
        return table.num_rows

    def dataset(self, view: FeatureView, entity: Entity, version: int) -> pads.Dataset | None:
        files = self.files(view.name, version)
        if not files:
            return None
        return pads.dataset(
            files, format="parquet", filesystem=self.filesystem,
            partitioning=pads.partitioning(flavor="hive"),
            partition_base_dir=self.storage.path(self.view_prefix(view.name, version)),
            schema=view_schema(view, entity), exclude_invalid_files=True,
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
    return value.astimezone(dt.UTC)
