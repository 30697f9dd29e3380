"""The platform's ``raymlops_*`` metrics beyond serving and drift, through ``ray.util.metrics``.

Why Ray's metrics system: every node already runs a metrics agent that Prometheus scrapes
(through Ray's service-discovery file) and the Ray dashboard reads, so these series appear
as ``ray_raymlops_<name>`` next to Ray's and Serve's own, with no exporter of ours.

Two ways to record, because of where the value is born:

- :func:`record` -- inside a long-lived process (the feature store and registry actors, a
  Serve replica): the metric object lives in that process. Gauges are re-set on a timer
  thread (Ray 2.60 evicts a gauge series that is not set again within two report intervals;
  counters and histograms are cumulative and never evicted).
- :func:`publish` -- from a driver that exits soon (the CLI, a CT cycle, an AutoML run): the
  values go to one small detached actor, ``raymlops-metrics`` (no CPU, restarted if it dies),
  which owns the series, so a counter keeps its total after the driver is gone.

Both are no-ops outside a Ray driver, and both swallow a failed send with a warning: a
metric must never fail the training or the request that produced it.

Every metric is declared once in :data:`METRICS` (the README's metrics table and the Grafana
dashboard are checked against the names declared in the source).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal

from raymlops.exceptions import ValidationError
from raymlops.platform import HEAD_PINNED

__all__ = ["METRICS", "METRICS_ACTOR", "MetricSpec", "MetricsRecorder", "publish", "record",
           "refresh_interval_s", "retire"]

METRICS_ACTOR = "raymlops-metrics"
log = logging.getLogger(__name__)
Kind = Literal["counter", "gauge", "histogram"]
Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MetricSpec:
    """One Ray metric: name (Prometheus sees ``ray_`` + name), kind, help, tag keys."""

    name: str
    kind: Kind
    description: str
    tag_keys: tuple[str, ...]
    boundaries: tuple[float, ...] = ()


READ_LATENCY_BOUNDARIES_MS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    # features
    MetricSpec("raymlops_feature_read_latency_ms", "histogram",
               "Online feature read latency (ms): path=cache (replica-local) or actor.",
               ("service", "path"), READ_LATENCY_BOUNDARIES_MS),
    MetricSpec("raymlops_feature_staleness_seconds", "gauge",
               "Seconds since the newest event time written to a view's online store.",
               ("view",)),
    MetricSpec("raymlops_feature_ttl_misses_total", "counter",
               "Online values read past their view's TTL (returned null, listed in expired).",
               ("view",)),
    # serving (the request metrics are in raymlops.serving.metrics)
    MetricSpec("raymlops_serve_replicas", "gauge",
               "1 per Serve replica holding a model version: sum by model and version for "
               "replicas per version; a version swapped out or a stopped replica drops to 0, "
               "then ages out.", ("model", "version", "deployment", "replica")),
    # models
    MetricSpec("raymlops_champion_version", "gauge",
               "Version holding the champion alias.", ("model",)),
    MetricSpec("raymlops_model_live_auc", "gauge",
               "Champion ROC AUC on the newest labeled window (set by each CT cycle).",
               ("model", "version")),
    # training
    MetricSpec("raymlops_training_trials_total", "counter",
               "AutoML trials finished, by status (ok or error).", ("model", "status")),
    MetricSpec("raymlops_retrains_total", "counter",
               "Continuous-training retrains started, by trigger.", ("model", "trigger")),
    MetricSpec("raymlops_promotions_total", "counter",
               "Champion alias moves by promote.", ("model",)),
    MetricSpec("raymlops_rollbacks_total", "counter",
               "Champion alias moves back by rollback.", ("model",)),
    # data
    MetricSpec("raymlops_validation_violations_total", "counter",
               "Schema violations found by data validation, by kind.", ("model", "kind")),
)}


_CHECKED: dict[tuple[str, frozenset[str]], MetricSpec] = {}


def _check(name: str, tags: dict[str, str]) -> MetricSpec:
    """The metric's spec; raises on an unknown name or wrong tag keys (memoized: this runs
    on every online feature read)."""
    key = (name, frozenset(tags))
    known = _CHECKED.get(key)
    if known is not None:
        return known
    spec = METRICS.get(name)
    if spec is None:
        raise ValidationError(f"unknown metric {name!r}; declare it in METRICS", field="metric")
    if set(tags) != set(spec.tag_keys):
        raise ValidationError(f"{name} takes tags {list(spec.tag_keys)}, got {sorted(tags)}",
                              field="tags")
    _CHECKED[key] = spec
    return spec


class MetricsRecorder:
    """The metric objects of one process, with gauges kept alive between sets."""

    def __init__(self) -> None:
        self._metrics: dict[str, Any] = {}
        self._gauges: dict[tuple[str, Tags], float] = {}
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None

    def _metric(self, spec: MetricSpec) -> Any:
        from ray.util.metrics import Counter, Gauge, Histogram

        if spec.name not in self._metrics:
            if spec.kind == "counter":
                m = Counter(spec.name, description=spec.description, tag_keys=spec.tag_keys)
            elif spec.kind == "gauge":
                m = Gauge(spec.name, description=spec.description, tag_keys=spec.tag_keys)
            else:
                m = Histogram(spec.name, description=spec.description,
                              boundaries=list(spec.boundaries), tag_keys=spec.tag_keys)
            self._metrics[spec.name] = m
        return self._metrics[spec.name]

    def record(self, name: str, value: float, tags: dict[str, str]) -> None:
        """Counter: add ``value``; gauge: set it (and keep it set); histogram: observe it."""
        tags = {k: str(v) for k, v in tags.items()}
        spec = _check(name, tags)
        with self._lock:
            metric = self._metric(spec)
            if spec.kind == "counter":
                if value > 0:
                    metric.inc(value, tags=tags)
            elif spec.kind == "gauge":
                metric.set(value, tags=tags)
                self._gauges[(name, tuple(sorted(tags.items())))] = value
                self._start_refresher()
            else:
                metric.observe(value, tags=tags)

    def retire(self, name: str, tags: dict[str, str]) -> None:
        """Set a gauge series to 0 and stop re-setting it: it reads 0 until Ray's agent
        evicts it (two report intervals), then it is gone."""
        tags = {k: str(v) for k, v in tags.items()}
        spec = _check(name, tags)
        if spec.kind != "gauge":
            raise ValidationError(f"{name} is a {spec.kind}: only a gauge retires", field="metric")
        with self._lock:
            self._metric(spec).set(0.0, tags=tags)
            self._gauges.pop((name, tuple(sorted(tags.items()))), None)

    def gauges(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """The gauge values this process keeps exporting, by metric."""
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        with self._lock:
            for (name, tags), value in sorted(self._gauges.items()):
                out.setdefault(name, []).append((dict(tags), value))
        return out

    def _start_refresher(self) -> None:
        if self._refresher is None:
            self._refresher = threading.Thread(target=self._refresh_forever, daemon=True,
                                               name="raymlops-metrics-refresh")
            self._refresher.start()

    def _refresh_forever(self) -> None:
        import time

        interval = refresh_interval_s()
        while True:
            time.sleep(interval)
            with self._lock:
                for (name, tags), value in self._gauges.items():
                    self._metrics[name].set(value, tags=dict(tags))


_LOCAL: MetricsRecorder | None = None


def record(name: str, value: float, **tags: Any) -> bool:
    """Record in this (long-lived) process; False when not inside Ray or on a failure."""
    global _LOCAL
    import ray

    _check(name, {k: str(v) for k, v in tags.items()})  # a wrong call is a bug: raise
    if not ray.is_initialized():
        return False
    try:
        if _LOCAL is None:
            _LOCAL = MetricsRecorder()
        _LOCAL.record(name, value, tags)
        return True
    except Exception as exc:  # noqa: BLE001 - a metric never fails its caller
        log.warning("metric %s not recorded: %s", name, exc)
        return False


def retire(name: str, **tags: Any) -> bool:
    """A gauge series of this process drops to 0 and is no longer kept alive (see
    :meth:`MetricsRecorder.retire`); False when not inside Ray or on a failure."""
    global _LOCAL
    import ray

    _check(name, {k: str(v) for k, v in tags.items()})
    if not ray.is_initialized():
        return False
    try:
        if _LOCAL is None:
            _LOCAL = MetricsRecorder()
        _LOCAL.retire(name, tags)
        return True
    except Exception as exc:  # noqa: BLE001 - a metric never fails its caller
        log.warning("metric %s not retired: %s", name, exc)
        return False


class _Holder(MetricsRecorder):
    """The ``raymlops-metrics`` actor: a recorder that outlives the drivers publishing to it."""

    def record_many(self, values: list[tuple[str, float, dict[str, str]]]) -> int:
        for name, value, tags in values:
            self.record(name, value, tags)
        return len(values)


def metrics_actor(namespace: str = "raymlops") -> Any:
    """Get or create the detached holder actor (requires ``ray.init``)."""
    import ray

    return ray.remote(_Holder).options(
        name=METRICS_ACTOR, namespace=namespace, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, max_task_retries=-1, **HEAD_PINNED,
    ).remote()


def publish(values: list[tuple[str, float, dict[str, Any]]], *, namespace: str = "raymlops",
            timeout_s: float = 30) -> bool:
    """Send ``[(name, value, tags), ...]`` to the holder actor; False outside Ray or on failure.

    Waits for the actor's answer so that a driver exiting right after still had its values
    recorded (the counter totals live in the actor).
    """
    import ray

    clean = [(n, float(v), {k: str(t) for k, t in tags.items()}) for n, v, tags in values]
    for name, _, tags in clean:
        _check(name, tags)
    if not clean or not ray.is_initialized():
        return False
    try:
        ray.get(metrics_actor(namespace).record_many.remote(clean), timeout=timeout_s)
        return True
    except Exception as exc:  # noqa: BLE001 - a metric never fails its caller
        log.warning("metrics not published: %s", exc)
        return False


def refresh_interval_s() -> float:
    """How often the holder re-sets its gauges: half of Ray's metrics report interval.

    Ray 2.60's agent evicts a gauge series not set again within two report intervals (even
    in a live process), so a value set once would vanish ~20 s later; re-setting every half
    interval keeps it scraped for as long as the actor lives.
    """
    import ray

    interval_ms = max(float(ray._config.metrics_report_interval_ms()), 1000.0)
    return max(0.5, interval_ms / 2000.0)
