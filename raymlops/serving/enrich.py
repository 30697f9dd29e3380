"""Online feature enrichment: entity keys in the request, features from the replica's cache.

A model trained on a FeatureService (``ArtifactMeta.feature_service``) was fitted on columns
named ``{view}__{feature}`` (the point-in-time join's names). At serving time the caller sends
only the entity join keys and request-time fields; the feature columns are looked up in an
:class:`~raymlops.features.cache.OnlineFeatureCache` (local memory, kept fresh by the feature
store's change feed), so enrichment costs dict lookups, not an actor call per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from raymlops.serving.schema import ColumnSpec, InputSchema

__all__ = ["KEY_TYPES", "Enrichment"]

# Feature-store dtypes of join keys -> MLflow column types (what the request must send).
KEY_TYPES = {
    "int32": "long", "int64": "long", "float32": "double", "float64": "double",
    "string": "string", "bool": "boolean", "timestamp": "datetime",
}


@dataclass
class Enrichment:
    """What a FeatureService adds to a request, and the cache it reads from."""

    service: str
    keys: dict[str, str]  # join key -> MLflow type
    columns: list[str]  # the f"{view}__{feature}" columns the service provides
    cache: Any  # OnlineFeatureCache (anything with .get(rows) -> {"rows": [...]})

    @classmethod
    def from_plan(cls, plan: dict[str, Any], cache: Any) -> Enrichment:
        """From the feature store's ``resolve_service`` answer (views, entities, features)."""
        keys: dict[str, str] = {}
        columns: list[str] = []
        for item in plan["views"]:
            for key, dtype in item["entity"]["join_keys"].items():
                keys[key] = KEY_TYPES.get(dtype, "string")
            columns.extend(f"{item['view']['name']}__{f}" for f in item["features"])
        return cls(service=plan["service"], keys=keys, columns=columns, cache=cache)

    def request_schema(self, model_schema: InputSchema | None) -> InputSchema:
        """Model inputs the service does not provide, plus the join keys to look them up."""
        base = model_schema.without(self.columns) if model_schema else InputSchema(())
        return base.with_columns(ColumnSpec(k, t) for k, t in self.keys.items())

    def enrich(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` plus the service's feature columns (null where the store has no value)."""
        records = frame[list(self.keys)].to_dict("records")
        found = self.cache.get(records)["rows"]
        features = pd.DataFrame.from_records(
            [{c: row.get(c) for c in self.columns} for row in found],
            index=frame.index, columns=self.columns,
        )
        return pd.concat([frame, features], axis=1)

    def enrich_columns(self, columns: dict[str, list[Any]], rows: int) -> dict[str, list[Any]]:
        """:meth:`enrich` on plain columns (the online hot path): the same lookups, no frame."""
        keys = list(self.keys)
        found = self.cache.get([{k: columns[k][i] for k in keys} for i in range(rows)])["rows"]
        return {**columns, **{c: [row.get(c) for row in found] for c in self.columns}}

    def stop(self) -> None:
        stop = getattr(self.cache, "stop", None)
        if stop is not None:
            stop()
