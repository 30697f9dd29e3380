"""The registry actor on the shared cluster (SQLite backend under the session root)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from raymlops.exceptions import (
    AliasNotFoundError,
    ConflictError,
    ModelNotFoundError,
    SchemaMismatchError,
    UnsafeArtifactError,
    ValidationError,
    VersionNotFoundError,
)
from raymlops.registry import REGISTRY_ACTOR, Lineage, RegistryClient

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def registry(platform) -> RegistryClient:
    return RegistryClient.connect(platform.settings)


@pytest.fixture(scope="module")
def xy() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"temp": rng.normal(50, 10, 300), "visib": rng.uniform(0, 10, 300)})
    y = ((X["temp"] - 5 * X["visib"]) + rng.normal(0, 5, 300) > 25).astype(int).to_numpy()
    return X, y


def _model(xy, c: float = 1.0) -> LogisticRegression:
    X, y = xy
    return LogisticRegression(C=c).fit(X, y)


def _name() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


def test_register_and_load_round_trip(registry, xy) -> None:
    X, _ = xy
    name, model = _name(), _model(xy)
    lineage = Lineage(run_id=None, data_window=("2013-01-01", "2013-03-01"),
                      feature_views={"weather": 2}, metrics={"roc_auc": 0.81})
    v = registry.register(name, model, input_example=X.head(5), lineage=lineage,
                          tags={"team": "ops"}, aliases=["challenger"])
    assert v["version"] == 1 and v["aliases"] == ["challenger"]
    assert v["format"] == "skops" and len(v["sha256"]) == 64
    assert v["lineage"]["feature_views"] == {"weather": 2}
    assert list(v["lineage"]["data_window"]) == ["2013-01-01", "2013-03-01"]
    assert "temp" in v["signature"]["inputs"]
    predictor = registry.load(name, "challenger")
    assert predictor.version == 1
    np.testing.assert_allclose(predictor.predict_proba(X), model.predict_proba(X))
    assert registry.list_models()[-1]["name"] or True
    assert any(m["name"] == name and m["aliases"] == {"challenger": 1} for m in registry.list_models())


def test_idempotency_key_returns_the_same_version(registry, xy) -> None:
    name, model = _name(), _model(xy)
    first = registry.register(name, model, idempotency_key="k1")
    again = registry.register(name, model, idempotency_key="k1")
    assert first["version"] == again["version"] == 1
    assert len(registry.list_versions(name)) == 1
    from sklearn.ensemble import RandomForestClassifier

    X, y = xy
    other = RandomForestClassifier(n_estimators=3).fit(X[["temp"]], y)
    with pytest.raises(ConflictError, match="different kind"):
        registry.register(name, other, idempotency_key="k1")


def test_promote_rollback_and_previous(registry, xy) -> None:
    name = _name()
    for c in (1.0, 0.5, 0.1):
        registry.register(name, _model(xy, c))
    registry.promote(name, 1)
    registry.set_alias(name, "challenger", 2)
    result = registry.promote(name)
    assert result == {"name": name, "champion": 2, "previous": 1}
    aliases = {m["name"]: m["aliases"] for m in registry.list_models()}[name]
    assert aliases == {"champion": 2, "previous": 1}  # challenger consumed
    assert registry.rollback(name) == {"name": name, "champion": 1, "previous": 2}
    assert registry.rollback(name)["champion"] == 2  # rollback is reversible
    with pytest.raises(AliasNotFoundError, match="no challenger"):
        registry.promote(name)


def test_typed_errors_for_unknown_things(registry, xy) -> None:
    name = _name()
    registry.register(name, _model(xy))
    with pytest.raises(ModelNotFoundError):
        registry.get_version("no-such-model", 1)
    with pytest.raises(VersionNotFoundError):
        registry.get_version(name, 9)
    with pytest.raises(AliasNotFoundError):
        registry.load(name, "champion")
    with pytest.raises(ValidationError, match="invalid model name"):
        registry.register("bad name", _model(xy))
    with pytest.raises(ValidationError, match="invalid alias"):
        registry.set_alias(name, "v2", 1)


def test_signature_mismatch_writes_nothing(registry, xy) -> None:
    from mlflow.models import infer_signature

    X, _ = xy
    name, model = _name(), _model(xy)
    wrong = infer_signature(pd.DataFrame({"temp": ["a", "b"], "visib": [1.0, 2.0]}))
    with pytest.raises(SchemaMismatchError, match="signature"):
        registry.register(name, model, input_example=X.head(3), signature=wrong)
    with pytest.raises(SchemaMismatchError, match="cannot predict"):
        registry.register(name, model, input_example=X[["temp"]].head(3))
    assert name not in {m["name"] for m in registry.list_models()}


def test_champion_is_protected_and_archive_drops_aliases(registry, xy) -> None:
    name = _name()
    registry.register(name, _model(xy), aliases=["champion"])
    registry.register(name, _model(xy, 0.3), aliases=["challenger"])
    with pytest.raises(ConflictError):
        registry.delete_version(name, 1)
    with pytest.raises(ConflictError):
        registry.archive(name, "champion")
    archived = registry.archive(name, 2)
    assert archived["archived"] is True and archived["aliases"] == []
    with pytest.raises(ConflictError, match="archived"):
        registry.set_alias(name, "challenger", 2)
    assert registry.delete_version(name, 2) == {"name": name, "deleted": 2}
    assert [v["version"] for v in registry.list_versions(name)] == [1]


def test_search_by_tag_and_metric(registry, xy) -> None:
    name = _name()
    for i, auc in enumerate((0.70, 0.80, 0.90)):
        registry.register(name, _model(xy, 1 / (i + 1)), tags={"family": "logreg" if i else "base"},
                          lineage={"metrics": {"roc_auc": auc}})
    hits = registry.search(name=name, metric="roc_auc", op=">=", value=0.8)
    assert [h["version"] for h in hits] == [2, 3]
    assert [h["version"] for h in registry.search(name=name, tags={"family": "base"})] == [1]
    with pytest.raises(ValidationError):
        registry.search(name=name, metric="roc_auc", op="~", value=1)


def test_watch_is_told_when_the_alias_moves(registry, xy) -> None:
    name = _name()
    registry.register(name, _model(xy), aliases=["champion"])
    registry.register(name, _model(xy, 0.2))
    seen: list[tuple[int | None, float]] = []
    moved = threading.Event()
    watch = registry.watch(name, "champion", lambda v: (seen.append((v, time.monotonic())), moved.set()))
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        registry.promote(name, 2)
        assert moved.wait(5), "watcher was not told"
        assert seen[0][0] == 2
        assert seen[0][1] - t0 < 2.0
    finally:
        watch.stop()


def test_bytes_go_to_the_object_store_once(registry, xy, ray_cluster) -> None:
    ray = ray_cluster
    name = _name()
    registry.register(name, _model(xy), aliases=["champion"])

    @ray.remote(num_cpus=0.1)
    def replica_load(settings_dump):
        from raymlops.config import load_settings
        from raymlops.registry import RegistryClient

        client = RegistryClient.connect(load_settings(**settings_dump))
        info, (ref,) = client._call("model_ref", name, "champion")
        return ref.hex(), client.load(name, "champion").version

    dump = registry.settings.model_dump(mode="json")
    results = ray.get([replica_load.remote(dump) for _ in range(4)])
    assert len({r[0] for r in results}) == 1  # one object, shared by all replicas
    assert {r[1] for r in results} == {1}


def test_tampered_artifact_is_refused_at_load(registry, xy, platform) -> None:
    name = _name()
    v = registry.register(name, _model(xy))
    model_file = Path(v["source"]) / "model.skops"
    assert model_file.is_file()
    blob = bytearray(model_file.read_bytes())
    blob[-10] ^= 0xFF
    model_file.write_bytes(bytes(blob))
    with pytest.raises(UnsafeArtifactError, match="digest"):
        registry.load(name, 1)


def test_registry_survives_restart_with_everything(registry, xy, ray_cluster) -> None:
    ray = ray_cluster
    name = _name()
    registry.register(name, _model(xy), aliases=["champion"], idempotency_key="a")
    registry.register(name, _model(xy, 0.2), aliases=["challenger"], idempotency_key="b")
    before = registry.list_versions(name)
    ray.kill(ray.get_actor(REGISTRY_ACTOR, namespace="raymlops"), no_restart=False)
    after = registry.list_versions(name)  # retried on the restarted actor
    assert after == before
    assert registry.register(name, _model(xy, 0.2), idempotency_key="b")["version"] == 2


def test_register_from_an_mlflow_run(registry, xy) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    X, _ = xy
    settings = registry.settings
    model = _model(xy)
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(settings.tracking_uri)
    exp = client.create_experiment(f"e-{uuid.uuid4().hex[:6]}",
                                   artifact_location=f"{settings.artifact_location}/runs")
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.sklearn.log_model(model, name="model", serialization_format="skops")
    name = _name()
    v = registry.register_run(name, run.info.run_id, "model")
    assert v["lineage"]["run_id"] == run.info.run_id and v["format"] == "skops"
    np.testing.assert_allclose(registry.load(name, 1).predict_proba(X), model.predict_proba(X))


def test_cached_resolution_follows_alias_moves(registry, xy) -> None:
    name = _name()
    registry.register(name, _model(xy), aliases=["champion"])
    registry.register(name, _model(xy, 0.2))
    try:
        assert registry.resolve_cached(name, "champion") == 1
        registry.promote(name, 2)
        deadline = time.monotonic() + 2.0
        while registry.resolve_cached(name, "champion") != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert registry.resolve_cached(name, "champion") == 2
        registry.rollback(name)
        deadline = time.monotonic() + 2.0
        while registry.resolve_cached(name, "champion") != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert registry.resolve_cached(name, "champion") == 1
    finally:
        registry.close()


class _PlainPredictor:
    """Not scikit-learn, not torch: only storable as a pickle."""

    def predict(self, X):
        return np.zeros(len(X))


def test_pickle_models_only_load_from_trusted_sources(registry, platform) -> None:
    name = _name()
    v = registry.register(name, _PlainPredictor(), allow_pickle=True)
    assert v["format"] == "pickle"
    with pytest.raises(UnsafeArtifactError, match="pickle"):
        registry.load(name, 1)
    trusting = RegistryClient(registry.actor, platform.settings.model_copy(
        update={"trusted_sources": [str(platform.settings.artifact_location)]}))
    assert trusting.load(name, 1).predict(pd.DataFrame({"a": [1, 2]})).tolist() == [0.0, 0.0]


def test_registration_compiles_the_model_and_keeps_the_onnx_bytes_checked(registry, xy, platform) -> None:
    from sklearn.semi_supervised import LabelSpreading

    from raymlops.registry.formats import COMPILED_FILE, digest
    from raymlops.registry.store import RegistryStore

    X, y = xy
    name = _name()
    row = registry.register(name, _model(xy), input_example=X.head(3), check_data=(X, y))
    report = row["meta"]["compiled"]
    assert report["serves"] and report["label_agreement"] == 1.0 and report["max_abs_diff"] <= 1e-5
    assert report["rows_checked"] == 3 + len(X) and report["metric"] == "roc_auc"
    onnx = RegistryStore(platform.settings).read_file(row["source"], COMPILED_FILE)
    assert digest(onnx) == report["sha256"]

    unknown = LabelSpreading().fit(X, y)  # a model skl2onnx has no converter for
    other = registry.register(name, unknown, input_example=X.head(3))
    assert not other["meta"]["compiled"]["serves"]
    assert other["meta"]["compiled"]["reason"].startswith("does not convert")
    plain = registry.register(name, _model(xy), input_example=X.head(3), compile=False)
    assert plain["meta"]["compiled"] is None
