"""Model registry: a Ray actor over MLflow's registry on SQL, with safe artifact formats."""

from raymlops.registry.client import REGISTRY_ACTOR, AliasWatch, RegistryClient, check_signature
from raymlops.registry.formats import ArtifactMeta, Predictor, deserialize, serialize
from raymlops.registry.names import parse_ref, validate_alias, validate_model_name
from raymlops.registry.store import Lineage, ModelVersion, RegistryStore

__all__ = [
    "REGISTRY_ACTOR",
    "AliasWatch",
    "ArtifactMeta",
    "Lineage",
    "ModelVersion",
    "Predictor",
    "RegistryClient",
    "RegistryStore",
    "check_signature",
    "deserialize",
    "parse_ref",
    "serialize",
    "validate_alias",
    "validate_model_name",
]
