"""Feature store: definitions, offline Parquet store, point-in-time joins, online store.

Entry points: :class:`FeatureStoreClient` (apply, ingest, materialize, online reads,
historical retrieval of any size), the definition models, the point-in-time joins and the
replica-local online cache. Names are imported on first use (PEP 562), so a process that
needs one of them does not import Ray or the SQL store for the others.
"""

from __future__ import annotations

from raymlops._lazy import lazy_getattr

_EXPORTS = {
    "FEATURES_ACTOR": "raymlops.features.actor",
    "FeatureStoreClient": "raymlops.features.client",
    "OnlineFeatureCache": "raymlops.features.cache",
    "Entity": "raymlops.features.definitions",
    "Feature": "raymlops.features.definitions",
    "FeatureRepo": "raymlops.features.definitions",
    "FeatureService": "raymlops.features.definitions",
    "FeatureView": "raymlops.features.definitions",
    "load_repo": "raymlops.features.definitions",
    "point_in_time_join": "raymlops.features.pit",
    "point_in_time_join_ray": "raymlops.features.pit_ray",
    "HistoricalFeatures": "raymlops.features.retrieval",
    "RetrievalResult": "raymlops.features.retrieval_ray",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
