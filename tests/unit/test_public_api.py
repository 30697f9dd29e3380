"""Each package's ``__all__`` is its public API: every name resolves, the entry points a user
needs are there, and importing a package does not import its heavy dependencies."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

ENTRY_POINTS = {
    "raymlops": {"init", "status", "load_settings", "Settings", "RegistryClient", "FeatureStoreClient",
                 "RaymlopsError", "__version__"},
    "raymlops.registry": {"RegistryClient", "ModelVersion", "Lineage", "AliasWatch"},
    "raymlops.features": {"FeatureStoreClient", "FeatureRepo", "point_in_time_join", "HistoricalFeatures",
                          "RetrievalResult", "OnlineFeatureCache"},
    "raymlops.training": {"run_search", "SearchConfig", "TrainingSpec", "load_spec", "train",
                          "ContinuousTrainer", "log_training_run"},
    "raymlops.serving": {"deploy", "undeploy", "status", "batch_predict", "DeploymentOptions"},
    "raymlops.monitoring": {"drift_report", "DriftThresholds", "log_drift_report", "model_health"},
}


@pytest.mark.parametrize("package", sorted(ENTRY_POINTS))
def test_every_exported_name_resolves_and_the_entry_points_are_exported(package: str) -> None:
    module = importlib.import_module(package)
    exported = set(module.__all__)
    assert ENTRY_POINTS[package] <= exported, ENTRY_POINTS[package] - exported
    for name in sorted(exported):
        assert getattr(module, name) is not None, name


def test_internals_are_not_the_registry_s_api() -> None:
    import raymlops.registry as registry

    assert not {"RegistryStore", "serialize", "deserialize", "check_signature"} & set(registry.__all__)


def test_importing_the_packages_stays_light() -> None:
    """The facades import nothing heavy until a name is used (a Ray worker imports them)."""
    code = ("import sys, raymlops, raymlops.registry, raymlops.features, raymlops.training, "
            "raymlops.serving, raymlops.monitoring; "
            "print(sorted(m for m in ('mlflow', 'ray', 'fastapi', 'matplotlib', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
