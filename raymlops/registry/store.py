"""The registry's durable layer: MLflow's model registry on SQL, plus the model bytes.

Everything that must survive lives here before a write is acknowledged: the version row and
its tags (digest, format, lineage, idempotency key) are written by one
``create_model_version`` call, which MLflow commits in one transaction; the bytes go to the
artifact store first. So a crash at any point leaves either nothing visible or a complete
version, and a retried registration with the same key finds it (:meth:`find_by_key`).

Works with any MLflow backend (SQLite by default, PostgreSQL for clusters) and any artifact
store MLflow knows (local path, S3, GCS...), through MLflow's artifact repositories.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from raymlops.config import Settings
from raymlops.exceptions import (
    ModelNotFoundError,
    RaymlopsError,
    VersionNotFoundError,
)
from raymlops.registry.formats import DATA_FILES, META_FILE, ArtifactMeta
from raymlops.registry.records import (
    ARCHIVED_TAG,
    KEY_TAG,
    LINEAGE_TAG,
    META_TAG,
    TAG_PREFIX,
    Lineage,
    ModelRecord,
    ModelVersion,
)

__all__ = ["Lineage", "ModelRecord", "ModelVersion", "RegistryStore", "TAG_PREFIX"]

def _is_exists_error(exc: MlflowException) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_ALREADY_EXISTS" or "already exists" in str(exc)


def _is_missing_error(exc: MlflowException) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def _local_path(uri: str) -> Path | None:
    """A plain path is read directly (fast path); any URI, file:// included, goes through
    MLflow's artifact repositories, the code path remote stores (s3://, gs://...) take."""
    return Path(uri) if "://" not in uri else None


