"""The registry's records: what a version is (no MLflow import: the actor and drivers use
these without paying for MLflow until they touch the store)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from raymlops.registry.formats import ArtifactMeta

__all__ = ["ARCHIVED_TAG", "KEY_TAG", "LINEAGE_TAG", "META_TAG", "TAG_PREFIX", "Lineage",
           "ModelRecord", "ModelVersion"]

TAG_PREFIX = "raymlops."
KEY_TAG = "raymlops.idempotency_key"
META_TAG = "raymlops.meta"
LINEAGE_TAG = "raymlops.lineage"
ARCHIVED_TAG = "raymlops.archived"


@dataclass(frozen=True)
class Lineage:
    """Where a version came from: enough to reproduce it or explain it."""

    run_id: str | None = None
    data_window: tuple[str, str] | None = None
    feature_views: dict[str, int] = field(default_factory=dict)
    parent_version: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Lineage:
        if not text:
            return cls()
        raw = json.loads(text)
        window = raw.get("data_window")
        return cls(
            run_id=raw.get("run_id"),
            data_window=tuple(window) if window else None,  # type: ignore[arg-type]
            feature_views={k: int(v) for k, v in (raw.get("feature_views") or {}).items()},
            parent_version=raw.get("parent_version"),
            metrics={k: float(v) for k, v in (raw.get("metrics") or {}).items()},
        )


@dataclass
class ModelVersion:
    """One registered version as the registry (and its cache) sees it."""

    name: str
    version: int
    source: str
    meta: ArtifactMeta
    lineage: Lineage
    tags: dict[str, str]
    created_at: float
    idempotency_key: str | None = None
    archived: bool = False
    description: str = ""

    def to_dict(self, aliases: list[str] | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "aliases": sorted(aliases or []),
            "source": self.source,
            "flavor": self.meta.flavor,
            "format": self.meta.format,
            "sha256": self.meta.sha256,
            "size": self.meta.size,
            "task": self.meta.task,
            "signature": self.meta.signature,
            "meta": asdict(self.meta),
            "lineage": asdict(self.lineage),
            "tags": {k: v for k, v in self.tags.items() if not k.startswith(TAG_PREFIX)},
            "created_at": self.created_at,
            "archived": self.archived,
            "description": self.description,
        }


@dataclass
class ModelRecord:
    """A registered model: its versions and where its aliases point."""

    name: str
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    created_at: float = 0.0

    def aliases_of(self, version: int) -> list[str]:
        return [a for a, v in self.aliases.items() if v == version]
