"""Record a drift report as an MLflow run, next to the training runs it may send back to work.

Why MLflow: drift results are the evidence behind a retraining decision, so they belong in the
same store (``settings.tracking_uri``) as the runs and models they judge, where the UI can plot
``share_drifted`` over time and each run keeps its JSON and HTML report. One run per report,
in experiment ``raymlops-drift``:

- metrics: ``share_drifted``, ``drifted_columns`` (a count), ``domain_classifier_auc`` when
  computed, ``reference_rows``/``current_rows``, and per column
  ``column.<name>.statistic``, ``column.<name>.p_value`` (tests that have one) and
  ``column.<name>.drift`` (0/1). Column names are sanitized to MLflow's metric-name alphabet;
  when that changes a name, ``column_metric_names.json`` maps metric names back to columns.
- params: ``dataset_drift`` and per column ``column.<name>.test`` / ``.threshold``.
- tags: ``raymlops.dataset_drift`` (``true``/``false``, searchable:
  ``tags."raymlops.dataset_drift" = 'true'``) and ``raymlops.drifted_columns``, plus yours;
  ``raymlops.model`` when the report judges a model's data (``raymlops drift --model``):
  :func:`latest_drift` finds the newest such report, and ``raymlops status`` shows it.
- artifacts: ``drift_report.json`` and the self-contained ``drift_report.html``.

Like :func:`raymlops.training.log_training_run`, it uses an explicit ``MlflowClient`` (no
process-global fluent state), checks every input before writing, and ends a run it could not
complete as FAILED rather than leaving it RUNNING.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raymlops.config import Settings
from raymlops.exceptions import ValidationError

__all__ = ["DRIFT_EXPERIMENT", "TAG_DATASET_DRIFT", "TAG_DRIFTED_COLUMNS", "TAG_MODEL",
           "DriftRun", "latest_drift", "log_drift_report", "metric_key"]

DRIFT_EXPERIMENT = "raymlops-drift"
TAG_DATASET_DRIFT = "raymlops.dataset_drift"
TAG_DRIFTED_COLUMNS = "raymlops.drifted_columns"
TAG_MODEL = "raymlops.model"
_PREFIX = "column."
_BATCH = 1000  # MLflow's per-request metric limit (params: 100)
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. ]+")


@dataclass(frozen=True)
class DriftRun:
    """Where a drift report was recorded."""

    run_id: str
    experiment_id: str
    artifact_uri: str
    metrics: dict[str, float]


def metric_key(column: str, taken: set[str] | None = None) -> str:
    """The metric-name stem of ``column``: MLflow-safe, at most 200 characters, unique in ``taken``.

    MLflow refuses names with characters outside letters, digits, ``_ - . / :`` and spaces,
    and names that look like relative paths (``..``, leading ``/``); a drift report must
    never fail to log because a CSV header contains ``%`` or ``(``. Slashes and colons are
    replaced too (they read as folders in the UI), runs of dots collapse to one, and a name
    already in ``taken`` gets ``_2``, ``_3``... so two columns never share a metric.
    """
    stem = _UNSAFE.sub("_", str(column)).strip(" .")
    stem = re.sub(r"\.{2,}", ".", stem) or "_"
    stem = stem[:200]
    taken = taken if taken is not None else set()
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}_{n}"
    taken.add(candidate)
    return candidate


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"{what} must be a number, got {value!r}", field="result")
    return float(value)


def _check_result(result: Any) -> None:
    """The shape ``drift_report`` returns; anything else is refused before a run exists."""
    if not isinstance(result, Mapping):
        raise ValidationError(f"a drift result must be a mapping, got {type(result).__name__}",
                              field="result")
    missing = [k for k in ("dataset_drift", "share_drifted", "columns") if k not in result]
    if missing:
        raise ValidationError(f"the drift result lacks {missing}: pass what drift_report "
                              "returned", field="result")
    if not isinstance(result["dataset_drift"], bool):
        raise ValidationError("dataset_drift must be a bool", field="result")
    _number(result["share_drifted"], "share_drifted")
    columns = result["columns"]
    if not isinstance(columns, Mapping) or not columns:
        raise ValidationError("the drift result has no columns: nothing was compared",
                              field="result")
    for name, col in columns.items():
        if not isinstance(col, Mapping) or not {"test", "statistic", "p_value", "drift"} <= set(col):
            raise ValidationError(f"column {name!r} needs test, statistic, p_value and drift",
                                  field="result")
        _number(col["statistic"], f"columns[{name!r}].statistic")
        if col["p_value"] is not None:
            _number(col["p_value"], f"columns[{name!r}].p_value")


def _plan(result: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """(metrics, params, metric-name stem -> column) for ``result``; no I/O."""
    metrics = {"share_drifted": float(result["share_drifted"]),
               "drifted_columns": float(sum(bool(c["drift"]) for c in result["columns"].values()))}
    for key in ("domain_classifier_auc", "reference_rows", "current_rows"):
        if result.get(key) is not None:
            metrics[key] = _number(result[key], key)
    params = {"dataset_drift": str(result["dataset_drift"]).lower()}
    taken: set[str] = set()
    stems: dict[str, str] = {}
    for name, col in result["columns"].items():
        stem = metric_key(name, taken)
        stems[stem] = str(name)
        base = f"{_PREFIX}{stem}"
        metrics[f"{base}.statistic"] = float(col["statistic"])
        metrics[f"{base}.drift"] = 1.0 if col["drift"] else 0.0
        if col["p_value"] is not None:
            metrics[f"{base}.p_value"] = float(col["p_value"])
        params[f"{base}.test"] = str(col["test"])
        if col.get("threshold") is not None:
            params[f"{base}.threshold"] = repr(float(col["threshold"]))
    return metrics, params, stems


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    from raymlops.training.tracking import _check_key

    out = {}
    for key, value in (tags or {}).items():
        if key in (TAG_DATASET_DRIFT, TAG_DRIFTED_COLUMNS):
            raise ValidationError(f"tag {key!r} is set from the result itself", field="tags")
        text = str(value)
        if len(text) > MAX_TAG_VAL_LENGTH:
            raise ValidationError(f"tag {key!r} is longer than MLflow's {MAX_TAG_VAL_LENGTH} "
                                  "characters", field="tags")
        out[_check_key("tag", key)] = text
    return out


def _jsonable(result: Mapping[str, Any]) -> dict[str, Any]:
    """The report without in-memory summaries, with NaN/inf as null (strict JSON)."""
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean({k: v for k, v in result.items() if not str(k).startswith("_")})


def log_drift_report(
    result: Mapping[str, Any],
    settings: Settings,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    html: str | None = None,
    experiment: str = DRIFT_EXPERIMENT,
) -> DriftRun:
    """Log ``result`` (what :func:`~raymlops.monitoring.drift.drift_report` returned) as a run.

    ``html`` is the rendered report when the caller already has it (the CLI wrote it to
    ``--report``); otherwise it is rendered here from ``result`` (with overlays when the
    result still holds its ``_summaries``). A malformed result or tag raises
    :class:`ValidationError` before anything is written.
    """
    from mlflow.entities import Metric, Param
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    from raymlops.monitoring.report import render_html
    from raymlops.training.tracking import ensure_experiment, tracking_client

    _check_result(result)
    metrics, params, stems = _plan(result)
    run_tags = _check_tags(tags)
    drifted = sorted(str(n) for n, c in result["columns"].items() if c["drift"])
    run_tags[TAG_DATASET_DRIFT] = params["dataset_drift"]
    run_tags[TAG_DRIFTED_COLUMNS] = json.dumps(drifted)[:MAX_TAG_VAL_LENGTH]
    page = html if html is not None else render_html(dict(result))

    client = tracking_client(settings)
    exp = ensure_experiment(client, experiment, str(settings.artifact_location))
    run = client.create_run(exp.experiment_id, tags=resolve_tags(run_tags), run_name=run_name)
    run_id = run.info.run_id
    try:
        now = time.time_ns() // 1_000_000
        entities = [Metric(k, v, now, 0) for k, v in metrics.items()]
        for i in range(0, len(entities), _BATCH):
            client.log_batch(run_id, metrics=entities[i: i + _BATCH], synchronous=True)
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            client.log_batch(run_id, params=items[i: i + 100], synchronous=True)
        with tempfile.TemporaryDirectory(prefix="raymlops-drift-") as tmp:
            folder = Path(tmp)
            (folder / "drift_report.json").write_text(json.dumps(_jsonable(result), indent=2,
                                                                 default=str))
            (folder / "drift_report.html").write_text(page)
            if any(stem != column for stem, column in stems.items()):
                (folder / "column_metric_names.json").write_text(json.dumps(stems, indent=2))
            client.log_artifacts(run_id, str(folder))
    except BaseException as exc:
        try:
            client.set_tag(run_id, "raymlops.error", f"{type(exc).__name__}: {exc}"[:500])
            client.set_terminated(run_id, status="FAILED")
        except Exception:  # noqa: BLE001, S110 - never mask the original error
            pass
        raise
    client.set_terminated(run_id, status="FINISHED")
    return DriftRun(run_id=run_id, experiment_id=exp.experiment_id,
                    artifact_uri=run.info.artifact_uri, metrics=metrics)


def latest_drift(settings: Settings, model: str,
                 experiment: str = DRIFT_EXPERIMENT) -> dict[str, Any] | None:
    """The newest finished drift report logged for ``model`` (tag ``raymlops.model``), or None.

    ``{"verdict": "drifted" | "ok", "share_drifted", "dataset", "at" (epoch seconds, when the
    run started), "run_id"}``.
    """
    from raymlops.registry.names import validate_model_name
    from raymlops.training.tracking import tracking_client

    validate_model_name(model)  # also keeps the filter string well-formed
    client = tracking_client(settings)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id], max_results=1, order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`{TAG_MODEL}` = '{model}' AND attributes.status = 'FINISHED'")
    if not runs:
        return None
    run = runs[0]
    return {"verdict": "drifted" if run.data.tags.get(TAG_DATASET_DRIFT) == "true" else "ok",
            "share_drifted": run.data.metrics.get("share_drifted"),
            "dataset": run.data.tags.get("raymlops.dataset"),
            "at": run.info.start_time / 1000.0, "run_id": run.info.run_id}
