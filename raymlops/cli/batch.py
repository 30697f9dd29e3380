"""``raymlops batch predict`` and ``raymlops validate``: offline scoring and data checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from raymlops.cli._app import app, console, emit, rows_progress

batch_app = typer.Typer(help="Batch prediction over Parquet/CSV on warm scoring actors.",
                        no_args_is_help=True)
app.add_typer(batch_app, name="batch")


@batch_app.command("predict")
def predict(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME@VERSION (default alias: champion).")],
    input: Annotated[str, typer.Option(
        "--input", "-i", help="Parquet/CSV file or folder: a local path or s3://bucket/key.")],
    output: Annotated[str, typer.Option(
        "--output", "-o", help="Output folder (Parquet): a local path or s3://bucket/prefix.")],
    keep: Annotated[str | None, typer.Option(help="Comma-separated input columns to copy to the output.")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Scoring actors (default: from the cluster's CPUs).")] = None,
    rows_per_unit: Annotated[int, typer.Option(min=1, help="Most rows per unit of work.")] = 100_000,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score every input row with a registered model; rows come out exactly once.

    Models bound to a FeatureService get point-in-time features from the offline store.
    The output has row_id (position in the input), the kept columns, prediction, score,
    model_name and model_version; it appears only when complete.
    """
    from raymlops.serving.batch import batch_predict, validate_keep

    with rows_progress("scoring", disabled=as_json) as progress:
        result = batch_predict(model, input, output, settings=ctx.obj.settings(),
                               keep_columns=validate_keep(keep), workers=workers,
                               rows_per_unit=rows_per_unit, overwrite=overwrite,
                               progress=progress)
    if as_json:
        emit(json.dumps(result.to_dict()))
        return
    table = Table(title="batch prediction", title_justify="left", show_header=False)
    for key, value in [("model", f"{result.model} v{result.version}"), ("rows", f"{result.rows:,}"),
                       ("units", str(result.units)), ("features", result.feature_service or "-"),
                       ("seconds", f"{result.seconds:.1f}"), ("rows/s", f"{result.rows_per_second:,.0f}"),
                       ("output", result.output)]:
        table.add_row(key, value)
    console.print(table)


def publish_violations(model: str, violations: list[Any]) -> bool:
    """Count violations by kind in ``raymlops_validation_violations_total`` (an alert can fire
    on them; the CLI exits right after, so the count goes to the metrics actor)."""
    from collections import Counter

    from raymlops.metrics import publish

    kinds = Counter(v.kind for v in violations)
    return publish([("raymlops_validation_violations_total", n, {"model": model, "kind": k})
                    for k, n in sorted(kinds.items())])


@app.command("validate")
def validate(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(
        help="NAME, NAME@ALIAS or NAME@VERSION whose training schema to check against.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Parquet file/folder or CSV to check.")],
    null_rate_tolerance: Annotated[float, typer.Option(help="Allowed rise of a column's null rate.")] = 0.1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the violations as JSON.")] = False,
) -> None:
    """Check data against the schema stored with a model version (exit 2 on violations).

    Reports per column: missing column, wrong type, out of range, unseen category, null-rate jump.
    """
    import pandas as pd

    from raymlops.data_schema import validate as check
    from raymlops.exceptions import DatasetNotFoundError, ValidationError
    from raymlops.registry.client import RegistryClient
    from raymlops.registry.names import split_model_ref

    name, ref = split_model_ref(model)
    client = RegistryClient.connect(ctx.obj.settings())
    schema = client.data_schema(name, ref)
    if schema is None:
        raise ValidationError(f"{model} was registered without a data schema", field="model")
    if not data.exists():
        raise DatasetNotFoundError(f"{data} does not exist", path=str(data))
    frame = pd.read_csv(data) if data.suffix == ".csv" else pd.read_parquet(data)
    violations = check(frame, schema, null_rate_tolerance=null_rate_tolerance)
    publish_violations(name, violations)
    if as_json:
        emit(json.dumps({"rows": len(frame), "violations": [v.to_dict() for v in violations]}))
    elif not violations:
        console.print(f"[green]ok[/]: {len(frame):,} rows match the schema of {model}")
    else:
        table = Table(title=f"{len(violations)} violations of {model}'s schema", title_justify="left")
        for col in ("column", "kind", "rows", "detail"):
            table.add_column(col)
        for v in violations:
            table.add_row(v.column, v.kind, str(v.count or "-"), v.detail)
        console.print(table)
    if violations:
        raise typer.Exit(2)
