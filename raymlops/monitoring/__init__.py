"""Monitoring: drift statistics and reports, model health, alerts.

Entry points: :func:`drift_report` (two data sets in, a per-column and dataset-level verdict
out), :func:`log_drift_report` / :func:`publish_drift` (record it in MLflow, export its
gauges), the drift test thresholds, :func:`model_health` and the alert rules. Data schemas
(infer, validate) live in the core (:mod:`raymlops.data_schema`); metric declarations too
(:mod:`raymlops.metrics`). Names are imported on first use (PEP 562).
"""

from __future__ import annotations

from raymlops._lazy import lazy_getattr

_EXPORTS = {
    "drift_report": "raymlops.monitoring.drift",
    "ColumnDrift": "raymlops.monitoring.drift_tests",
    "DriftThresholds": "raymlops.monitoring.drift_tests",
    "log_drift_report": "raymlops.monitoring.drift_log",
    "latest_drift": "raymlops.monitoring.drift_log",
    "publish_drift": "raymlops.monitoring.drift_publish",
    "model_health": "raymlops.monitoring.health",
    "install_rules": "raymlops.monitoring.alerts",
    "installed_rules": "raymlops.monitoring.alerts",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
