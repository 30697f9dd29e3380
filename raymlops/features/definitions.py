"""Feature definitions: entities, feature views and feature services (Feast's vocabulary).

Pydantic models with ``extra="forbid"`` so a typo in a definitions YAML is an error, not a
silently ignored key. A view's *schema fingerprint* covers what consumers depend on (entity,
keys, feature names and dtypes, timestamp columns); the definitions store turns any change of
it into a new version instead of overwriting the old one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from raymlops.exceptions import ValidationError

__all__ = [
    "DType",
    "Entity",
    "Feature",
    "FeatureRepo",
    "FeatureService",
    "FeatureView",
    "load_repo",
]

DType = Literal["int32", "int64", "float32", "float64", "string", "bool", "timestamp"]
_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Entity(_Strict):
    """What features are about (an airport, a plane), identified by its join keys."""

    name: str = Field(pattern=_NAME, description="Entity name, e.g. 'origin'.")
    join_keys: dict[str, DType] = Field(
        min_length=1, description="Key column -> dtype, e.g. {'origin': 'string'}."
    )
    description: str = Field(default="", description="What this entity is.")


class Feature(_Strict):
    name: str = Field(pattern=_NAME, description="Column name in the view's data.")
    dtype: DType = Field(description="Arrow-level type the column must have.")


class FeatureView(_Strict):
    """A table of features for one entity over event time, with a TTL."""

    name: str = Field(pattern=_NAME, description="View name, e.g. 'weather'.")
    entity: str = Field(pattern=_NAME, description="Name of the entity this view is keyed by.")
    features: list[Feature] = Field(min_length=1, description="The feature columns.")
    source: str | None = Field(
        default=None, description="Parquet path or folder to ingest from; None for pushed data."
    )
    event_timestamp: str = Field(default="event_timestamp", description="Event time column.")
    created_timestamp: str | None = Field(
        default=None, description="When a row was written; breaks ties between equal event times."
    )
    ttl_seconds: float | None = Field(
        default=None, gt=0, description="How long a value stays valid after its event time."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")
    owner: str = Field(default="", description="Who to ask about this view.")

    @field_validator("features")
    @classmethod
    def _unique(cls, features: list[Feature]) -> list[Feature]:
        names = [f.name for f in features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feature names: {dupes}")
        return features

    @property
    def ttl(self) -> dt.timedelta | None:
        return dt.timedelta(seconds=self.ttl_seconds) if self.ttl_seconds else None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def schema_fingerprint(self, entity: Entity) -> str:
        """Changes exactly when a consumer's view of the data would change."""
        payload = {
            "entity": entity.name,
            "keys": entity.join_keys,
            "features": [(f.name, f.dtype) for f in self.features],
            "event_timestamp": self.event_timestamp,
            "created_timestamp": self.created_timestamp,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class FeatureService(_Strict):
    """The named set of features one model consumes: ``view`` (all) or ``view:feature``."""

    name: str = Field(pattern=_NAME, description="Service name, e.g. 'delay_model'.")
    features: list[str] = Field(min_length=1, description="'view' or 'view:feature' entries.")
    description: str = Field(default="", description="What model this serves.")

    def selection(self) -> dict[str, list[str] | None]:
        """view -> the features picked from it (None: all of them)."""
        out: dict[str, list[str] | None] = {}
        for ref in self.features:
            view, _, feature = ref.partition(":")
            if not feature:
                out[view] = None
            elif out.get(view, []) is not None:
                out.setdefault(view, [])
                out[view].append(feature)  # type: ignore[union-attr]
        return out


class FeatureRepo(_Strict):
    """Everything in one definitions file (``raymlops features apply FILE``)."""

    entities: list[Entity] = Field(default_factory=list)
    feature_views: list[FeatureView] = Field(default_factory=list)
    feature_services: list[FeatureService] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> FeatureRepo:
        entities = {e.name for e in self.entities}
        views = {v.name: v for v in self.feature_views}
        for view in self.feature_views:
            if view.entity not in entities:
                raise ValueError(f"feature view {view.name!r} names unknown entity {view.entity!r}")
        for service in self.feature_services:
            for ref in service.features:
                view_name, _, feature = ref.partition(":")
                if view_name not in views:
                    raise ValueError(f"service {service.name!r} names unknown view {view_name!r}")
                if feature and feature not in views[view_name].feature_names:
                    raise ValueError(
                        f"service {service.name!r} names unknown feature {feature!r} of view {view_name!r}"
                    )
        return self


def load_repo(path: str | Path) -> FeatureRepo:
    """Read a definitions YAML; any problem is a ValidationError naming where it is."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"definitions file {path} does not exist", field="path")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return FeatureRepo.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path} is not valid YAML: {exc}", field="path") from None
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<file>'}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationError(f"{path}: {problems}", field="definitions") from None
