"""``raymlops features ...``: apply definitions, list, ingest, materialize, read online,
retrieve point-in-time training data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from raymlops.cli._app import app, console, emit, rows_progress
from raymlops.exceptions import ValidationError

features_app = typer.Typer(help="Feature store: definitions, offline/online stores.",
                           no_args_is_help=True)
app.add_typer(features_app, name="features")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _client(ctx: typer.Context) -> Any:
    from raymlops.features.client import FeatureStoreClient

    return FeatureStoreClient.connect(ctx.obj.settings())


def _time(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"--{name} {value!r} is not an ISO date/time", field=name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@features_app.command("apply")
def apply(ctx: typer.Context, file: Path, as_json: JsonOption = False) -> None:
    """Register or update the definitions in FILE (a changed schema gets a new version)."""
    changes = _client(ctx).apply(file)
    if as_json:
        emit(json.dumps(changes))
        return
    table = Table(title=f"applied {file}", title_justify="left")
    for col in ("kind", "name", "version", "action"):
        table.add_column(col)
    for c in changes:
        table.add_row(c["kind"], c["name"], f"v{c['version']}",
                      c["action"] + (f" ({c['reason']})" if c.get("reason") else ""))
    console.print(table)


@features_app.command("list")
def list_definitions(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List entities, feature views (with online row counts) and feature services."""
    rows = _client(ctx).list()
    if as_json:
        emit(json.dumps(rows, default=str))
        return
    table = Table(title="feature definitions", title_justify="left")
    for col in ("kind", "name", "version", "details"):
        table.add_column(col)
    for row in rows:
        spec = row["spec"]
        if row["kind"] == "feature_view":
            details = (f"entity={spec['entity']} features={len(spec['features'])} "
                       f"ttl={spec['ttl_seconds']}s online_rows={row['online_rows']}")
        elif row["kind"] == "entity":
            details = f"keys={spec['join_keys']}"
        else:
            details = ", ".join(spec["features"])
        table.add_row(row["kind"], row["name"], f"v{row['version']}", details)
    console.print(table)


@features_app.command("ingest")
def ingest(ctx: typer.Context, view: str, path: Path, as_json: JsonOption = False) -> None:
    """Validate and append the rows of a Parquet or CSV file at PATH to VIEW's offline store."""
    import pandas as pd
    import pyarrow.parquet as pq

    if not path.exists():
        raise ValidationError(f"{path} does not exist", field="path")
    table = pd.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)
    with console.status(f"ingesting {path} into {view}..."):
        written = _client(ctx).ingest(view, table)
    emit(json.dumps({"view": view, "rows": written})) if as_json else console.print(
        f"{view}: {written} rows ingested")


@features_app.command("materialize")
def materialize(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option(help="ISO start (default: where the last run ended).")] = None,
    end: Annotated[str | None, typer.Option(help="ISO end (default: now).")] = None,
    view: Annotated[list[str] | None, typer.Option(help="Only these views (repeatable).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Copy the latest offline rows per key into the online store, incrementally."""
    with console.status("materializing..."):
        report = _client(ctx).materialize(_time(start, "start"), _time(end, "end"), view or None)
    if as_json:
        emit(json.dumps(report))
        return
    table = Table(title="materialized", title_justify="left")
    for col in ("view", "version", "from", "to", "newest rows", "online updated"):
        table.add_column(col)
    for r in report:
        table.add_row(r["view"], f"v{r['version']}", str(r["start"]), r["end"],
                      str(r["latest_rows"]), str(r["online_changed"]))
    console.print(table)


@features_app.command("get")
def get(
    ctx: typer.Context,
    service: str,
    entity: Annotated[list[str], typer.Option("--entity", "-e", help="key=value (repeatable).")],
    at: Annotated[str | None, typer.Option(help="Judge TTL as of this ISO time (replays).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Read SERVICE's online features for one entity (e.g. --entity origin=JFK)."""
    row: dict[str, Any] = {}
    for item in entity:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"--entity {item!r} is not key=value", field="entity")
        row[key] = value
    got = _client(ctx).get_online_features(service, [row], now=_time(at, "at"))
    if as_json:
        emit(json.dumps(got, default=str))
        return
    table = Table(title=f"{service} for {row}", title_justify="left")
    table.add_column("feature")
    table.add_column("value")
    for key, value in got["rows"][0].items():
        flag = " (expired)" if key in got["expired"][0] else ""
        table.add_row(key, f"{value}{flag}")
    console.print(table)


@features_app.command("retrieve")
def retrieve(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="FeatureService whose features to join.")],
    entities: Annotated[str, typer.Option(
        "--entities", "-i", help="Parquet/CSV file or folder of entity rows: a local path or s3:// URI.")],
    output: Annotated[str, typer.Option(
        "--output", "-o", help="Output folder (Parquet): a local path or s3://bucket/prefix.")],
    timestamp_column: Annotated[str, typer.Option(
        help="Entity column holding each row's event time (features as of that time).")] = "event_timestamp",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Point-in-time-correct training data: SERVICE's features joined onto every entity row.

    Streams block by block on the cluster (any number of rows); the output keeps the input's
    rows in order and appears only when complete.
    """
    with rows_progress("joining", disabled=as_json) as progress:
        result = _client(ctx).write_historical_features(
            service, entities, output, timestamp_column, overwrite=overwrite, progress=progress)
    if as_json:
        emit(json.dumps(result.to_dict()))
        return
    table = Table(title="historical retrieval", title_justify="left", show_header=False)
    versions = ", ".join(f"{k} v{v}" for k, v in result.view_versions.items())
    for key, value in [("service", result.service), ("views", versions), ("rows", f"{result.rows:,}"),
                       ("files", str(result.files)), ("seconds", f"{result.seconds:.1f}"),
                       ("rows/s", f"{result.rows_per_second:,.0f}"), ("output", result.output)]:
        table.add_row(key, value)
    console.print(table)

