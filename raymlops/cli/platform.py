"""``raymlops up | status | down``: bring the platform up, look at it, take it down."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from raymlops.cli._app import CliState, app, console, emit

AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Attach to this Ray cluster (GCS host:port); else RAY_ADDRESS."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _fmt_resource(entry: dict[str, float], scale: float = 1.0, unit: str = "") -> str:
    total = entry.get("total", 0.0) / scale
    avail = entry.get("available", 0.0) / scale
    return f"{avail:.3g}/{total:.3g}{unit} free"


def _health_table(rows: list[dict[str, Any]]) -> Table:
    """Model health: traffic and latency per served version, drift and last retrain."""
    import datetime as dt

    table = Table(title="model health", title_justify="left")
    for col in ("model", "version", "replicas", "req/s", "p99 ms", "errors", "drift",
                "last retrain"):
        table.add_column(col)
    for r in rows:
        drift = r.get("drift") or {}
        verdict = drift.get("verdict", "-")
        if drift.get("share_drifted") is not None:
            source = ", drift report" if drift.get("source") == "drift report" else ""
            verdict += f" ({drift['share_drifted']:.0%} of columns, {drift.get('period')}{source})"
        retrain = r.get("last_retrain")
        when = (dt.datetime.fromtimestamp(retrain["at"]).strftime("%Y-%m-%d %H:%M")
                if retrain and retrain.get("at") else "")
        table.add_row(
            r["model"], f"v{r['version']}" if r.get("version") else "-",
            str(r["replicas"]) if r.get("replicas") is not None else "-",
            f"{r['requests_per_s']:.1f}",
            f"{r['p99_ms']:.1f}" if r.get("p99_ms") is not None else "-",
            f"{r['error_rate']:.1%}" if r.get("error_rate") is not None else "-",
            verdict, f"{retrain['decision']} {when}" if retrain else "never")
    return table


def render_status(report: dict[str, Any]) -> None:
    """Rich tables for a status report (the same data `--json` prints)."""
    overview = Table(title="raymlops platform", show_header=False, title_justify="left")
    overview.add_column("what", style="bold")
    overview.add_column("value")
    overview.add_row("running", "[green]yes[/]" if report["running"] else "[red]no[/]")
    overview.add_row("ray address", str(report.get("ray_address")))
    overview.add_row("dashboard", str(report.get("dashboard_url")))
    overview.add_row("serve http", str(report.get("serve_http") or "not running"))
    overview.add_row("storage root", report["storage_root"])
    overview.add_row("tracking uri", report["tracking_uri"])
    resources = report.get("resources") or {}
    if resources:
        overview.add_row("nodes", str(resources.get("nodes", 0)))
        overview.add_row("CPU", _fmt_resource(resources["CPU"]))
        overview.add_row("GPU", _fmt_resource(resources["GPU"]))
        overview.add_row("memory", _fmt_resource(resources["memory"], 2**30, " GiB"))
        overview.add_row("object store", _fmt_resource(resources["object_store_memory"], 2**30, " GiB"))
    console.print(overview)
    if report.get("actors"):
        actors = Table(title="platform actors", title_justify="left")
        for col in ("name", "state", "role"):
            actors.add_column(col)
        for row in report["actors"]:
            colour = {"ALIVE": "green", "NOT STARTED": "dim"}.get(row["state"], "red")
            actors.add_row(row["name"], f"[{colour}]{row['state']}[/]", row.get("description", ""))
        console.print(actors)
    models = report.get("models")
    if isinstance(models, list) and models:
        table = Table(title="models", title_justify="left")
        for col in ("name", "versions", "aliases"):
            table.add_column(col)
        for row in models:
            aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(row["aliases"].items())) or "-"
            table.add_row(row["name"], str(row["versions"]), aliases)
        console.print(table)
    features = report.get("features")
    if isinstance(features, list) and features:
        table = Table(title="feature views", title_justify="left")
        for col in ("view", "version", "online rows", "ttl"):
            table.add_column(col)
        for row in features:
            table.add_row(row["view"], f"v{row['version']}", str(row["online_rows"]),
                          f"{row['ttl_seconds']:g}s" if row["ttl_seconds"] else "-")
        console.print(table)
    ct = report.get("continuous_training")
    if isinstance(ct, list) and ct:
        from raymlops.cli.ct import service_table

        console.print(service_table(ct))
    health = report.get("model_health")
    if isinstance(health, list) and health:
        console.print(_health_table(health))
    pools = report.get("scoring_pools")
    if isinstance(pools, list) and pools:
        table = Table(title="warm scoring actors (batch prediction)", title_justify="left")
        for col in ("model", "version", "state", "idle", "expires after", "units", "rows"):
            table.add_column(col)
        for row in pools:
            table.add_row(row["model"], f"v{row['version']}", str(row.get("state", "-")),
                          f"{row['idle_s']:.0f}s" if "idle_s" in row else "-",
                          f"{row['idle_timeout_s']:g}s" if "idle_timeout_s" in row else "-",
                          str(row.get("units", "-")), f"{row['rows']:,}" if "rows" in row else "-")
        console.print(table)
    if report.get("running"):
        apps = Table(title="serve applications", title_justify="left")
        for col in ("name", "status", "route"):
            apps.add_column(col)
        for row in report.get("serve_applications") or []:
            apps.add_row(row["name"], row["status"], str(row.get("route_prefix")))
        if not report.get("serve_applications"):
            apps.add_row("-", "none deployed", "-")
        console.print(apps)


@app.command()
def up(
    ctx: typer.Context,
    address: AddressOption = None,
    autoscaling_config: Annotated[
        str | None,
        typer.Option(
            "--autoscaling-config",
            help="Start the local head with this fake multi-node cluster YAML (cluster/local.yaml).",
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Return only when every platform actor answers."),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Attach to a running cluster or start a local head; get-or-create the platform actors.

    A local head has the dashboard and Ray's token auth on, binds 127.0.0.1 and never takes
    port 6379 unless told to. Running `up` twice is harmless: the second run attaches.
    """
    from raymlops import cluster

    state: CliState = ctx.obj
    settings = state.settings()
    started = time.perf_counter()
    with console.status("bringing the platform up (starting Ray takes a few seconds)..."):
        platform = cluster.up(
            settings, address=address, autoscaling_config=autoscaling_config, wait=wait
        )
    elapsed = time.perf_counter() - started
    summary = {
        "ray_address": platform.address,
        "dashboard_url": platform.dashboard_url,
        "started_head": platform.started_head,
        "created_actors": platform.created_actors,
        "seconds": round(elapsed, 2),
    }
    if as_json:
        emit(json.dumps(summary))
        return
    verb = "started a local head at" if platform.started_head else "attached to"
    console.print(f"[green]raymlops up[/]: {verb} {platform.address} in {elapsed:.1f}s")
    console.print(f"  dashboard: {platform.dashboard_url}")
    created = ", ".join(platform.created_actors) or "none (all existed)"
    console.print(f"  actors created: {created}")
    console.print(f"  submit jobs: RAY_AUTH_MODE={settings.auth_mode} ray job submit "
                  f"--address {platform.dashboard_url} --working-dir . -- python jobs/status.py")


@app.command()
def status(
    ctx: typer.Context,
    address: AddressOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the cluster, dashboard, resources, platform actors, Serve apps and storage."""
    from raymlops._status import status as collect_status

    report = collect_status(ctx.obj.settings(), address=address)
    if as_json:
        emit(json.dumps(report, default=str))
    else:
        render_status(report)
    if not report["running"]:
        raise typer.Exit(code=1)


@app.command()
def down(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Stop what `raymlops up` started here (its head and actors), and only that."""
    from raymlops import cluster

    with console.status("stopping..."):
        result = cluster.down(ctx.obj.settings())
    if as_json:
        emit(json.dumps(result))
    elif result["stopped"]:
        what = "head and its processes" if result["head_stopped"] else "platform actors"
        console.print(f"[green]raymlops down[/]: stopped the {what} at {result['address']}")
    else:
        console.print(f"raymlops down: {result['reason']}")