class RegistryStore:
    """Synchronous, stateless access to the durable registry; safe from many processes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)

    # -- bytes ------------------------------------------------------------------------------

    def write_artifact(
        self, name: str, data: bytes, meta: ArtifactMeta, extras: dict[str, bytes] | None = None
    ) -> str:
        """Write bytes + meta (+ extra files such as the data schema) to a fresh folder in the
        artifact store; returns its URI."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        folder = f"{meta.sha256[:16]}-{uuid.uuid4().hex[:8]}"
        base = str(self.settings.artifact_location).rstrip("/")
        uri = f"{base}/registry/{name}/{folder}"
        local = _local_path(uri)
        if local is not None:
            local.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / DATA_FILES[meta.format]).write_bytes(data)
            (Path(tmp) / META_FILE).write_text(meta.to_json())
            for filename, payload in (extras or {}).items():
                (Path(tmp) / filename).write_bytes(payload)
            get_artifact_repository(uri).log_artifacts(tmp)
        return uri

    def read_artifact(self, source: str, meta: ArtifactMeta) -> bytes:
        return self.read_file(source, DATA_FILES[meta.format])

    def read_file(self, source: str, filename: str) -> bytes:
        """One file of a version's artifact folder (local path or any MLflow artifact URI)."""
        local = _local_path(source)
        if local is not None:
            path = local / filename
            if not path.is_file():
                raise RaymlopsError(f"model file {path} is missing from the artifact store")
            return path.read_bytes()
        import mlflow.artifacts

        with tempfile.TemporaryDirectory() as tmp:
            got = mlflow.artifacts.download_artifacts(artifact_uri=f"{source}/{filename}", dst_path=tmp)
            return Path(got).read_bytes()

    # -- rows -------------------------------------------------------------------------------

    def ensure_model(self, name: str) -> None:
        try:
            self.client.create_registered_model(name, tags={"raymlops.managed": "true"})
        except MlflowException as exc:
            if not _is_exists_error(exc):
                raise

    def find_by_key(self, name: str, key: str) -> ModelVersion | None:
        safe_key = key.replace("'", "")
        try:
            found = self.client.search_model_versions(
                f"name='{name}' and tags.`{KEY_TAG}` = '{safe_key}'"
            )
        except MlflowException:
            return None
        return self._to_version(found[0]) if found else None

    def create_version(
        self,
        name: str,
        source: str,
        meta: ArtifactMeta,
        lineage: Lineage,
        tags: dict[str, str],
        idempotency_key: str | None,
        description: str = "",
        attempts: int = 30,
    ) -> ModelVersion:
        """One transaction: version row + all tags. Retries version-number races (PG)."""
        all_tags = dict(tags)
        all_tags[META_TAG] = meta.to_json()
        all_tags[LINEAGE_TAG] = lineage.to_json()
        if idempotency_key:
            all_tags[KEY_TAG] = idempotency_key
        self.ensure_model(name)
        for attempt in range(attempts):
            try:
                mv = self.client.create_model_version(
                    name, source, run_id=lineage.run_id, tags=all_tags, description=description or None
                )
                return self._to_version(mv)
            except MlflowException as exc:
                # Concurrent writers on one database race for the next version number;
                # MLflow retries 3 times, a busy cluster needs more. Nothing was written.
                if attempt == attempts - 1 or "version" not in str(exc).lower():
                    raise
                if idempotency_key:
                    existing = self.find_by_key(name, idempotency_key)
                    if existing is not None:
                        return existing
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311 - retry jitter
        raise AssertionError("unreachable")

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        try:
            self.client.delete_registered_model_alias(name, alias)
        except MlflowException as exc:
            if not _is_missing_error(exc):
                raise

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self.client.set_model_version_tag(name, str(version), key, value)

    def delete_version(self, name: str, version: int) -> None:
        try:
            self.client.delete_model_version(name, str(version))
        except MlflowException as exc:
            if _is_missing_error(exc):
                raise VersionNotFoundError(f"model {name!r} has no version {version}") from exc
            raise

    # -- reading everything back (actor start / restart) -------------------------------------

    def _to_version(self, mv: Any) -> ModelVersion:
        tags = dict(mv.tags or {})
        meta = ArtifactMeta.from_json(tags[META_TAG]) if META_TAG in tags else ArtifactMeta(
            flavor="unknown", format="unknown", sha256="", size=0
        )
        return ModelVersion(
            name=mv.name,
            version=int(mv.version),
            source=mv.source,
            meta=meta,
            lineage=Lineage.from_json(tags.get(LINEAGE_TAG)),
            tags=tags,
            created_at=(mv.creation_timestamp or 0) / 1000.0,
            idempotency_key=tags.get(KEY_TAG),
            archived=tags.get(ARCHIVED_TAG) == "true",
            description=mv.description or "",
        )

    def _pages(self, fn: Any, **kwargs: Any) -> list[Any]:
        items: list[Any] = []
        token = None
        while True:
            page = fn(page_token=token, **kwargs)
            items.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return items

    def load_model(self, name: str) -> ModelRecord:
        try:
            rm = self.client.get_registered_model(name)
        except MlflowException as exc:
            if _is_missing_error(exc):
                raise ModelNotFoundError(f"no registered model named {name!r}") from exc
            raise
        record = ModelRecord(name=name, created_at=(rm.creation_timestamp or 0) / 1000.0)
        record.aliases = {a: int(v) for a, v in (rm.aliases or {}).items()}
        for mv in self._pages(
            self.client.search_model_versions, filter_string=f"name='{name}'", max_results=1000
        ):
            version = self._to_version(mv)
            record.versions[version.version] = version
        return record

    def load_all(self) -> dict[str, ModelRecord]:
        """Every model managed by raymlops, for rebuilding the actor's cache."""
        models = self._pages(
            self.client.search_registered_models,
            filter_string="tags.`raymlops.managed` = 'true'",
            max_results=1000,
        )
        return {rm.name: self.load_model(rm.name) for rm in models}

    def delete_model(self, name: str) -> None:
        try:
            self.client.delete_registered_model(name)
        except MlflowException as exc:
            if _is_missing_error(exc):
                raise ModelNotFoundError(f"no registered model named {name!r}") from exc
            raise
