"""Feature definitions, their versioned SQL store, and offline ingestion (no Ray)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from raymlops.exceptions import FeatureViewNotFoundError, SchemaMismatchError, ValidationError
from raymlops.features.definitions import FeatureRepo, load_repo
from raymlops.features.definitions_store import DefinitionsStore
from raymlops.features.offline import OfflineStore
from raymlops.storage import Storage

REPO_YAML = """
entities:
  - name: origin
    join_keys: {origin: string}
feature_views:
  - name: weather
    entity: origin
    event_timestamp: time_hour
    ttl_seconds: 7200
    features:
      - {name: temp, dtype: float64}
      - {name: visib, dtype: float64}
feature_services:
  - name: delay_model
    features: ["weather:temp", "weather:visib"]
"""


@pytest.fixture
def repo(tmp_path: Path) -> FeatureRepo:
    path = tmp_path / "features.yaml"
    path.write_text(REPO_YAML)
    return load_repo(path)


def test_load_repo_and_service_selection(repo: FeatureRepo) -> None:
    assert repo.feature_views[0].ttl == dt.timedelta(hours=2)
    assert repo.feature_services[0].selection() == {"weather": ["temp", "visib"]}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("entity: origin", "entity: plane"), "unknown entity 'plane'"),
        (lambda t: t.replace('"weather:visib"', '"weather:wind"'), "unknown feature 'wind'"),
        (lambda t: t.replace("dtype: float64}\n      - {name: visib", "dtype: float99}\n      - {name: visib"),
         "dtype"),
        (lambda t: t.replace("ttl_seconds: 7200", "ttl_seconds: 7200\n    ttl: 1"), "ttl"),
        (lambda t: t.replace("{name: visib,", "{name: temp,"), "duplicate feature"),
    ],
)
def test_bad_definitions_are_named(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(edit(REPO_YAML))
    with pytest.raises(ValidationError, match=message):
        load_repo(path)


def test_apply_versions_on_change_never_overwrites(repo: FeatureRepo, tmp_path: Path) -> None:
    store = DefinitionsStore(f"sqlite:///{tmp_path / 'f.db'}")
    first = {(c.kind, c.name): c for c in store.apply(repo)}
    assert first[("feature_view", "weather")].action == "created"
    again = store.apply(repo)
    assert {c.action for c in again} == {"unchanged"}

    view = repo.feature_views[0]
    changed = view.model_copy(update={"features": [view.features[0].model_copy(update={"dtype": "float32"}),
                                                   view.features[1]]})
    repo2 = repo.model_copy(update={"feature_views": [changed]})
    changes = {(c.kind, c.name): c for c in store.apply(repo2)}
    assert changes[("feature_view", "weather")].action == "new_version"
    assert changes[("feature_view", "weather")].reason == "schema changed"
    assert store.get("feature_view", "weather").version == 2
    assert store.get("feature_view", "weather", 1).spec.features[0].dtype == "float64"  # kept
    assert store.get("feature_view", "weather").spec.features[0].dtype == "float32"
    with pytest.raises(FeatureViewNotFoundError):
        store.get("feature_view", "nope")


def _weather_rows(n: int = 48) -> pd.DataFrame:
    start = pd.Timestamp("2013-01-01T00:00:00Z")
    return pd.DataFrame({
        "origin": ["EWR", "JFK"] * (n // 2),
        "time_hour": [start + pd.Timedelta(hours=i // 2) for i in range(n)],
        "temp": [float(i) for i in range(n)],
        "visib": [10.0] * n,
    })


def test_ingest_partitions_by_date_and_reads_back(repo: FeatureRepo, storage) -> None:
    entity, view = repo.entities[0], repo.feature_views[0]
    store = OfflineStore(storage.child("offline"))
    assert store.ingest(view, entity, 1, _weather_rows()) == 48
    files = store.files("weather", 1)
    assert [f.rsplit("/", 2)[-2] for f in files] == ["date=2013-01-01"]
    assert storage.list() == [f"offline/weather/v1/date=2013-01-01/{files[0].rsplit('/', 1)[-1]}"]
    rows = _weather_rows(100)
    store.ingest(view, entity, 1, rows.iloc[48:])
    table = store.read(view, entity, 1)
    assert table.num_rows == 100
    assert table.schema.field("time_hour").type == pa.timestamp("us", tz="UTC")
    window = store.read(view, entity, 1, start=dt.datetime(2013, 1, 3, tzinfo=dt.UTC))
    assert window.num_rows == 4 and window.column("temp").to_pylist() == [96.0, 97.0, 98.0, 99.0]


@pytest.mark.parametrize(
    ("mutate", "error", "needle"),
    [
        (lambda d: d.drop(columns=["visib"]), SchemaMismatchError, "visib"),
        (lambda d: d.assign(temp=d["temp"].astype(str)), SchemaMismatchError, "temp"),
        (lambda d: d.assign(time_hour=d["time_hour"].dt.tz_localize(None)), SchemaMismatchError, "UTC"),
        (lambda d: d.assign(origin=d["origin"].where(d.index != 3, None)), ValidationError, "null"),
    ],
)
def test_bad_rows_write_nothing(repo: FeatureRepo, tmp_path: Path, mutate, error, needle) -> None:
    entity, view = repo.entities[0], repo.feature_views[0]
    root = Storage.open(tmp_path / "offline")
    with pytest.raises(error, match=needle):
        OfflineStore(root).ingest(view, entity, 1, mutate(_weather_rows()))
    assert not list((tmp_path / "offline").rglob("*"))


def test_int_features_widen_to_float(repo: FeatureRepo, tmp_path: Path) -> None:
    entity, view = repo.entities[0], repo.feature_views[0]
    rows = _weather_rows().assign(visib=10)  # int64 into a float64 feature: safe widening
    assert OfflineStore(Storage.open(tmp_path)).ingest(view, entity, 1, rows) == 48


def test_definitions_store_on_postgres(repo: FeatureRepo) -> None:
    import uuid

    from tests.conftest import require_service

    require_service(5432, "PostgreSQL")
    store = DefinitionsStore("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    suffix = uuid.uuid4().hex[:8]
    view = repo.feature_views[0].model_copy(update={"name": f"weather_{suffix}"})
    service = repo.feature_services[0].model_copy(
        update={"name": f"svc_{suffix}", "features": [f"weather_{suffix}"]})
    unique = repo.model_copy(update={"feature_views": [view], "feature_services": [service]})
    assert {c.action for c in store.apply(unique) if c.kind != "entity"} == {"created"}
    widened = view.model_copy(update={"features": [*view.features, view.features[0].model_copy(
        update={"name": "dewp"})]})
    store.apply(unique.model_copy(update={"feature_views": [widened]}))
    assert store.get("feature_view", f"weather_{suffix}").version == 2
    assert store.get("feature_view", f"weather_{suffix}", 1).spec == view


def test_definitions_store_creates_the_folder_of_its_sqlite_file(tmp_path) -> None:
    from raymlops.features.definitions_store import DefinitionsStore

    target = tmp_path / "fresh" / "root" / "features.db"
    DefinitionsStore(f"sqlite:///{target}")
    assert target.is_file()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_watermarks_live_in_sql_beside_the_definitions(tmp_path: Path, backend: str,
                                                       request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'f.db'}" if backend == "sqlite"
           else request.getfixturevalue("fresh_pg_url"))
    store = DefinitionsStore(url)
    assert store.watermarks() == {}
    store.set_watermarks({"weather": {"version": 1, "end_us": 10}, "planes": {"version": 2, "end_us": 5}})
    store.set_watermarks({"weather": {"version": 2, "end_us": 20}})
    again = DefinitionsStore(url)  # what a restarted feature store actor on any host reads
    assert again.watermarks() == {"weather": {"version": 2, "end_us": 20},
                                  "planes": {"version": 2, "end_us": 5}}
