"""Durable, versioned store of feature definitions on SQL (SQLite default, PostgreSQL too),
and the materialization watermarks beside them.

``apply`` is one transaction: every definition in a repo file is compared with its latest
stored version; unchanged ones are left alone, changed ones get a *new* version (a feature's
dtype change never overwrites what a trained model was built on). Old versions stay readable,
so a model can name ``weather`` v1 while ``weather`` v2 is being materialized.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from raymlops.exceptions import FeatureViewNotFoundError
from raymlops.features.definitions import Entity, FeatureRepo, FeatureService, FeatureView
from raymlops.sql import sql_engine

__all__ = ["Change", "DefinitionsStore", "StoredDefinition"]

Kind = Literal["entity", "feature_view", "feature_service"]
_MODELS: dict[str, type] = {"entity": Entity, "feature_view": FeatureView, "feature_service": FeatureService}

_metadata = sa.MetaData()
_definitions = sa.Table(
    "raymlops_feature_definitions",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("kind", "name", "version", name="uq_feature_definition_version"),
)


# How far each view is materialized to the online store (incremental materialization starts
# there). In SQL, not a file of the actor's: a restarted actor on any host finds it.
_watermarks = sa.Table(
    "raymlops_materialization_watermarks",
    _metadata,
    sa.Column("view", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("end_us", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class StoredDefinition:
    kind: str
    name: str
    version: int
    spec: Any  # Entity | FeatureView | FeatureService
    fingerprint: str
    created_at: float


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    version: int
    action: Literal["created", "new_version", "unchanged"]
    reason: str = ""


class DefinitionsStore:
    def __init__(self, url: str) -> None:
        self.engine = sql_engine(url)
        _metadata.create_all(self.engine)

    def _latest(self, conn: sa.Connection, kind: str, name: str) -> StoredDefinition | None:
        row = conn.execute(
            sa.select(_definitions)
            .where(_definitions.c.kind == kind, _definitions.c.name == name)
            .order_by(_definitions.c.version.desc())
            .limit(1)
        ).first()
        return self._to_definition(row) if row else None

    @staticmethod
    def _to_definition(row: Any) -> StoredDefinition:
        spec = _MODELS[row.kind].model_validate(json.loads(row.spec))
        return StoredDefinition(row.kind, row.name, row.version, spec, row.fingerprint, row.created_at)

    def apply(self, repo: FeatureRepo, attempts: int = 5) -> list[Change]:
        """Store every definition of ``repo`` (new version on change), all or nothing."""
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    return self._apply(conn, repo)
            except IntegrityError:  # another writer took the version number: re-read, retry
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _apply(self, conn: sa.Connection, repo: FeatureRepo) -> list[Change]:
        entities = {e.name: e for e in repo.entities}
        for view in repo.feature_views:
            if view.entity not in entities:
                stored = self._latest(conn, "entity", view.entity)
                if stored is None:
                    raise FeatureViewNotFoundError(f"view {view.name!r} names unknown entity {view.entity!r}")
                entities[view.entity] = stored.spec
        items: list[tuple[str, Any, str]] = []
        for entity in repo.entities:
            items.append(("entity", entity, _fingerprint(entity)))
        for view in repo.feature_views:
            items.append(("feature_view", view, view.schema_fingerprint(entities[view.entity])))
        for service in repo.feature_services:
            items.append(("feature_service", service, _fingerprint(service)))
        changes = []
        for kind, spec, fingerprint in items:
            latest = self._latest(conn, kind, spec.name)
            if latest is not None and latest.spec == spec:
                changes.append(Change(kind, spec.name, latest.version, "unchanged"))
                continue
            version = 1 if latest is None else latest.version + 1
            reason = ""
            if latest is not None:
                reason = "schema changed" if latest.fingerprint != fingerprint else "metadata changed"
            conn.execute(sa.insert(_definitions).values(
                kind=kind, name=spec.name, version=version, spec=spec.model_dump_json(),
                fingerprint=fingerprint, created_at=time.time(),
            ))
            changes.append(Change(kind, spec.name, version, "created" if latest is None else "new_version", reason))
        return changes

    def get(self, kind: Kind, name: str, version: int | None = None) -> StoredDefinition:
        with self.engine.connect() as conn:
            if version is None:
                found = self._latest(conn, kind, name)
            else:
                row = conn.execute(sa.select(_definitions).where(
                    _definitions.c.kind == kind, _definitions.c.name == name,
                    _definitions.c.version == version,
                )).first()
                found = self._to_definition(row) if row else None
        if found is None:
            what = f"{kind.replace('_', ' ')} {name!r}" + (f" version {version}" if version else "")
            raise FeatureViewNotFoundError(f"no {what} is defined; run `raymlops features apply`",
                                           kind=kind, name=name)
        return found

    def list(self, kind: Kind | None = None) -> list[StoredDefinition]:
        """Latest version of every definition (of one kind, or all)."""
        with self.engine.connect() as conn:
            query = sa.select(_definitions)
            if kind:
                query = query.where(_definitions.c.kind == kind)
            rows = conn.execute(query.order_by(_definitions.c.kind, _definitions.c.name,
                                               _definitions.c.version)).all()
        latest: dict[tuple[str, str], Any] = {}
        for row in rows:
            latest[(row.kind, row.name)] = row
        return [self._to_definition(r) for r in latest.values()]


    def watermarks(self) -> dict[str, dict[str, int]]:
        """``{view: {"version", "end_us"}}`` of every materialized view."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_watermarks)).all()
        return {r.view: {"version": int(r.version), "end_us": int(r.end_us)} for r in rows}

    def set_watermarks(self, marks: dict[str, dict[str, int]]) -> None:
        """Replace the given views' watermarks, all in one transaction."""
        if not marks:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_watermarks).where(_watermarks.c.view.in_(list(marks))))
            conn.execute(sa.insert(_watermarks), [
                {"view": view, "version": int(m["version"]), "end_us": int(m["end_us"]),
                 "updated_at": time.time()} for view, m in marks.items()])


def _fingerprint(spec: Any) -> str:
    import hashlib

    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]
