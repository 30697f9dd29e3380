"""``raymlops serve ...``: deploy a registered model on Ray Serve, show status, undeploy."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from raymlops.cli._app import app, console, emit

serve_app = typer.Typer(help="Online serving on Ray Serve: deploy, status, undeploy, "
                             "canary, shadow, promote, abort.",
                        no_args_is_help=True)
app.add_typer(serve_app, name="serve")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _replicas(entry: dict[str, Any]) -> str:
    return ", ".join(f"{n} {state.lower()}" for state, n in sorted(entry["replicas"].items())) \
        or "-"


def _traffic(entry: dict[str, Any]) -> str:
    parts = []
    if entry.get("canary"):
        c = entry["canary"]
        sticky = f", sticky on {c['sticky_header']}" if c.get("sticky_header") else ""
        parts.append(f"canary v{c['version']} {c['percent']:g}%{sticky}")
    if entry.get("shadow"):
        counts = entry.get("shadow_counts") or {}
        parts.append(f"shadow v{entry['shadow']['version']} (agreed {counts.get('agreed', 0)}"
                     f"/{counts.get('sent', 0)})")
    return "; ".join(parts) or "-"


def render_status(entries: list[dict[str, Any]]) -> None:
    table = Table(title="served models", title_justify="left")
    for col in ("model", "status", "serving", "follows", "replicas", "hot swaps", "traffic",
                "url"):
        table.add_column(col)
    for e in entries:
        ref = e["ref"]
        follows = f"@{ref}" if isinstance(ref, str) else "pinned"
        status = e["status"] + (f" ({e['last_error']})" if e.get("last_error") else "")
        table.add_row(e["model"], status, f"v{e['version']}" if e["version"] else "-",
                      follows if ref is not None else "-", _replicas(e),
                      str(e["swaps"] if e["swaps"] is not None else "-"), _traffic(e), e["url"])
    if not entries:
        table.add_row("-", "-", "-", "-", "-", "-", "-",
                      "nothing deployed: `raymlops serve deploy NAME`")
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
        help="Seconds a batch waits to fill (0: take what is queued).")] = None,
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
    from raymlops.serving.auth import token_hint

    hint = token_hint(ctx.obj.settings())  # where the token is, never the token itself
    if hint:
        console.print(f"the endpoints ask for the inference token: curl {hint} ...",
                      soft_wrap=True, markup=False, highlight=False)


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


def _print_entry(entry: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(json.dumps(entry, default=str))
        return
    render_status([entry])


@serve_app.command("canary")
def canary(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="NAME")],
    version: Annotated[str, typer.Argument(metavar="VERSION", help="Version (3 or v3) to try.")],
    percent: Annotated[float, typer.Option(help="Share of requests it answers (0-100).")] = 10.0,
    sticky_header: Annotated[str | None, typer.Option(
        help="Request header whose value pins a caller to one side (e.g. x-user-id).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Send PERCENT of NAME's traffic to VERSION; the rest stays on the primary."""
    from raymlops.serving import traffic

    _print_entry(traffic.canary(model, version, percent, sticky_header=sticky_header,
                                settings=ctx.obj.settings()), as_json)


@serve_app.command("shadow")
def shadow(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="NAME")],
    version: Annotated[str, typer.Argument(metavar="VERSION", help="Version (3 or v3) to shadow.")],
    as_json: JsonOption = False,
) -> None:
    """Copy NAME's traffic to VERSION: its answers are logged and compared, never returned."""
    from raymlops.serving import traffic

    _print_entry(traffic.shadow(model, version, settings=ctx.obj.settings()), as_json)


@serve_app.command("promote")
def promote(ctx: typer.Context, model: Annotated[str, typer.Argument(metavar="NAME")],
            as_json: JsonOption = False) -> None:
    """Move the served alias to the canary's (else the shadow's) version and remove it."""
    from raymlops.serving import traffic

    _print_entry(traffic.promote(model, settings=ctx.obj.settings()), as_json)


@serve_app.command("abort")
def abort(ctx: typer.Context, model: Annotated[str, typer.Argument(metavar="NAME")],
          as_json: JsonOption = False) -> None:
    """Remove NAME's canary and shadow: all traffic back to the primary."""
    from raymlops.serving import traffic

    _print_entry(traffic.abort(model, settings=ctx.obj.settings()), as_json)
