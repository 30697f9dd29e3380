"""``raymlops serve ...``: deploy a registered model on Ray Serve, show status, undeploy."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from raymlops.cli._app import app, console, emit

serve_app = typer.Typer(help="Online serving on Ray Serve: deploy, status, undeploy.",
                        no_args_is_help=True)
app.add_typer(serve_app, name="serve")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _replicas(entry: dict[str, Any]) -> str:
    return ", ".join(f"{n} {state.lower()}" for state, n in sorted(entry["replicas"].items())) \
        or "-"


def render_status(entries: list[dict[str, Any]]) -> None:
    table = Table(title="served models", title_justify="left")
    for col in ("model", "status", "serving", "follows", "replicas", "hot swaps", "url"):
        table.add_column(col)
    for e in entries:
        ref = e["ref"]
        follows = f"@{ref}" if isinstance(ref, str) else "pinned"
        status = e["status"] + (f" ({e['last_error']})" if e.get("last_error") else "")
        table.add_row(e["model"], status, f"v{e['version']}" if e["version"] else "-",
                      follows if ref is not None else "-", _replicas(e),
                      str(e["swaps"] if e["swaps"] is not None else "-"), e["url"])
    if not entries:
        table.add_row("-", "-", "-", "-", "-", "-", "nothing deployed: `raymlops serve deploy NAME`")
    console.print(table)


@serve_app.command("deploy")
def deploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="NAME[@ALIAS]",
                                         help="Registered model; @alias to follow "
                                              "(default @champion), or @vN to pin.")],
    min_replicas: Annotated[int | None, typer.Option(help="Model replicas kept (1).")] = None,
    max_replicas: Annotated[int | None, typer.Option(help="Most model replicas (2).")] = None,
    target_ongoing_requests: Annotated[float | None, typer.Option(
        help="Autoscaling target of in-flight requests per replica (8).")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Requests per batch (32).")] = None,
    batch_wait_timeout_s: Annotated[float | None, typer.Option(
        help="Seconds a batch waits to fill (0.002).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Serve a registered model over HTTP (MLflow scoring + Open Inference v2); hot-swaps."""
    from raymlops import serving

    with console.status(f"deploying {model} on Ray Serve..."):
        entry = serving.deploy(model, settings=ctx.obj.settings(), min_replicas=min_replicas,
                               max_replicas=max_replicas,
                               target_ongoing_requests=target_ongoing_requests,
                               max_batch_size=max_batch_size,
                               batch_wait_timeout_s=batch_wait_timeout_s)
    if as_json:
        emit(json.dumps(entry, default=str))
        return
    render_status([entry])
    console.print(f"POST {entry['url']}/invocations   (docs: {entry['url']}/docs)\n"
                  f"POST {entry['v2_url']}/infer")


@serve_app.command("status")
def status(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(metavar="[NAME]", help="One model only.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show served models: state, version answering, alias followed, replicas, URL."""
    from raymlops import serving

    entries = serving.status(model, settings=ctx.obj.settings())
    if as_json:
        emit(json.dumps(entries, default=str))
    else:
        render_status(entries)


@serve_app.command("undeploy")
def undeploy(ctx: typer.Context, model: Annotated[str, typer.Argument(metavar="NAME")],
             as_json: JsonOption = False) -> None:
    """Stop serving NAME (the registry is untouched)."""
    from raymlops import serving

    result = serving.undeploy(model, settings=ctx.obj.settings())
    if as_json:
        emit(json.dumps(result))
    else:
        console.print(f"{model}: undeployed")
