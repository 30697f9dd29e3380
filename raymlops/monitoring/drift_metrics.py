"""Drift as Prometheus metrics, through ``ray.util.metrics`` and Ray's own metrics agent.

Why: Ray already runs a metrics agent on every node that Prometheus scrapes (and the Ray
dashboard's Grafana reads), so drift needs no exporter of its own; a gauge set here appears
as ``ray_raymlops_drift_score{column="temp",dataset="weather"}`` next to Ray's and Serve's
metrics, and an alert rule can fire on ``ray_raymlops_dataset_drift == 1``.

Why an actor holds the gauges: a gauge lives as long as the process that set it. The CLI and
a ``ray job submit`` driver exit seconds after computing drift, and Ray's agent drops a dead
process's series after about two report intervals, often before Prometheus scraped them
once. So :func:`export_drift_metrics` hands the values to one small detached actor,
``raymlops-drift-metrics`` (no CPU reserved, restarted if it dies), which keeps reporting the
latest value per series until the next report replaces it (re-setting it on a timer: Ray
2.60 evicts a gauge series that is not set again within two report intervals). After a
restart the actor is empty until the next drift run.

Extending: add a :class:`GaugeSpec` to :data:`GAUGES` and values for it to what the actor is
sent; the actor creates each Ray gauge on first use. Nothing happens outside a Ray driver
(``ray.is_initialized()`` false): drift without a cluster stays a pure computation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from raymlops.exceptions import ValidationError
from raymlops.metrics import refresh_interval_s
from raymlops.platform import HEAD_PINNED

__all__ = ["DRIFT_METRICS_ACTOR", "GAUGES", "GaugeSpec", "GaugeValue", "drift_gauge_values",
           "export_drift_metrics"]

DRIFT_METRICS_ACTOR = "raymlops-drift-metrics"


@dataclass(frozen=True)
class GaugeSpec:
    """One Ray gauge: its Prometheus name (Ray prefixes ``ray_``), help text and tag keys."""

    name: str
    description: str
    tag_keys: tuple[str, ...]


@dataclass(frozen=True)
class GaugeValue:
    """One series' value: ``gauge`` names a :data:`GAUGES` entry; ``tags`` fill its keys."""

    gauge: str
    value: float
    tags: tuple[tuple[str, str], ...]


GAUGES: dict[str, GaugeSpec] = {spec.name: spec for spec in (
    GaugeSpec("raymlops_drift_score", "Per-column drift statistic of the latest report (the "
              "column's test: normed Wasserstein, Jensen-Shannon, KS, PSI or chi-square).",
              ("column", "dataset")),
    GaugeSpec("raymlops_drift_column_drift", "1 when the column drifted in the latest report.",
              ("column", "dataset")),
    GaugeSpec("raymlops_drift_share_drifted", "Share of columns that drifted.", ("dataset",)),
    GaugeSpec("raymlops_dataset_drift", "1 when the dataset drifted (share >= threshold).",
              ("dataset",)),
    GaugeSpec("raymlops_drift_domain_classifier_auc", "ROC AUC of a classifier telling current "
              "from reference rows (0.5: indistinguishable).", ("dataset",)),
)}


def drift_gauge_values(result: Mapping[str, Any], dataset: str) -> list[GaugeValue]:
    """The series a drift result sets, without touching Ray (so it is testable anywhere).

    Non-finite statistics (a chi-square on a degenerate table) are skipped: Prometheus would
    store them, but an alert comparing ``> 0.1`` on NaN never fires, which hides a problem.
    """
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValidationError("dataset must be a non-empty name (it becomes a metric tag)",
                              field="dataset")
    if not isinstance(result, Mapping) or not isinstance(result.get("columns"), Mapping):
        raise ValidationError("a drift result (what drift_report returns) is needed",
                              field="result")
    values = [
        GaugeValue("raymlops_drift_share_drifted", float(result["share_drifted"]),
                   (("dataset", dataset),)),
        GaugeValue("raymlops_dataset_drift", 1.0 if result["dataset_drift"] else 0.0,
                   (("dataset", dataset),)),
    ]
    if result.get("domain_classifier_auc") is not None:
        values.append(GaugeValue("raymlops_drift_domain_classifier_auc",
                                 float(result["domain_classifier_auc"]), (("dataset", dataset),)))
    for column, col in result["columns"].items():
        tags = (("column", str(column)), ("dataset", dataset))
        values.append(GaugeValue("raymlops_drift_column_drift", 1.0 if col["drift"] else 0.0, tags))
        if math.isfinite(float(col["statistic"])):
            values.append(GaugeValue("raymlops_drift_score", float(col["statistic"]), tags))
    return values


class GaugeHolder:
    """The actor behind :data:`DRIFT_METRICS_ACTOR`: owns the gauges, keeps the latest values
    and re-sets them on a timer thread so they stay exported between drift runs."""

    def __init__(self) -> None:
        import threading

        self._gauges: dict[str, Any] = {}
        self._latest: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        self._interval = refresh_interval_s()
        threading.Thread(target=self._refresh_forever, name="gauge-refresh", daemon=True).start()

    def _gauge(self, name: str) -> Any:
        from ray.util.metrics import Gauge

        if name not in self._gauges:
            spec = GAUGES[name]
            self._gauges[name] = Gauge(spec.name, description=spec.description,
                                       tag_keys=spec.tag_keys)
        return self._gauges[name]

    def _refresh_forever(self) -> None:
        import time

        while True:
            time.sleep(self._interval)
            with self._lock:
                for (gauge, tags), value in self._latest.items():
                    self._gauge(gauge).set(value, tags=dict(tags))

    def set(self, values: list[GaugeValue]) -> int:
        unknown = sorted({v.gauge for v in values} - set(GAUGES))
        if unknown:
            raise ValidationError(f"unknown gauges {unknown}; declare them in GAUGES",
                                  field="gauge")
        with self._lock:
            for v in values:
                self._gauge(v.gauge).set(v.value, tags=dict(v.tags))
                self._latest[(v.gauge, v.tags)] = v.value
        return len(values)

    def latest(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """What this actor reports now, by gauge: ``[(tags, value), ...]``."""
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        with self._lock:
            for (gauge, tags), value in sorted(self._latest.items()):
                out.setdefault(gauge, []).append((dict(tags), value))
        return out


def drift_metrics_actor(namespace: str = "raymlops") -> Any:
    """Get or create the detached gauge actor (requires ``ray.init``)."""
    import ray

    return ray.remote(GaugeHolder).options(
        name=DRIFT_METRICS_ACTOR, namespace=namespace, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, max_task_retries=-1, **HEAD_PINNED,
    ).remote()


def export_drift_metrics(result: Mapping[str, Any], dataset: str, *,
                         namespace: str = "raymlops", timeout_s: float = 60) -> bool:
    """Publish ``result`` as Ray gauges tagged ``dataset``; False (and no-op) outside Ray."""
    import ray

    values = drift_gauge_values(result, dataset)
    if not ray.is_initialized():
        return False
    actor = drift_metrics_actor(namespace)
    ray.get(actor.set.remote(values), timeout=timeout_s)
    return True
