"""Model registry: a Ray actor over MLflow's registry on SQL, with safe artifact formats.

Names are imported on first use (PEP 562), so creating the registry actor from a driver does
not import MLflow there.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "REGISTRY_ACTOR": "raymlops.registry.client",
    "AliasWatch": "raymlops.registry.client",
    "RegistryClient": "raymlops.registry.client",
    "check_signature": "raymlops.registry.client",
    "ArtifactMeta": "raymlops.registry.formats",
    "Predictor": "raymlops.registry.formats",
    "deserialize": "raymlops.registry.formats",
    "serialize": "raymlops.registry.formats",
    "parse_ref": "raymlops.registry.names",
    "validate_alias": "raymlops.registry.names",
    "validate_model_name": "raymlops.registry.names",
    "Lineage": "raymlops.registry.records",
    "ModelVersion": "raymlops.registry.records",
    "RegistryStore": "raymlops.registry.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'raymlops.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
