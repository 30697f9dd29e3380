"""The training spec, its label source and its periods, without Ray: every bad field is named,
label tables are checked before anything runs, periods are cut in the spec's time zone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raymlops.exceptions import ConfigError, DatasetNotFoundError, SchemaMismatchError, ValidationError
from raymlops.training.dataset import LabelledData
from raymlops.training.periods import closed_periods, parse_period, period_bounds, period_index
from raymlops.training.spec import load_spec, parse_spec

GOOD = {"name": "m", "task": "binary", "labels": {"path": "labels.parquet", "timestamp": "ts", "label": "y"},
        "features": {"columns": ["x", "c"]}}


def spec(**changes):
    raw = {**GOOD, **changes}
    return parse_spec(raw, base_dir="/data")


def test_a_minimal_spec_gets_the_task_defaults() -> None:
    s = spec()
    assert s.metric == "roc_auc" and s.search.families == ["logreg", "hgb", "rf", "mlp"]
    assert s.resolve("labels.parquet") == "/data/labels.parquet"
    assert spec(task="regression").metric == "rmse"
    assert spec(task="regression").search.families == ["ridge", "hgb", "rf", "mlp"]
    assert spec(task="multiclass").metric == "log_loss"
    config = s.search_config(trials=3)
    assert (config.task, config.metric, config.num_samples, config.name) == ("binary", "roc_auc", 3, "m")
    policy = spec(task="regression", metric="mae").ct_policy()
    assert (policy.task, policy.metric, policy.model) == ("regression", "mae", "m")


@pytest.mark.parametrize("changes,field", [
    ({"task": "ranking"}, "task"),
    ({"metric": "rmse"}, "metric"),                      # a regression metric on a binary task
    ({"metric": "accuracy_at_k"}, "metric"),
    ({"labels": {"timestamp": "ts", "label": "y"}}, "labels"),          # no source
    ({"labels": {"path": "a", "sql": {"url": "sqlite://", "query": "select 1"}, "timestamp": "ts",
                 "label": "y"}}, "labels"),                             # two sources
    ({"labels": {"path": "a", "label": "y"}}, "labels.timestamp"),
    ({"labels": {"path": "a", "timestamp": "ts", "label": "y", "extra": 1}}, "labels.extra"),
    ({"features": {}}, "features"),
    ({"features": {"columns": ["x"], "categorical": ["z"]}}, "features"),
    ({"features": {"columns": ["x", "y"]}}, "features.columns"),        # the label as an input
    ({"features": {"service": "svc"}}, "labels.entity_keys"),
    ({"period": "fortnight"}, "period"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"window": {"kind": "sliding", "periods": 0}}, "window.periods"),
    ({"search": {"families": ["ridge"]}}, "search.families"),          # a regressor for a classifier
    ({"search": {"trials": 0}}, "search.trials"),
    ({"ct": {"valid_fraction": 1.5}}, "ct.valid_fraction"),
    ({"nmae": "m"}, "nmae"),
])
def test_every_bad_field_is_named(changes, field) -> None:
    with pytest.raises(ConfigError) as info:
        spec(**changes)
    assert info.value.context["field"] == field, str(info.value)
    assert field.split(".")[-1] in str(info.value) or field in str(info.value)


def test_spec_files(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: m\ntask: binary\nlabels: {path: l.parquet, timestamp: ts, label: y}\n"
                                     "features: {columns: [x]}\n")
    assert load_spec(tmp_path / "s.yaml").resolve("l.parquet") == str(tmp_path / "l.parquet")
    with pytest.raises(ConfigError, match="no training spec"):
        load_spec(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("name: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_spec(tmp_path / "list.yaml")


def test_the_shipped_example_specs_validate() -> None:
    repo = Path(__file__).resolve().parents[2]
    for path in sorted((repo / "examples").glob("*/*spec.yaml")):
        loaded = load_spec(path)
        assert loaded.name and loaded.metric, path


# -- label sources ----------------------------------------------------------------------------


def rows(n: int = 60, start: str = "2013-01-01", tz: str | None = "UTC", freq: str = "D") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ts = pd.date_range(start, periods=n, freq=freq, tz=tz)
    return pd.DataFrame({"ts": ts, "x": rng.normal(size=n), "c": rng.choice(["a", "b"], n),
                         "y": rng.integers(0, 2, n).astype(bool)})


def test_parquet_csv_and_folders_read_alike(tmp_path: Path) -> None:
    frame = rows()
    frame.to_parquet(tmp_path / "labels.parquet")
    csv = frame.assign(ts=frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    csv.to_csv(tmp_path / "labels.csv", index=False)
    (tmp_path / "folder" / "month=1").mkdir(parents=True)
    (tmp_path / "folder" / "month=2").mkdir(parents=True)
    frame.iloc[:30].to_parquet(tmp_path / "folder" / "month=1" / "part.parquet")
    frame.iloc[30:].to_parquet(tmp_path / "folder" / "month=2" / "part.parquet")
    read = [LabelledData(parse_spec({**GOOD, "labels": {**GOOD["labels"], "path": p}}, base_dir=tmp_path)).rows
            for p in ("labels.parquet", "labels.csv", "folder")]
    for other in read:
        assert len(other) == 60 and str(other["ts"].dt.tz) == "UTC"
        assert other["ts"].tolist() == read[0]["ts"].tolist() and other["c"].tolist() == read[0]["c"].tolist()


def test_sql_labels(tmp_path: Path) -> None:
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'labels.db'}"
    frame = rows().assign(ts=lambda f: f["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
    frame.to_sql("labels", sqlalchemy.create_engine(url), index=False)
    s = parse_spec({**GOOD, "labels": {"sql": {"url": url, "query": "select * from labels where x > 0"},
                                       "timestamp": "ts", "label": "y"}})
    got = LabelledData(s).rows
    assert 0 < len(got) < 60 and (got["x"] > 0).all()
    bad = parse_spec({**GOOD, "labels": {"sql": {"url": url, "query": "select * from nowhere"},
                                         "timestamp": "ts", "label": "y"}})
    with pytest.raises(ValidationError) as info:
        _ = LabelledData(bad).rows
    assert info.value.context["field"] == "labels.sql.query"


def test_sql_labels_on_postgresql() -> None:
    """A real PostgreSQL (the cluster's database), timestamptz column, a new table per run."""
    import uuid

    import sqlalchemy

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    table = f"labels_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(url)
    rows().to_sql(table, engine, index=False)
    try:
        s = parse_spec({**GOOD, "labels": {"sql": {"url": url, "query": f"select * from {table}"},  # noqa: S608 - a test table
                                           "timestamp": "ts", "label": "y"}})
        got = LabelledData(s).rows
        assert len(got) == 60 and str(got["ts"].dt.tz) == "UTC" and got["y"].dtype == bool
        assert [str(p) for p in LabelledData(s).periods()] == ["2013-01", "2013-02", "2013-03"]
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"drop table {table}"))
        engine.dispose()


