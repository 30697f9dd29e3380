"""What happens to a drift result after it is computed: report file, MLflow run, Ray gauges.

One function so that ``raymlops drift`` and ``jobs/drift.py`` publish the same way and
print the same JSON (with ``mlflow_run_id`` and ``dataset`` added).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from raymlops.config import Settings
from raymlops.exceptions import ValidationError

__all__ = ["default_dataset_name", "publish_drift"]


def write_report(location: str, page: str) -> None:
    """Write an HTML report to a local path or an ``s3://`` URI, replacing it atomically."""
    from raymlops.storage import Storage, normalize_uri

    parent, _, name = normalize_uri(location).rpartition("/")
    Storage(parent or "/").write_text(name, page)


def default_dataset_name(current: str | Path) -> str:
    """``jul`` for ``.../jul.parquet`` or ``.../jul/``: the tag a series of reports shares.

    Pass an explicit name (``--dataset``) when each day's file has its own name, or every
    day becomes a new metrics series.
    """
    name = Path(str(current)).name
    return Path(name).stem if Path(name).suffix in (".parquet", ".csv") else name or "current"


def publish_drift(
    result: dict[str, Any],
    *,
    settings: Settings,
    dataset: str,
    reference: str | Path,
    current: str | Path,
    log_mlflow: bool,
    export_metrics: bool,
    report_path: str | Path | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Write the HTML report, log the MLflow run, set the gauges; return the JSON-ready result.

    The returned dict is ``result`` without its in-memory ``_summaries`` plus ``dataset``,
    ``model``, ``mlflow_run_id`` (None when not logged) and ``metrics_exported``. The report
    is rendered once and reused as the run's artifact. ``model``: the registered model whose
    data this is; the run is tagged ``raymlops.model`` so ``raymlops status`` shows its
    verdict as that model's drift.
    """
    from raymlops.monitoring.drift_log import TAG_MODEL, log_drift_report
    from raymlops.monitoring.drift_metrics import export_drift_metrics
    from raymlops.monitoring.report import render_html
    from raymlops.registry.names import validate_model_name

    if not dataset.strip():
        raise ValidationError("dataset must be a non-empty name", field="dataset")
    if model is not None:
        validate_model_name(model)
        if not log_mlflow:
            raise ValidationError("a model's drift is recorded as an MLflow run: --model needs "
                                  "MLflow logging (drop --no-log-mlflow)", field="model")
    page = render_html(result) if (report_path is not None or log_mlflow) else None
    if report_path is not None:  # a local path or s3:// (e.g. beside the data it reports on)
        write_report(str(report_path), page or "")
    run_id = None
    if log_mlflow:
        run = log_drift_report(
            result, settings, html=page, run_name=f"{dataset}: {Path(str(current)).name} vs "
            f"{Path(str(reference)).name}",
            tags={"raymlops.dataset": dataset, "raymlops.reference": str(reference),
                  "raymlops.current": str(current), **({TAG_MODEL: model} if model else {})})
        run_id = run.run_id
    exported = export_drift_metrics(result, dataset, namespace=settings.namespace) \
        if export_metrics else False
    out = {k: v for k, v in result.items() if k != "_summaries"}
    out.update(dataset=dataset, model=model, mlflow_run_id=run_id, metrics_exported=exported)
    return out
