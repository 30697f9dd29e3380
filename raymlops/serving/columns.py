"""The online hot path without pandas: a request's rows as columns of plain values.

Why: a compiled model answers one row in ~0.1 ms, while building, validating and enriching
a one-row DataFrame costs a millisecond or more (every pandas call has a fixed cost of tens of
microseconds, and a request made several dozen). Online requests are a few rows of JSON
scalars, for which checking each value's Python type is exact and takes microseconds.

Only the happy path runs here. Whenever something is off (a wrong type, a null in a required
field, an unknown column, a type this path does not handle such as datetimes), the checks
return None and the caller takes the pandas path (:func:`raymlops.serving.schema.validate_frame`),
which accepts the same inputs and names the fault in its error, so both paths answer alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from raymlops.serving.schema import INTEGER_TYPES, NUMERIC_TYPES, InputSchema

__all__ = ["Columns", "Prepared", "check_columns"]

_SCALARS = (str, int, float, bool, type(None))


@dataclass
class Columns:
    """Named columns of JSON scalars, all of one length (``dataframe_records`` as sent)."""

    data: dict[str, list[Any]]
    rows: int

    def __len__(self) -> int:
        return self.rows

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> Columns | None:
        """Columns of a list of objects (a key an object lacks is null there, as pandas has
        it); None when a value is not a scalar (the pandas path reports it)."""
        names: dict[str, None] = {}
        for record in records:
            for key, value in record.items():
                if not isinstance(value, _SCALARS):
                    return None
                names.setdefault(key, None)
        if len(records) == 1:
            return cls({k: [v] for k, v in records[0].items()}, 1)
        return cls({k: [r.get(k) for r in records] for k in names}, len(records))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(
            [{k: v[i] for k, v in self.data.items()} for i in range(self.rows)],
            columns=list(self.data))


def _valid(values: list[Any], kind: str, nullable: bool) -> bool:
    """Every value of the MLflow type ``kind`` (None only where ``nullable``)."""
    if kind in NUMERIC_TYPES:
        return all((type(v) is float and (v == v or nullable)) or type(v) is int
                   or (v is None and nullable) for v in values)
    if kind in INTEGER_TYPES:
        return all(type(v) is int or (v is None and nullable) for v in values)
    if kind == "boolean":
        return all(type(v) is bool or (v is None and nullable) for v in values)
    if kind == "string":
        return all(type(v) is str or (v is None and nullable) for v in values)
    return False  # datetime, binary: the pandas path parses and checks them


def check_columns(columns: dict[str, list[Any]], rows: int, schema: InputSchema, *,
                  passthrough: Iterable[str] = (), allow_null: Iterable[str] = ()
                  ) -> dict[str, list[Any]] | None:
    """``validate_frame``'s answer on plain columns when the input is valid, else None.

    Returns the schema's columns in its order (a missing optional column as nulls), then the
    ``passthrough`` columns that were given."""
    specs = schema.by_name()
    keep = set(passthrough)
    if any(name not in specs and name not in keep for name in columns):
        return None
    nullable = set(allow_null)
    out: dict[str, list[Any]] = {}
    for spec in schema.columns:
        values = columns.get(spec.name)
        may_be_null = not spec.required or spec.name in nullable
        if values is None:
            if not may_be_null:
                return None
            values = [None] * rows
        elif not _valid(values, spec.type, may_be_null):
            return None
        out[spec.name] = values
    for name in columns:
        if name in keep and name not in out:
            out[name] = columns[name]
    return out


@dataclass
class Prepared:
    """A request checked and enriched: the model's inputs in its order, ready to run."""

    columns: dict[str, list[Any]]
    rows: int
    schema: InputSchema

    def __len__(self) -> int:
        return self.rows

    @classmethod
    def concat(cls, parts: Sequence[Prepared]) -> Prepared:
        """One table of several requests' rows (a ``@serve.batch`` of them)."""
        if len(parts) == 1:
            return parts[0]
        names = list(parts[0].columns)
        return cls({n: [v for p in parts for v in p.columns[n]] for n in names},
                   sum(p.rows for p in parts), parts[0].schema)

    def to_frame(self) -> pd.DataFrame:
        """The DataFrame the pandas path would have made (dtypes from the schema): for the
        original flavour and the prediction log, off the request path."""
        data: dict[str, Any] = {}
        for spec in self.schema.columns:
            values = self.columns[spec.name]
            if spec.type in NUMERIC_TYPES or (spec.type in INTEGER_TYPES and None in values):
                data[spec.name] = np.array([np.nan if v is None else v for v in values],
                                          dtype=NUMERIC_TYPES.get(spec.type, np.float64))
            elif spec.type in INTEGER_TYPES:
                data[spec.name] = np.array(values, dtype=INTEGER_TYPES[spec.type])
            else:
                data[spec.name] = pd.Series(values, dtype=object)
        return pd.DataFrame(data)
