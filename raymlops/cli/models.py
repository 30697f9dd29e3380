"""``raymlops models ...``: list, show, alias, promote, rollback, archive, delete."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from raymlops.cli._app import app, console, emit

models_app = typer.Typer(help="Registered models: versions, aliases, promotion, rollback.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _client(ctx: typer.Context) -> Any:
    from raymlops.registry import RegistryClient

    return RegistryClient.connect(ctx.obj.settings())


def _print(data: Any, as_json: bool, render: Any) -> None:
    if as_json:
        emit(json.dumps(data, default=str))
    else:
        render(data)


def _aliases_text(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a}=v{v}" for a, v in sorted(aliases.items())) or "-"


@models_app.command("list")
def list_models(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List registered models with their latest version and aliases."""

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table(title="registered models", title_justify="left")
        for col in ("name", "versions", "latest", "aliases"):
            table.add_column(col)
        for row in rows:
            table.add_row(row["name"], str(row["versions"]), f"v{row['latest']}",
                          _aliases_text(row["aliases"]))
        if not rows:
            table.add_row("-", "0", "-", "no models registered yet")
        console.print(table)

    _print(_client(ctx).list_models(), as_json, render)


@models_app.command("show")
def show(ctx: typer.Context, name: str, as_json: JsonOption = False) -> None:
    """Show every version of NAME: aliases, metrics, lineage, digest."""

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table(title=f"model {name}", title_justify="left")
        for col in ("version", "aliases", "flavor/format", "compiled", "metrics", "data window",
                    "run", "sha256"):
            table.add_column(col)
        for row in rows:
            lineage = row["lineage"]
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(lineage["metrics"].items()))
            window = " .. ".join(lineage["data_window"]) if lineage["data_window"] else "-"
            archived = " (archived)" if row["archived"] else ""
            table.add_row(f"v{row['version']}{archived}", ", ".join(row["aliases"]) or "-",
                          f"{row['flavor']}/{row['format']}", _compiled(row["meta"].get("compiled")),
                          metrics or "-", window,
                          (lineage["run_id"] or "-")[:12], row["sha256"][:12])
        console.print(table)

    _print(_client(ctx).list_versions(name), as_json, render)


def _compiled(report: dict[str, Any] | None) -> str:
    """One cell: the ONNX model serves (with its measured difference), or why not."""
    if not report:
        return "-"
    if report.get("serves"):
        diff = report.get("max_rel_diff") if report.get("max_abs_diff") is None else report["max_abs_diff"]
        agree = report.get("label_agreement")
        return (f"onnx (max diff {diff:.2g}" + (f", labels {agree:.2%}" if agree is not None else "")
                + ")")
    return f"original: {report.get('reason', '')[:60]}"


@models_app.command("alias")
def alias(ctx: typer.Context, name: str, alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
          version: str, as_json: JsonOption = False) -> None:
    """Point ALIAS of NAME at VERSION (e.g. `models alias flights challenger 3`)."""
    result = _client(ctx).set_alias(name, alias_name, version)
    _print(result, as_json, lambda r: console.print(f"{name}: {alias_name} -> v{r['version']}"))


@models_app.command("promote")
def promote(ctx: typer.Context, name: str,
            version: Annotated[str | None, typer.Argument(help="Default: the challenger.")] = None,
            as_json: JsonOption = False) -> None:
    """Make the challenger (or VERSION) champion; the old champion becomes `previous`."""
    result = _client(ctx).promote(name, version)
    _print(result, as_json, lambda r: console.print(
        f"{name}: champion -> v{r['champion']} (previous: {r['previous'] and 'v' + str(r['previous'])})"))


@models_app.command("rollback")
def rollback(ctx: typer.Context, name: str, as_json: JsonOption = False) -> None:
    """Make `previous` the champion again (the rolled-back version becomes `previous`)."""
    result = _client(ctx).rollback(name)
    _print(result, as_json, lambda r: console.print(
        f"{name}: rolled back, champion -> v{r['champion']}"))


@models_app.command("archive")
def archive(ctx: typer.Context, name: str, version: str, as_json: JsonOption = False) -> None:
    """Archive VERSION of NAME (it loses its aliases and can take no new ones)."""
    result = _client(ctx).archive(name, version)
    _print(result, as_json, lambda r: console.print(f"{name}: v{r['version']} archived"))


@models_app.command("delete")
def delete(ctx: typer.Context, name: str, version: str, as_json: JsonOption = False) -> None:
    """Delete VERSION of NAME (refused for the champion)."""
    result = _client(ctx).delete_version(name, version)
    _print(result, as_json, lambda r: console.print(f"{name}: v{r['deleted']} deleted"))
