"""Model registry: a Ray actor over MLflow's registry on SQL, with safe artifact formats.

Entry points: :class:`RegistryClient` (register, resolve, load, aliases, lineage, watch) and
the records it returns. The MLflow store and the artifact (de)serializers are the actor's
own; import their modules directly if you must. Names are imported on first use (PEP 562),
so creating the registry actor from a driver does not import MLflow there.
"""

from __future__ import annotations

from raymlops._lazy import lazy_getattr

_EXPORTS = {
    "REGISTRY_ACTOR": "raymlops.registry.client",
    "AliasWatch": "raymlops.registry.client",
    "RegistryClient": "raymlops.registry.client",
    "ArtifactMeta": "raymlops.registry.formats",
    "Predictor": "raymlops.registry.formats",
    "parse_ref": "raymlops.registry.names",
    "validate_alias": "raymlops.registry.names",
    "validate_model_name": "raymlops.registry.names",
    "Lineage": "raymlops.registry.records",
    "ModelVersion": "raymlops.registry.records",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
