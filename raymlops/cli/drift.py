"""``raymlops drift``: compare current data with a reference, per column and as a whole."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from raymlops.cli._app import app, console, emit
from raymlops.exceptions import ClusterNotRunningError, ValidationError


def _load_local(location: str) -> Any:
    """The whole file or folder in this process (no platform running): local or s3://."""
    import pyarrow.dataset as pads
    import pyarrow.fs as pafs

    from raymlops.storage import filesystem_of

    fs, path = filesystem_of(location)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise ValidationError(f"{location} does not exist", field="path")
    fmt = "csv" if path.endswith(".csv") else "parquet"
    return pads.dataset(path, filesystem=fs, format=fmt, partitioning="hive").to_table().to_pandas()


@app.command()
def drift(
    ctx: typer.Context,
    reference: Annotated[str, typer.Option(
        help="Reference data: Parquet file/folder or CSV, a local path or s3://.")],
    current: Annotated[str, typer.Option(
        help="Current data: Parquet file/folder or CSV, a local path or s3://.")],
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns (default: all).")] = None,
    test: Annotated[str, typer.Option(help="auto, ks, wasserstein, psi, jensenshannon, chisquare.")] = "auto",
    report: Annotated[str | None, typer.Option(
        help="Write a self-contained HTML report here (a local path or s3://).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
    log_mlflow: Annotated[bool | None, typer.Option(
        "--log-mlflow/--no-log-mlflow",
        help="Log an MLflow run (experiment raymlops-drift). Default: on with a running "
             "platform, off without one.")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="Name of the monitored data, for metric tags and the run name (default: the "
             "current path's name).")] = None,
    model: Annotated[str | None, typer.Option(
        help="Registered model whose input data this is: the MLflow run is tagged with it and "
             "`raymlops status` shows the newest such report as the model's drift.")] = None,
) -> None:
    """Data drift per column (KS, Wasserstein, PSI, JS, chi-square) and for the dataset.

    With a running platform the files are read and summarised with Ray Data, the result is
    logged to MLflow and exported as Ray metrics (raymlops_drift_*); without one, it is
    computed in this process (and logged only with --log-mlflow or --model).
    """
    from raymlops import cluster
    from raymlops.monitoring.drift import drift_report
    from raymlops.monitoring.drift_publish import default_dataset_name, publish_drift
    from raymlops.shared_state import require_reachable

    cols = [c.strip() for c in columns.split(",")] if columns else None
    settings = ctx.obj.settings()
    try:
        settings = cluster.init(settings, start=False).settings
        require_reachable(settings, {"reference": reference, "current": current})
        running = True
        ref, cur = reference, current
    except ClusterNotRunningError:
        running = False
        ref, cur = _load_local(reference), _load_local(current)
    with console.status("computing drift..."):
        result = drift_report(ref, cur, columns=cols, test=test)
        result = publish_drift(
            result, settings=settings, dataset=dataset or default_dataset_name(current),
            reference=reference, current=current,
            log_mlflow=(running or model is not None) if log_mlflow is None else log_mlflow,
            export_metrics=running, report_path=report, model=model)
    if as_json:
        emit(json.dumps(result, default=str))
        return
    table = Table(title=f"drift: {current} vs {reference}", title_justify="left")
    for col in ("column", "test", "statistic", "p-value", "drift"):
        table.add_column(col)
    for name, col in result["columns"].items():
        p = "-" if col["p_value"] is None else f"{col['p_value']:.3g}"
        table.add_row(name, col["test"], f"{col['statistic']:.4g}", p,
                      "[red]DRIFT[/]" if col["drift"] else "[green]ok[/]")
    console.print(table)
    verdict = "[red]dataset drift[/]" if result["dataset_drift"] else "[green]no dataset drift[/]"
    console.print(f"{verdict}: {result['share_drifted']:.0%} of columns drifted; domain classifier "
                  f"AUC {result.get('domain_classifier_auc', float('nan')):.3f}")
    if report is not None:
        console.print(f"report: {report}")
    if result["mlflow_run_id"]:
        console.print(f"MLflow run: {result['mlflow_run_id']} (experiment raymlops-drift)")
    if result["metrics_exported"]:
        console.print(f"metrics: raymlops_drift_* with dataset={result['dataset']!r}")
