"""The ModelRegistry actor: what MLflow's registry lacks on a cluster.

- **one serialized writer**: every write takes one asyncio lock, so alias moves and
  promotions never interleave (MLflow alone lets two drivers race);
- **cached reads**: the whole registry (versions, tags, aliases) lives in memory, rebuilt
  from SQL when the actor (re)starts, so alias resolution is a dict lookup;
- **idempotent writes**: ``register(..., idempotency_key=k)`` returns the version already made
  with ``k``; the key is a tag written in the same transaction as the version, so this holds
  across actor restarts (Ray retries the call on the restarted actor);
- **watchers**: ``wait_for_alias`` long-polls until an alias moves; serving hot-swaps on it;
- **object store**: ``model_ref`` puts a version's bytes into Ray's object store once, so N
  replicas load it without N reads of the artifact store.

Writes go to the durable store before the cache changes and before the call returns.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import asdict
from typing import Any

from raymlops.config import load_settings
from raymlops.exceptions import (
    AliasNotFoundError,
    ConflictError,
    ModelNotFoundError,
    ValidationError,
    VersionNotFoundError,
)
from raymlops.metrics import record as record_metric
from raymlops.registry.formats import COMPILED_FILE, DATA_SCHEMA_FILE, ArtifactMeta, verify_digest
from raymlops.registry.names import parse_ref, validate_alias, validate_model_name
from raymlops.registry.records import ARCHIVED_TAG, Lineage, ModelRecord, ModelVersion

__all__ = ["CHAMPION", "CHALLENGER", "PREVIOUS", "ModelRegistry"]

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
MAX_CACHED_MODELS = 16
_OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
}


class ModelRegistry:
    """Named, detached actor ``raymlops-registry`` (async: watchers wait without blocking)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from raymlops.registry.store import RegistryStore  # MLflow: only inside the actor

        self.settings = load_settings(**{k: v for k, v in settings.items() if v is not None})
        self.store = RegistryStore(self.settings)
        self.models: dict[str, ModelRecord] = self.store.load_all()
        self._keys: dict[tuple[str, str], int] = {
            (name, v.idempotency_key): v.version
            for name, record in self.models.items()
            for v in record.versions.values()
            if v.idempotency_key
        }
        self._lock = asyncio.Lock()
        self._alias_events: dict[tuple[str, str], asyncio.Event] = {}
        self._refs: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._compiled_refs: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._loading: dict[tuple[str, int], asyncio.Future[bytes]] = {}
        self._started_at = time.time()
        for name, model in self.models.items():  # exported again after a restart
            if CHAMPION in model.aliases:
                record_metric("raymlops_champion_version", model.aliases[CHAMPION], model=name)

    # -- helpers ----------------------------------------------------------------------------

    def _model(self, name: str) -> ModelRecord:
        validate_model_name(name)
        record = self.models.get(name)
        if record is None:
            raise ModelNotFoundError(f"no registered model named {name!r}", name=name)
        return record

    def _resolve(self, name: str, ref: int | str) -> ModelVersion:
        record = self._model(name)
        parsed = parse_ref(ref)
        if isinstance(parsed, str):
            if parsed not in record.aliases:
                raise AliasNotFoundError(
                    f"model {name!r} has no alias {parsed!r} (aliases: {sorted(record.aliases)})",
                    name=name, alias=parsed,
                )
            parsed = record.aliases[parsed]
        version = record.versions.get(parsed)
        if version is None:
            raise VersionNotFoundError(
                f"model {name!r} has no version {parsed} (versions: {sorted(record.versions)})",
                name=name, version=parsed,
            )
        return version

    def _describe(self, v: ModelVersion) -> dict[str, Any]:
        return v.to_dict(self.models[v.name].aliases_of(v.version))

    def _notify(self, name: str, alias: str) -> None:
        event = self._alias_events.pop((name, alias), None)
        if event is not None:
            event.set()

    async def _write(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def _set_alias_locked(self, name: str, alias: str, version: int) -> None:
        await self._write(self.store.set_alias, name, alias, version)
        self.models[name].aliases[alias] = version
        self._notify(name, alias)
        if alias == CHAMPION:
            record_metric("raymlops_champion_version", version, model=name)

    async def _delete_alias_locked(self, name: str, alias: str) -> None:
        await self._write(self.store.delete_alias, name, alias)
        if self.models[name].aliases.pop(alias, None) is not None:
            self._notify(name, alias)

    # -- reads ------------------------------------------------------------------------------

    async def ping(self) -> str:
        return "ok"

    async def list_models(self) -> list[dict[str, Any]]:
        rows = []
        for name in sorted(self.models):
            record = self.models[name]
            latest = max(record.versions) if record.versions else None
            rows.append({
                "name": name,
                "versions": len(record.versions),
                "latest": latest,
                "aliases": dict(sorted(record.aliases.items())),
            })
        return rows

    async def list_versions(self, name: str) -> list[dict[str, Any]]:
        record = self._model(name)
        return [self._describe(record.versions[v]) for v in sorted(record.versions)]

    async def get_version(self, name: str, ref: int | str) -> dict[str, Any]:
        return self._describe(self._resolve(name, ref))

    async def resolve(self, name: str, ref: int | str) -> int:
        """Alias or version -> version number, from memory (the fast path serving uses)."""
        return self._resolve(name, ref).version

    async def search(
        self,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        metric: str | None = None,
        op: str = ">=",
        value: float | None = None,
        include_archived: bool = False,
    ) -> list[dict[str, Any]]:
        if op not in _OPS:
            raise ValidationError(f"unknown comparison {op!r}; use one of {sorted(_OPS)}", field="op")
        if (metric is None) != (value is None):
            raise ValidationError("give both a metric and a value to compare it with", field="metric")
        names = [name] if name else sorted(self.models)
        out = []
        for model_name in names:
            record = self._model(model_name)
            for v in sorted(record.versions):
                mv = record.versions[v]
                if mv.archived and not include_archived:
                    continue
                if tags and any(mv.tags.get(k) != val for k, val in tags.items()):
                    continue
                if metric is not None:
                    got = mv.lineage.metrics.get(metric)
                    if got is None or not _OPS[op](got, float(value)):  # type: ignore[arg-type]
                        continue
                out.append(self._describe(mv))
        return out

    async def wait_for_alias(
        self, name: str, alias: str, known_version: int | None, timeout_s: float = 30.0
    ) -> int | None:
        """Return the alias's version as soon as it differs from ``known_version``.

        Long-poll: returns the current value after ``timeout_s`` even if unchanged, so a
        client loops; a deleted alias returns None.
        """
        self._model(name)
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.models.get(name, ModelRecord(name)).aliases.get(alias)
            if current != known_version:
                return current
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return current
            event = self._alias_events.setdefault((name, alias), asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), timeout=remaining)
            except TimeoutError:
                return self.models.get(name, ModelRecord(name)).aliases.get(alias)

    async def model_ref(self, name: str, ref: int | str) -> tuple[dict[str, Any], list[Any]]:
        """The version's description and ``[ObjectRef]`` of its bytes (put once, digest-checked)."""
        import ray

        mv = self._resolve(name, ref)
        key = (name, mv.version)
        if key not in self._refs:
            # Replicas ask at once: the first request reads and puts, the others await it.
            loading = self._loading.get(key)
            if loading is None:
                loading = asyncio.ensure_future(self._read_verified(mv))
                self._loading[key] = loading
            try:
                data = await asyncio.shield(loading)
            finally:
                self._loading.pop(key, None)
            if key not in self._refs:
                self._refs[key] = ray.put(data)
            while len(self._refs) > MAX_CACHED_MODELS:
                self._refs.popitem(last=False)
        self._refs.move_to_end(key)
        return self._describe(mv), [self._refs[key]]

    async def compiled_ref(self, name: str, ref: int | str) -> list[Any]:
        """``[ObjectRef]`` of the version's compiled model when it serves (digest-checked,
        put once), else ``[]``: the original flavour serves."""
        import ray

        mv = self._resolve(name, ref)
        report = mv.meta.compiled or {}
        if not report.get("serves"):
            return []
        key = (name, mv.version)
        if key not in self._compiled_refs:
            data = await asyncio.to_thread(self.store.read_file, mv.source, COMPILED_FILE)
            verify_digest(data, report["sha256"], where=f"{mv.source}/{COMPILED_FILE}")
            self._compiled_refs[key] = ray.put(data)
            while len(self._compiled_refs) > MAX_CACHED_MODELS:
                self._compiled_refs.popitem(last=False)
        self._compiled_refs.move_to_end(key)
        return [self._compiled_refs[key]]

    async def data_schema(self, name: str, ref: int | str) -> dict[str, Any] | None:
        """The validation schema of the training data recorded with the version (or None)."""
        import json

        mv = self._resolve(name, ref)
        if not mv.meta.data_schema_sha256:
            return None
        data = await asyncio.to_thread(self.store.read_file, mv.source, DATA_SCHEMA_FILE)
        verify_digest(data, mv.meta.data_schema_sha256, where=f"{mv.source}/{DATA_SCHEMA_FILE}")
        return json.loads(data)

    async def _read_verified(self, mv: ModelVersion) -> bytes:
        data = await asyncio.to_thread(self.store.read_artifact, mv.source, mv.meta)
        verify_digest(data, mv.meta.sha256, where=mv.source)
        return data

    # -- writes (serialized) ----------------------------------------------------------------

    async def register(
        self,
        name: str,
        data: bytes,
        meta: dict[str, Any],
        lineage: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        description: str = "",
        aliases: list[str] | None = None,
        data_schema: bytes | None = None,
        compiled: bytes | None = None,
    ) -> dict[str, Any]:
        validate_model_name(name)
        for alias in aliases or []:
            validate_alias(alias)
        artifact = ArtifactMeta(**meta)
        verify_digest(data, artifact.sha256, where="the registration request")
        if (data_schema is None) != (artifact.data_schema_sha256 is None):
            raise ValidationError("data_schema and meta.data_schema_sha256 go together", field="data_schema")
        if data_schema is not None:
            verify_digest(data_schema, artifact.data_schema_sha256 or "", where="the data schema")
        expected = (artifact.compiled or {}).get("sha256")
        if (compiled is None) != (expected is None):
            raise ValidationError("compiled bytes and meta.compiled.sha256 go together", field="compiled")
        if compiled is not None:
            verify_digest(compiled, expected or "", where="the compiled model")
        extras = {DATA_SCHEMA_FILE: data_schema} if data_schema is not None else {}
        if compiled is not None:
            extras[COMPILED_FILE] = compiled
        bad_tags = [k for k in (tags or {}) if k.startswith("raymlops.")]
        if bad_tags:
            raise ValidationError(f"tags starting with 'raymlops.' are reserved: {bad_tags}", field="tags")
        lin = Lineage.from_json(None) if not lineage else Lineage(**{
            **lineage,
            "data_window": tuple(lineage["data_window"]) if lineage.get("data_window") else None,
        })
        async with self._lock:
            known = self._keys.get((name, idempotency_key)) if idempotency_key else None
            if known is not None:
                mv = self.models[name].versions.get(known)
                # Bytes may legitimately differ on a retry from another process (skops names
                # arrays by object identity), so compare what a retry cannot change.
                if mv is not None and _kind(mv.meta) != _kind(artifact):
                    raise ConflictError(
                        f"idempotency key {idempotency_key!r} was used for a different kind of "
                        f"model (version {known} of {name!r} is {_kind(mv.meta)})",
                        name=name, version=known,
                    )
            if known is None:
                if lin.parent_version is not None and name in self.models:
                    self._resolve(name, lin.parent_version)
                source = await self._write(self.store.write_artifact, name, data, artifact, extras)
                mv = await self._write(
                    self.store.create_version, name, source, artifact, lin, dict(tags or {}),
                    idempotency_key, description,
                )
                record = self.models.setdefault(name, ModelRecord(name=name, created_at=time.time()))
                record.versions[mv.version] = mv
                if idempotency_key:
                    self._keys[(name, idempotency_key)] = mv.version
                known = mv.version
            for alias in aliases or []:
                if self.models[name].aliases.get(alias) != known:
                    await self._set_alias_locked(name, alias, known)
            return self._describe(self.models[name].versions[known])

    async def set_alias(self, name: str, alias: str, ref: int | str) -> dict[str, Any]:
        validate_alias(alias)
        async with self._lock:
            mv = self._resolve(name, ref)
            if mv.archived:
                raise ConflictError(f"version {mv.version} of {name!r} is archived; it cannot take an alias")
            await self._set_alias_locked(name, alias, mv.version)
            return self._describe(mv)

    async def delete_alias(self, name: str, alias: str) -> None:
        validate_alias(alias)
        async with self._lock:
            if alias not in self._model(name).aliases:
                raise AliasNotFoundError(f"model {name!r} has no alias {alias!r}", name=name, alias=alias)
            await self._delete_alias_locked(name, alias)

    async def promote(self, name: str, ref: int | str | None = None) -> dict[str, Any]:
        """Challenger (or ``ref``) becomes champion; the old champion keeps ``previous``."""
        async with self._lock:
            record = self._model(name)
            if ref is None and CHALLENGER not in record.aliases:
                raise AliasNotFoundError(
                    f"model {name!r} has no challenger to promote; name a version", name=name
                )
            mv = self._resolve(name, CHALLENGER if ref is None else ref)
            if mv.archived:
                raise ConflictError(f"version {mv.version} of {name!r} is archived")
            old = record.aliases.get(CHAMPION)
            if old != mv.version:
                await self._set_alias_locked(name, CHAMPION, mv.version)
                if old is not None:
                    await self._set_alias_locked(name, PREVIOUS, old)
                record_metric("raymlops_promotions_total", 1, model=name)
            if record.aliases.get(CHALLENGER) == mv.version:
                await self._delete_alias_locked(name, CHALLENGER)
            return {"name": name, "champion": mv.version, "previous": record.aliases.get(PREVIOUS)}

    async def rollback(self, name: str) -> dict[str, Any]:
        """``previous`` becomes champion again; the rolled-back version becomes ``previous``."""
        async with self._lock:
            record = self._model(name)
            if PREVIOUS not in record.aliases:
                raise AliasNotFoundError(f"model {name!r} has no previous champion to roll back to")
            target, bad = record.aliases[PREVIOUS], record.aliases.get(CHAMPION)
            await self._set_alias_locked(name, CHAMPION, target)
            if bad is not None and bad != target:
                await self._set_alias_locked(name, PREVIOUS, bad)
                await self._write(self.store.set_version_tag, name, bad, "raymlops.rolled_back_at",
                                  str(time.time()))
            record_metric("raymlops_rollbacks_total", 1, model=name)
            return {"name": name, "champion": target, "previous": record.aliases.get(PREVIOUS)}

    async def archive(self, name: str, ref: int | str) -> dict[str, Any]:
        async with self._lock:
            mv = self._resolve(name, ref)
            holding = self.models[name].aliases_of(mv.version)
            if CHAMPION in holding:
                raise ConflictError(f"version {mv.version} of {name!r} is the champion; promote another first")
            await self._write(self.store.set_version_tag, name, mv.version, ARCHIVED_TAG, "true")
            for alias in holding:
                await self._delete_alias_locked(name, alias)
            mv.archived = True
            mv.tags[ARCHIVED_TAG] = "true"
            return self._describe(mv)

    async def delete_version(self, name: str, ref: int | str) -> dict[str, Any]:
        async with self._lock:
            mv = self._resolve(name, ref)
            record = self.models[name]
            if CHAMPION in record.aliases_of(mv.version):
                raise ConflictError(
                    f"version {mv.version} of {name!r} is the champion; promote or roll back first"
                )
            await self._write(self.store.delete_version, name, mv.version)
            for alias in record.aliases_of(mv.version):
                record.aliases.pop(alias, None)
                self._notify(name, alias)
            record.versions.pop(mv.version, None)
            self._refs.pop((name, mv.version), None)
            if mv.idempotency_key:
                self._keys.pop((name, mv.idempotency_key), None)
            return {"name": name, "deleted": mv.version}

    async def stats(self) -> dict[str, Any]:
        return {
            "models": len(self.models),
            "versions": sum(len(r.versions) for r in self.models.values()),
            "cached_refs": len(self._refs),
            "started_at": self._started_at,
        }


def _kind(meta: ArtifactMeta) -> tuple[Any, ...]:
    return (meta.flavor, meta.format, meta.class_path, tuple(meta.feature_names or ()), meta.task)


def lineage_dict(lineage: Lineage | dict[str, Any] | None) -> dict[str, Any] | None:
    if lineage is None:
        return None
    return asdict(lineage) if isinstance(lineage, Lineage) else dict(lineage)
