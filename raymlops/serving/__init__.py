"""Serving: online (Ray Serve: one application per model, hot-swapped) and batch prediction.

Names are imported on first use (PEP 562): ``import raymlops.serving`` imports neither Ray nor
FastAPI, so drivers and unit tests that only need the pure parts stay light.
"""

from __future__ import annotations

from raymlops._lazy import lazy_getattr

_EXPORTS = {
    "deploy": "raymlops.serving.api",
    "undeploy": "raymlops.serving.api",
    "status": "raymlops.serving.api",
    "build_app": "raymlops.serving.api",
    "batch_predict": "raymlops.serving.batch",
    "DeploymentOptions": "raymlops.serving.options",
    "InputSchema": "raymlops.serving.schema",
    "validate_frame": "raymlops.serving.schema",
    "PredictionLog": "raymlops.serving.predlog",
    "prediction_log_dir": "raymlops.serving.predlog",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