def test_bad_label_tables_are_refused_before_anything_runs(tmp_path: Path) -> None:
    def read(frame: pd.DataFrame):
        frame.to_parquet(tmp_path / "labels.parquet")
        return LabelledData(parse_spec(GOOD, base_dir=tmp_path)).rows

    with pytest.raises(ValidationError, match="no time zone"):
        read(rows(tz=None))
    with pytest.raises(SchemaMismatchError, match=r"\['c'\]"):
        read(rows().drop(columns="c"))
    with pytest.raises(ValidationError, match="no value in any"):
        read(rows().assign(y=None))
    with pytest.raises(ValidationError, match="holds numbers"):
        read(rows().assign(ts=1.0))
    with pytest.raises(DatasetNotFoundError):
        _ = LabelledData(parse_spec(GOOD, base_dir=tmp_path / "nowhere")).rows
    unlabelled = rows().assign(y=lambda f: f["y"].astype(object).where(f.index % 2 == 0, None))
    assert len(read(unlabelled)) == 30  # rows without a label yet have not arrived


# -- periods ----------------------------------------------------------------------------------


def test_periods_are_cut_in_the_spec_time_zone() -> None:
    # 23:59 in New York on February 28th is March 1st in UTC: still February there.
    stamps = pd.Series(pd.to_datetime(["2013-03-01T04:59:00Z", "2013-03-01T05:00:00Z"]))
    assert [str(p) for p in period_index(stamps, "month", "America/New_York")] == ["2013-02", "2013-03"]
    assert [str(p) for p in period_index(stamps, "month", "UTC")] == ["2013-03", "2013-03"]
    start, end = period_bounds(parse_period("2013-03", "month"), "America/New_York")
    assert (start.isoformat(), end.isoformat()) == ("2013-03-01T05:00:00+00:00", "2013-04-01T04:00:00+00:00")
    week = parse_period("2013-02-25/2013-03-03", "week")
    assert str(week) == "2013-02-25/2013-03-03" and str(parse_period(str(week), "week")) == str(week)
    assert str(parse_period("2013-02-28", "day") + 1) == "2013-03-01"
    with pytest.raises(ValidationError, match="not a month period"):
        parse_period("spring", "month")


