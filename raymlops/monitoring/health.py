"""Model health for ``raymlops status``: per served model version, traffic, p99, error rate,
drift verdict and last retrain.

Why from two scrapes of Ray's metrics agents a moment apart: they are the live counters
(no Prometheus needed), and a rate needs two points. When no request arrived in that window,
p99 and error rate fall back to everything the counters saw since the replicas started
(``window`` says which). Replicas per version come from ``raymlops_serve_replicas``. Drift
is the newer of the model's last continuous-training cycle (its newest data against its
champion's training data) and the newest drift report logged for the model (``raymlops drift
--model``); the last retrain comes from the CT record. Both are in MLflow.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from raymlops.config import Settings
from raymlops.monitoring.scrape import Sample

__all__ = ["histogram_quantile", "model_health", "newest_drift", "serving_health"]

_RETRAIN = {"promoted", "rejected", "failed"}
Key = tuple[str, str]  # (model, version)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's ``histogram_quantile`` over cumulative ``{le: count}`` (linear inside
    the bucket; the +Inf bucket answers its lower bound)."""
    if not buckets:
        return None
    edges = sorted(buckets)
    total = buckets[edges[-1]]
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le in edges:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return lower


def _tally(samples: Iterable[Sample]) -> tuple[dict[Key, float], dict[Key, float],
                                                dict[Key, dict[float, float]], dict[Key, float]]:
    requests: dict[Key, float] = defaultdict(float)
    errors: dict[Key, float] = defaultdict(float)
    buckets: dict[Key, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    replicas: dict[Key, float] = defaultdict(float)
    for s in samples:
        labels = dict(s.labels)
        key = (labels.get("model", ""), labels.get("version", ""))
        if s.name == "ray_raymlops_requests_total":
            requests[key] += s.value
            if int(labels.get("status", "200")) >= 400:
                errors[key] += s.value
        elif s.name == "ray_raymlops_request_latency_ms_bucket":
            buckets[key][float(labels["le"])] += s.value
        elif s.name == "ray_raymlops_serve_replicas":
            replicas[key] += s.value
    return requests, errors, buckets, replicas


def serving_health(scrape: Callable[[], list[Sample]], window_s: float = 2.0,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """Requests/s, p99 (ms), error rate and replicas per (model, version) from two scrapes.

    A version appears when it answered requests or a replica holds it now (``replicas``:
    from ``raymlops_serve_replicas`` in the second scrape, 0 for a version swapped out).
    """
    t0, first = clock(), _tally(scrape())
    sleep(window_s)
    t1, second = clock(), _tally(scrape())
    out = []
    held = {key for key, n in second[3].items() if n > 0}
    for key in sorted(set(second[0]) | held):
        total, errors, buckets = second[0].get(key, 0.0), second[1][key], second[2][key]
        d_total = total - first[0].get(key, 0.0)
        windowed = d_total > 0
        if windowed:
            errors -= first[1].get(key, 0.0)
            old = first[2].get(key, {})
            buckets = {le: c - old.get(le, 0.0) for le, c in buckets.items()}
        p99 = histogram_quantile(0.99, buckets)
        out.append({"model": key[0], "version": key[1],
                    "requests_per_s": round(max(d_total, 0.0) / max(t1 - t0, 1e-9), 3),
                    "p99_ms": round(p99, 3) if p99 is not None else None,
                    "error_rate": round(errors / (d_total if windowed else total), 4)
                    if (d_total if windowed else total) else None,
                    "requests_total": total,
                    "replicas": int(round(second[3].get(key, 0.0))),
                    "window": f"{window_s:g}s" if windowed else ("since start" if total else None)})
    return out


def newest_drift(ct_event: dict[str, Any] | None,
                 report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model's drift verdict: from its last CT cycle that measured drift or from the
    newest drift report logged for it (``raymlops drift --model``), whichever is newer."""
    from_ct = None if ct_event is None else {
        "verdict": "drifted" if ct_event["dataset_drift"] else "ok",
        "share_drifted": ct_event.get("share_drifted"), "period": ct_event.get("period"),
        "at": ct_event.get("at"), "source": "ct"}
    from_report = None if report is None else {
        "verdict": report["verdict"], "share_drifted": report.get("share_drifted"),
        "period": report.get("dataset"), "at": report.get("at"), "source": "drift report",
        "run_id": report.get("run_id")}
    if from_ct is None or from_report is None:
        return from_ct or from_report
    return from_report if (from_report["at"] or 0) > (from_ct["at"] or 0) else from_ct


def _ct_summary(settings: Settings, model: str) -> dict[str, Any]:
    from raymlops.monitoring.drift_log import latest_drift
    from raymlops.training.ct import history

    events = history(settings, model, limit=100)
    drift = next((e for e in events if e.get("dataset_drift") is not None), None)
    retrain = next((e for e in events if e["decision"] in _RETRAIN
                    and e.get("trigger") != "bootstrap"), None)
    return {
        "drift": newest_drift(drift, latest_drift(settings, model)),
        "last_retrain": None if retrain is None else {
            "at": retrain.get("at"), "decision": retrain["decision"],
            "trigger": retrain.get("trigger"), "challenger": retrain.get("challenger"),
            "period": retrain.get("period")},
    }


def model_health(settings: Settings, served: Iterable[str], window_s: float = 2.0,
                 scrape: Callable[[], list[Sample]] | None = None) -> list[dict[str, Any]]:
    """One row per served model version (one that answered requests or that a replica holds;
    a served model with neither yet: one row with no version), each with its model's drift
    verdict and last retrain."""
    if scrape is None:
        from raymlops.monitoring.scrape import scrape as scrape_agents
        from raymlops.monitoring.scrape import targets_from_nodes

        def scrape() -> list[Sample]:
            return scrape_agents(targets_from_nodes())

    served = sorted(set(served))
    rows = [r for r in serving_health(scrape, window_s) if r["model"] in served]
    seen = {r["model"] for r in rows}
    rows += [{"model": m, "version": None, "requests_per_s": 0.0, "p99_ms": None,
              "error_rate": None, "requests_total": 0.0, "replicas": None, "window": None}
             for m in served if m not in seen]
    ct: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["model"] not in ct:
            try:
                ct[row["model"]] = _ct_summary(settings, row["model"])
            except Exception as exc:  # noqa: BLE001 - health still shows the traffic
                ct[row["model"]] = {"drift": None, "last_retrain": None,
                                    "error": f"{type(exc).__name__}: {exc}"}
        row.update(ct[row["model"]])
    return sorted(rows, key=lambda r: (r["model"], str(r["version"])))
