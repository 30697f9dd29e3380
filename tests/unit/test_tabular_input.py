"""Tabular input: stable row ids over files, row groups and slices; clear errors; the
exactly-once check of the parts written per unit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raymlops.exceptions import DatasetNotFoundError, ValidationError
from raymlops.tabular_input import ROW_ID, list_input_files, plan_units, read_unit


def _write(storage, key: str, start: int, n: int, row_group_size: int) -> None:
    table = pa.table({"x": np.arange(start, start + n, dtype=np.int64)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=row_group_size)
    storage.write_bytes(key, sink.getvalue().to_pybytes())


@pytest.mark.parametrize("rows_per_unit", [1, 7, 50, 10_000])
def test_units_cover_every_row_once_in_path_order(storage, rows_per_unit: int) -> None:
    _write(storage, "in/b.parquet", 100, 45, row_group_size=20)   # 3 row groups: 20, 20, 5
    _write(storage, "in/a.parquet", 0, 100, row_group_size=100)
    _write(storage, "in/sub/c.parquet", 145, 3, row_group_size=2)
    storage.write_bytes("in/_SUCCESS.parquet", b"ignored: underscore files are metadata")
    units = plan_units(storage.uri_of("in"), rows_per_unit=rows_per_unit)
    assert all(u.rows <= rows_per_unit for u in units)
    assert units[0].path == storage.uri_of("in/a.parquet")  # a URI any node opens
    frames = [read_unit(u.to_dict()) for u in units]
    got = pd.concat(frames, ignore_index=True)
    # Files in sorted path order, so the id is the position and x (written as 0..147) equals it.
    assert got[ROW_ID].tolist() == list(range(148))
    assert got["x"].tolist() == list(range(148))
    # Reading a unit again gives the same ids (a retried task rewrites the same rows).
    again = read_unit(units[len(units) // 2])
    assert again.equals(frames[len(units) // 2])


def test_csv_units_count_rows_with_quoted_newlines(storage) -> None:
    storage.write_text("in/1.csv", 'id,text\n1,"two\nlines"\n2,plain\n')
    storage.write_text("in/2.csv", "id,text\n3,x\n")
    units = plan_units(storage.uri_of("in"))
    assert [(u.first_row_id, u.rows) for u in units] == [(0, 2), (2, 1)]
    frame = pd.concat([read_unit(u) for u in units], ignore_index=True)
    assert frame[ROW_ID].tolist() == [0, 1, 2] and frame["id"].tolist() == [1, 2, 3]
    assert plan_units(storage.uri_of("in/2.csv"))[0].rows == 1  # one file as the input


def test_columns_can_be_selected(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "f.parquet")
    frame = read_unit(plan_units(tmp_path)[0], columns=["b"])
    assert list(frame.columns) == [ROW_ID, "b"]


def test_bad_input_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError):
        plan_units(tmp_path / "nope")
    with pytest.raises(ValidationError, match="no Parquet or CSV"):
        plan_units(tmp_path)
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValidationError, match="not a readable Parquet"):
        plan_units(tmp_path)
    (tmp_path / "x.parquet").unlink()
    pq.write_table(pa.table({"a": pa.array([], type=pa.int64())}), tmp_path / "empty.parquet")
    with pytest.raises(ValidationError, match="no rows"):
        plan_units(tmp_path)
    (tmp_path / "y.csv").write_text("a\n1\n")
    with pytest.raises(ValidationError, match="mixes"):
        list_input_files(tmp_path)
    with pytest.raises(ValidationError, match="rows_per_unit"):
        plan_units(tmp_path / "y.csv", rows_per_unit=0)


def test_an_input_row_id_column_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({ROW_ID: [5]}), tmp_path / "f.parquet")
    with pytest.raises(ValidationError, match=ROW_ID):
        read_unit(plan_units(tmp_path)[0])


def test_verify_parts_accepts_exactly_one_right_sized_file_per_unit(tmp_path) -> None:
    from raymlops.exceptions import RaymlopsError
    from raymlops.storage import Storage
    from raymlops.tabular_input import part_name, verify_parts

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": list(range(25))}), src, row_group_size=10)
    units = plan_units(src, rows_per_unit=10)
    staging = Storage.open(tmp_path / "staging")

    def write(first: int, rows: int) -> None:
        pq.write_table(pa.table({"x": list(range(rows))}), staging.local_path(part_name(first)))

    staging.ensure_folder()
    for u in units:
        write(u.first_row_id, u.rows)
    staging.write_text("_manifest.json", "{}")  # the job's own files are not parts
    verify_parts(staging, units, "test")
    write(units[-1].first_row_id, units[-1].rows + 1)  # a unit written with a row too many
    with pytest.raises(RaymlopsError, match="exactly-once"):
        verify_parts(staging, units, "test")
    write(units[-1].first_row_id, units[-1].rows)
    write(999, 1)  # a file no unit planned
    with pytest.raises(RaymlopsError, match="nothing was published"):
        verify_parts(staging, units, "test")
    staging.delete(part_name(999))
    staging.delete(part_name(units[0].first_row_id))  # a unit missing
    with pytest.raises(RaymlopsError, match="1 files missing"):
        verify_parts(staging, units, "test")