def test_a_period_closes_when_its_end_passed_or_a_later_row_arrived() -> None:
    jan, feb, mar = (parse_period(p, "month") for p in ("2013-01", "2013-02", "2013-03"))
    now = pd.Timestamp("2013-03-15", tz="UTC")
    newest = pd.Timestamp("2013-03-14", tz="UTC")
    assert closed_periods([jan, feb, mar], newest, "UTC", now=now) == [jan, feb]
    # by data alone: a row of March closes February even when the clock is older
    assert closed_periods([jan, feb, mar], newest, "UTC", now=pd.Timestamp("2000-01-01", tz="UTC")) == [jan, feb]
    # a grace period of one month waits for late labels
    assert closed_periods([jan, feb, mar], newest, "UTC", now=now, grace=1) == [jan]


def test_labelled_data_by_period_with_empty_periods_and_typed_inputs(tmp_path: Path) -> None:
    frame = pd.concat([rows(31, "2013-01-01"), rows(30, "2013-03-01")], ignore_index=True)  # no February
    frame.to_parquet(tmp_path / "labels.parquet")
    data = LabelledData(parse_spec(GOOD, base_dir=tmp_path))
    assert [str(p) for p in data.periods()] == ["2013-01", "2013-03"]
    assert data.counts() == {"2013-01": 31, "2013-03": 30}
    assert data.frame(["2013-02"]).empty and len(data.frame(["2013-01", "2013-02", "2013-03"])) == 61
    assert [str(p) for p in data.periods_in(["2013-01-05T00:00:00+00:00", "2013-03-02T00:00:00+00:00"])] == \
        ["2013-01", "2013-02", "2013-03"]
    td = data.train_data(data.frame(["2013-01"]), data.frame(["2013-03"]))
    assert (td.numeric, td.categorical, td.task) == (["x"], ["c"], "binary")
    assert td.y_train.dtype == np.int64 and list(td.X_train.columns) == ["c", "x"]
    assert td.X_train["c"].dtype == object and td.X_train["x"].dtype == np.float64
    with pytest.raises(ValidationError, match="needs 2 label values"):
        one = data.frame(["2013-01"]).assign(y=True)
        data.train_data(one, one)
    regression = LabelledData(parse_spec({**GOOD, "task": "regression"}, base_dir=tmp_path))
    assert regression.labels(regression.frame(["2013-01"])).dtype == np.float64
    text = LabelledData(parse_spec({**GOOD, "task": "regression", "labels": {**GOOD["labels"], "label": "c"},
                                    "features": {"columns": ["x"]}}, base_dir=tmp_path))
    with pytest.raises(ValidationError, match="not numeric"):
        text.labels(text.frame(["2013-01"]))


# -- which periods CT decides (MLflow on SQLite, no Ray) ----------------------------------------


def test_plan_decides_each_closed_period_once_and_reports_late_labels(tmp_path: Path) -> None:
    from raymlops.config import load_settings
    from raymlops.training.ct import Event, log_event
    from raymlops.training.workflow import plan

    settings = load_settings(storage_root=tmp_path / "root")
    frame = rows(120, "2013-01-01")  # January .. April, daily
    frame.to_parquet(tmp_path / "labels.parquet")
    s = parse_spec(GOOD, base_dir=tmp_path)
    data = LabelledData(s)
    now = pd.Timestamp("2013-05-15", tz="UTC")

    # No champion, nothing decided: the newest closed period is where the first model is trained.
    assert plan(s, settings, data, now=now).pending == ["2013-04"]
    # A champion trained on January-February: the loop starts after its window.
    window = ["2013-01-01T00:00:00+00:00", "2013-02-28T00:00:00+00:00"]
    assert plan(s, settings, data, now=now, champion_window=window).pending == ["2013-03", "2013-04"]
    # April is not over on April 20th and no later row exists yet.
    assert plan(s, settings, data, now=pd.Timestamp("2013-04-20", tz="UTC"),
                champion_window=window).pending == ["2013-03"]

    log_event(settings, "m", Event(1, "2013-03", "drift", "rejected", "test", 1, 1, rows=31))
    after = plan(s, settings, data, now=now, champion_window=window)
    assert after.decided == ["2013-03"] and after.pending == ["2013-04"] and after.late == []

    # Two labels of March arrive after its decision: reported, never decided again.
    late = pd.concat([frame, rows(2, "2013-03-10T12:00")], ignore_index=True)
    late.to_parquet(tmp_path / "labels.parquet")
    data.refresh()
    again = plan(s, settings, data, now=now, champion_window=window)
    assert again.pending == ["2013-04"]
    assert again.late == [{"period": "2013-03", "rows_at_decision": 31, "rows_now": 33}]
