"""RegistryClient: the Python API over the registry actor (register, aliases, load, watch).

Serialization, signature checks and digest computation happen here, in the caller's process,
so bad input is refused before anything reaches the actor or the store (nothing half-written),
and the actor only ever handles bytes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from raymlops._actor_client import ActorClient
from raymlops.config import Settings
from raymlops.exceptions import RaymlopsError, SchemaMismatchError, ValidationError
from raymlops.registry.actor import lineage_dict
from raymlops.registry.formats import (
    ArtifactMeta,
    DeferredModel,
    Predictor,
    deserialize,
    digest,
    serialize,
)
from raymlops.registry.names import validate_model_name
from raymlops.registry.records import Lineage

__all__ = ["REGISTRY_ACTOR", "AliasWatch", "RegistryClient", "check_signature"]

REGISTRY_ACTOR = "raymlops-registry"


def check_signature(input_example: pd.DataFrame, signature: Any) -> None:
    """The input example must satisfy the signature and hold no column it does not declare."""
    from mlflow.exceptions import MlflowException
    from mlflow.models.utils import _enforce_schema

    try:
        _enforce_schema(input_example, signature.inputs)
    except MlflowException as exc:
        raise SchemaMismatchError(
            f"the input example does not match the signature: {exc.message}", field="signature"
        ) from None
    extra = [c for c in input_example.columns if c not in set(signature.inputs.input_names())]
    if extra:
        raise SchemaMismatchError(
            f"the input example has columns the signature does not declare: {extra}",
            field="signature",
        )


def _infer_signature(model: Any, example: pd.DataFrame) -> Any:
    from mlflow.models import infer_signature

    try:
        if hasattr(model, "predict"):
            output = model.predict(example)
        else:  # torch module
            import numpy as np
            import torch

            with torch.no_grad():
                output = model(torch.from_numpy(np.asarray(example, dtype=np.float32))).numpy()
    except Exception as exc:  # noqa: BLE001 - any failure here is the user's input
        raise SchemaMismatchError(
            f"the model cannot predict on the input example: {type(exc).__name__}: {exc}",
            field="input_example",
        ) from None
    return infer_signature(example, output)


class RegistryClient(ActorClient):
    """Talks to the ``raymlops-registry`` actor; create with ``RegistryClient.connect()``."""

    ACTOR = REGISTRY_ACTOR

    def __init__(self, actor: Any, settings: Settings) -> None:
        super().__init__(actor, settings)
        self._alias_cache: dict[tuple[str, str], int | None] = {}
        self._watches: list[AliasWatch] = []
        self._cache_lock = threading.Lock()

    # -- writes -----------------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        *,
        input_example: pd.DataFrame | None = None,
        signature: Any = None,
        lineage: Lineage | dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        aliases: list[str] | tuple[str, ...] = (),
        description: str = "",
        init_kwargs: dict[str, Any] | None = None,
        task: str | None = None,
        allow_pickle: bool = False,
        feature_service: str | None = None,
        entity_timestamp: str | None = None,
        training_data: pd.DataFrame | None = None,
        data_schema: dict[str, Any] | None = None,
        check_data: tuple[pd.DataFrame, Any] | None = None,
        compile: bool = True,
    ) -> dict[str, Any]:
        """Register a fitted scikit-learn / torch model (or, with allow_pickle, anything).

        With an input example the signature is inferred (or, if given, checked against it).
        A retried call with the same ``idempotency_key`` returns the same version.
        ``feature_service`` (+ ``entity_timestamp``, the entity rows' "as of" column) binds the
        model to the feature store: batch and online prediction then take entity keys and
        fetch the rest. ``training_data`` (or a ready ``data_schema``) stores the validation
        schema of the training data with the version, for ``validate`` later.

        With ``compile`` (and an input example) the model is also compiled to ONNX and checked
        on the example plus ``check_data``'s rows (labelled: ``(X, y)``, e.g. the validation
        split, so a tree ensemble's gate metric is compared too) or a sample of
        ``training_data``; see :mod:`raymlops.registry.compiled`. The version records the
        result either way (``meta.compiled``), and why the original serves when it does.
        """
        validate_model_name(name)
        if input_example is not None and not isinstance(input_example, pd.DataFrame):
            raise ValidationError("input_example must be a pandas DataFrame", field="input_example")
        if signature is not None and input_example is not None:
            check_signature(input_example, signature)
        elif input_example is not None:
            signature = _infer_signature(model, input_example)
        sig = signature.to_dict() if signature is not None else None
        names = list(input_example.columns) if input_example is not None else None
        data, meta = serialize(
            model, init_kwargs=init_kwargs, task=task, feature_names=names, signature=sig,
            allow_pickle=allow_pickle,
        )
        if entity_timestamp and not feature_service:
            raise ValidationError("entity_timestamp only makes sense with a feature_service",
                                  field="entity_timestamp")
        schema_bytes = _schema_bytes(training_data, data_schema)
        onnx, report = None, None
        if compile and input_example is not None and meta.flavor in ("sklearn", "torch"):
            from raymlops.registry.compiled import compile_model

            rows, y = _check_rows(input_example, check_data, training_data)
            onnx, report = compile_model(model, rows, meta.task or "classification", y)
        meta = dataclasses.replace(
            meta, feature_service=feature_service, entity_timestamp=entity_timestamp,
            data_schema_sha256=digest(schema_bytes) if schema_bytes is not None else None,
            compiled=report.to_dict() if report is not None else None,
        )
        return self._call(
            "register", name, data, meta.__dict__, lineage_dict(lineage), dict(tags or {}),
            idempotency_key, description, list(aliases), schema_bytes, onnx,
        )

    def register_run(
        self, name: str, run_id: str, artifact_path: str = "model", **kwargs: Any
    ) -> dict[str, Any]:
        """Register a model logged in an MLflow run (our format, or MLflow's sklearn flavor)."""
        import tempfile

        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.settings.tracking_uri, self.settings.tracking_uri)
        with tempfile.TemporaryDirectory() as tmp:
            local = _download_run_model(client, run_id, artifact_path, tmp)
            data, meta = _read_run_model(local)
        lineage = lineage_dict(kwargs.pop("lineage", None)) or {}
        lineage["run_id"] = run_id
        return self._call(
            "register", name, data, meta.__dict__, lineage, dict(kwargs.pop("tags", {}) or {}),
            kwargs.pop("idempotency_key", None), kwargs.pop("description", ""),
            list(kwargs.pop("aliases", ())),
        )

    def set_alias(self, name: str, alias: str, version: int | str) -> dict[str, Any]:
        return self._call("set_alias", name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._call("delete_alias", name, alias)

    def promote(self, name: str, version: int | str | None = None) -> dict[str, Any]:
        return self._call("promote", name, version)

    def rollback(self, name: str) -> dict[str, Any]:
        return self._call("rollback", name)

    def archive(self, name: str, version: int | str) -> dict[str, Any]:
        return self._call("archive", name, version)

    def delete_version(self, name: str, version: int | str) -> dict[str, Any]:
        return self._call("delete_version", name, version)

    # -- reads ------------------------------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        return self._call("list_models")

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        return self._call("list_versions", name)

    def get_version(self, name: str, ref: int | str = "champion") -> dict[str, Any]:
        return self._call("get_version", name, ref)

    def resolve(self, name: str, ref: int | str) -> int:
        return self._call("resolve", name, ref)

    def resolve_cached(self, name: str, alias: str) -> int | None:
        """Alias -> version from a process-local cache that the actor keeps fresh by push.

        The first call per alias asks the actor and starts a watch; later calls are a dict
        lookup (microseconds, no RPC), and the watch updates the entry within milliseconds of
        the alias moving. This is what serving replicas use on every request.
        """
        key = (name, alias)
        try:
            return self._alias_cache[key]
        except KeyError:
            pass
        with self._cache_lock:
            if key not in self._alias_cache:
                watch = AliasWatch(self, name, alias, lambda v: self._alias_cache.__setitem__(key, v), 30.0)
                self._alias_cache[key] = watch.version
                self._watches.append(watch)
                watch.start()
        return self._alias_cache[key]

    def close(self) -> None:
        """Stop the background watches this client started."""
        for watch in self._watches:
            watch.stop()
        self._watches.clear()
        self._alias_cache.clear()

    def search(self, **kwargs: Any) -> list[dict[str, Any]]:
        return self._call("search", **kwargs)

    def data_schema(self, name: str, ref: int | str = "champion") -> dict[str, Any] | None:
        """The training data's validation schema stored with the version (None if none was)."""
        return self._call("data_schema", name, ref)

    def load(self, name: str, ref: int | str = "champion") -> Predictor:
        """A ready predictor; bytes come from the object store (put there once by the actor)."""
        import ray

        info, (ref_obj,) = self._call("model_ref", name, ref)
        data = ray.get(ref_obj)
        return predictor_from(info, data, self.settings)

    def watch(
        self, name: str, alias: str, callback: Callable[[int | None], None], poll_s: float = 30.0
    ) -> AliasWatch:
        """Call ``callback(new_version)`` each time ``alias`` moves, from a background thread."""
        watch = AliasWatch(self, name, alias, callback, poll_s)
        watch.start()
        return watch


def _check_rows(example: pd.DataFrame, check_data: tuple[pd.DataFrame, Any] | None,
                training_data: pd.DataFrame | None, limit: int = 5000) -> tuple[pd.DataFrame, Any]:
    """The example plus up to ``limit`` rows to check a compiled model on; labels for the
    last rows when ``check_data`` gives them."""
    import numpy as np

    columns = list(example.columns)
    if check_data is not None:
        X, y = check_data
        pick = np.random.default_rng(0).permutation(len(X))[:limit]
        sample = X.iloc[np.sort(pick)][columns]
        labels = np.asarray(y)[np.sort(pick)]
    elif training_data is not None and set(columns) <= set(training_data.columns):
        sample = training_data[columns].sample(n=min(limit, len(training_data)), random_state=0)
        labels = None
    else:
        return example, None
    return pd.concat([example, sample], ignore_index=True), labels


def _schema_bytes(training_data: pd.DataFrame | None, data_schema: dict[str, Any] | None) -> bytes | None:
    import json

    from raymlops.data_schema import infer_schema

    if training_data is not None and data_schema is not None:
        raise ValidationError("pass training_data or data_schema, not both", field="data_schema")
    if training_data is not None:
        if not isinstance(training_data, pd.DataFrame) or training_data.empty:
            raise ValidationError("training_data must be a non-empty pandas DataFrame", field="training_data")
        data_schema = infer_schema(training_data)
    if data_schema is None:
        return None
    if not isinstance(data_schema, dict) or not isinstance(data_schema.get("columns"), dict):
        raise ValidationError("data_schema must be a dict with a 'columns' mapping", field="data_schema")
    return json.dumps(data_schema, sort_keys=True).encode()


def predictor_from(info: dict[str, Any], data: bytes, settings: Settings,
                   compiled: bytes | None = None, threads: int = 1,
                   defer_original: bool = False) -> Predictor:
    """Bytes + version description -> Predictor (digest checked, pickle only if trusted).

    ``compiled``: the version's ONNX bytes (from the registry's ``compiled_ref``, which hands
    them out only when they matched the original), run with ``threads`` ONNX Runtime threads.
    ``defer_original``: when the compiled model can run on its own (a scikit-learn model whose
    record has what that needs), load the original only if something asks for it."""
    meta = ArtifactMeta(**info["meta"])
    trusted = any(info["source"].startswith(p) for p in settings.trusted_sources)
    if compiled is not None and defer_original:
        from raymlops.registry.compiled import load_compiled_alone

        alone = load_compiled_alone(compiled, meta, threads=threads)
        if alone is not None:
            original = DeferredModel(lambda: deserialize(data, meta, trusted_source=trusted))
            return Predictor(original, meta, info["name"], int(info["version"]), compiled=alone)
    model = deserialize(data, meta, trusted_source=trusted)
    onnx = None
    if compiled is not None:
        from raymlops.registry.compiled import load_compiled

        onnx = load_compiled(compiled, model, meta, threads=threads)
    return Predictor(model, meta, info["name"], int(info["version"]), compiled=onnx)


def compiled_bytes(registry: Any, name: str, version: int) -> bytes | None:
    """The version's compiled model when it serves (through the object store), else None."""
    import ray

    refs = registry._call("compiled_ref", name, version)
    return ray.get(refs[0]) if refs else None


def _download_run_model(client: Any, run_id: str, artifact_path: str, tmp: str) -> Path:
    """The run's artifact folder, or (MLflow 3) the logged model of that name from the run."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ValidationError(f"no MLflow run {run_id!r}", field="run_id") from None
    try:
        return Path(client.download_artifacts(run_id, artifact_path, tmp))
    except Exception:  # noqa: BLE001, S110 - not a run artifact: MLflow 3 keeps models apart
        pass
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    for logged in models:
        if logged.name == artifact_path:
            return Path(mlflow.artifacts.download_artifacts(
                artifact_uri=logged.artifact_location, dst_path=tmp, tracking_uri=client._tracking_client.tracking_uri
            ))
    raise ValidationError(
        f"run {run_id} has no artifact or logged model named {artifact_path!r}", field="artifact_path"
    )


def _read_run_model(local: Path) -> tuple[bytes, ArtifactMeta]:
    import json

    from raymlops.registry.formats import DATA_FILES, META_FILE

    if (local / META_FILE).is_file():
        meta = ArtifactMeta.from_json((local / META_FILE).read_text())
        data = (local / DATA_FILES[meta.format]).read_bytes()
        return data, meta
    mlmodel = local / "MLmodel"
    if mlmodel.is_file():
        import yaml

        spec = yaml.safe_load(mlmodel.read_text())
        flavor = (spec.get("flavors") or {}).get("sklearn")
        if flavor:
            fmt = flavor.get("serialization_format", "pickle")
            data = (local / flavor["pickled_model"]).read_bytes()
            signature = spec.get("signature")
            return data, ArtifactMeta(
                flavor="sklearn",
                format="skops" if fmt == "skops" else "pickle",
                sha256=digest(data),
                size=len(data),
                signature=json.loads(json.dumps(signature)) if signature else None,
            )
    raise ValidationError(
        f"{local.name} is neither a raymlops model folder nor an MLflow sklearn model",
        field="artifact_path",
    )


class AliasWatch:
    """Long-polls the actor; survives actor restarts (the call is retried)."""

    def __init__(
        self, client: RegistryClient, name: str, alias: str,
        callback: Callable[[int | None], None], poll_s: float,
    ) -> None:
        self.client, self.name, self.alias = client, name, alias
        self.callback, self.poll_s = callback, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{name}@{alias}")
        try:
            self.version: int | None = client.resolve(name, alias)
        except RaymlopsError:
            self.version = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                new = self.client._call(
                    "wait_for_alias", self.name, self.alias, self.version, self.poll_s,
                    timeout=self.poll_s + 30,
                )
            except Exception:  # noqa: BLE001 - actor restarting: try again shortly
                self._stop.wait(0.5)
                continue
            if new != self.version and not self._stop.is_set():
                self.version = new
                self.callback(new)
