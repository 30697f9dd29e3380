"""The durable store's contract, run against every backend: SQLite and PostgreSQL.

Also: 4 processes x 25 registrations on one PostgreSQL give exactly 100 unique versions.
"""

from __future__ import annotations

import multiprocessing as mp
import uuid
from pathlib import Path

import pytest

from raymlops.config import load_settings
from raymlops.exceptions import ModelNotFoundError, VersionNotFoundError
from raymlops.registry.formats import ArtifactMeta, digest
from raymlops.registry.store import Lineage, RegistryStore
from tests.conftest import PG_URI, require_service

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=["sqlite", "postgresql", "sqlite+artifact-uri"], scope="module")
def store(request, tmp_path_factory) -> RegistryStore:
    root = tmp_path_factory.mktemp(f"store-{request.param}")
    if request.param == "sqlite+artifact-uri":
        # Artifacts addressed by URI go through MLflow's artifact repositories (the same code
        # path as s3:// or gs://), not plain file reads.
        return RegistryStore(load_settings(storage_root=root, artifact_location=f"file://{root}/remote"))
    if request.param == "postgresql":
        require_service(5432, "PostgreSQL")
        settings = load_settings(storage_root=root, tracking_uri=PG_URI)
    else:
        settings = load_settings(storage_root=root)
    return RegistryStore(settings)


def _meta(data: bytes) -> ArtifactMeta:
    return ArtifactMeta(flavor="sklearn", format="skops", sha256=digest(data), size=len(data))


def test_write_create_read_back(store: RegistryStore) -> None:
    name = f"c-{uuid.uuid4().hex[:8]}"
    data = b"model-bytes"
    meta = _meta(data)
    source = store.write_artifact(name, data, meta)
    lineage = Lineage(data_window=("2013-01-01", "2013-02-01"), feature_views={"w": 1},
                      metrics={"auc": 0.7})
    v = store.create_version(name, source, meta, lineage, {"team": "x"}, "key-1")
    assert v.version == 1 and v.idempotency_key == "key-1"
    assert store.read_artifact(v.source, v.meta) == data
    record = store.load_model(name)
    assert record.versions[1].lineage == lineage
    assert record.versions[1].meta == meta
    assert store.find_by_key(name, "key-1").version == 1
    assert store.find_by_key(name, "nope") is None


def test_aliases_and_deletes(store: RegistryStore) -> None:
    name = f"c-{uuid.uuid4().hex[:8]}"
    meta = _meta(b"x")
    for _ in range(2):
        store.create_version(name, "/dev/null", meta, Lineage(), {}, None)
    store.set_alias(name, "champion", 2)
    assert store.load_model(name).aliases == {"champion": 2}
    store.delete_alias(name, "champion")
    store.delete_alias(name, "champion")  # idempotent
    store.delete_version(name, 1)
    assert sorted(store.load_model(name).versions) == [2]
    with pytest.raises(VersionNotFoundError):
        store.delete_version(name, 1)
    with pytest.raises(ModelNotFoundError):
        store.load_model("missing-" + name)
    assert name in store.load_all()


def _pg_writer(args: tuple[str, str, int, int]) -> list[int]:
    root, name, writer, count = args
    store = RegistryStore(load_settings(storage_root=root, tracking_uri=PG_URI))
    meta = _meta(b"m")
    return [
        store.create_version(name, "/dev/null", meta, Lineage(), {}, f"{writer}-{i}").version
        for i in range(count)
    ]


@pytest.mark.slow
def test_four_processes_on_postgres_make_exactly_100_versions(tmp_path: Path) -> None:
    require_service(5432, "PostgreSQL")
    name = f"pg-{uuid.uuid4().hex[:8]}"
    RegistryStore(load_settings(storage_root=tmp_path, tracking_uri=PG_URI)).ensure_model(name)
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_pg_writer, [(str(tmp_path), name, w, 25) for w in range(4)])
    got = sorted(v for r in results for v in r)
    assert got == list(range(1, 101))
    store = RegistryStore(load_settings(storage_root=tmp_path, tracking_uri=PG_URI))
    assert sorted(store.load_model(name).versions) == list(range(1, 101))
