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
