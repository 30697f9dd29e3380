"""``raymlops alerts start | list | history | tick | stop``: alert rules on the cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from raymlops.cli._app import app, console, emit

alerts_app = typer.Typer(help="Alert rules over raymlops_* metrics: evaluate, notify, history.",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _attach(ctx: typer.Context) -> Any:
    from raymlops import cluster

    return cluster.init(ctx.obj.settings(), start=False).settings


def _when(ts: float | None) -> str:
    import datetime as dt

    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _show_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(json.dumps(status, default=str))
        return
    rules = Table(title=f"alert rules (every {status['interval_s']:g}s)", title_justify="left")
    for col in ("rule", "condition", "for", "severity", "actions"):
        rules.add_column(col)
    for r in status["rules"]:
        rules.add_row(r["name"], r["condition"], f"{r['for_s']:g}s", r["severity"],
                      ", ".join(r["actions"]))
    console.print(rules)
    active = Table(title=f"active alerts ({len(status['active'])})", title_justify="left")
    for col in ("rule", "labels", "state", "value", "since"):
        active.add_column(col)
    for a in status["active"]:
        active.add_row(a["alert"], json.dumps(a["labels"]), a["state"], f"{a['value']:g}",
                       _when(a["since"]))
    console.print(active)
    if status.get("last_error"):
        console.print(f"[red]last evaluation failed[/]: {status['last_error']}")


@alerts_app.command("start")
def start(
    ctx: typer.Context,
    rules: Annotated[Path, typer.Option("--rules", "-r", help="Alert rules YAML (see cluster/alerts.yaml).")],
    as_json: JsonOption = False,
) -> None:
    """Install RULES (validated first) and start (or reload) the raymlops-alerts actor."""
    import ray

    from raymlops.monitoring.alerts import alerts_actor, install_rules

    settings = _attach(ctx)
    install_rules(settings, rules)
    existing = alerts_actor(settings, create=False)
    if existing is not None:
        ray.get(existing.reload.remote(), timeout=60)
    actor = existing or alerts_actor(settings)
    _show_status(ray.get(actor.status.remote(), timeout=60), as_json)


@alerts_app.command("list")
def list_alerts(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The rules and the alerts pending or firing now (starts the actor if rules exist)."""
    import ray

    from raymlops.monitoring.alerts import alerts_actor

    actor = alerts_actor(_attach(ctx))
    _show_status(ray.get(actor.status.remote(), timeout=60), as_json)


@alerts_app.command("tick")
def tick(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Evaluate the rules now (besides the actor's own schedule); prints the transitions."""
    import ray

    from raymlops.monitoring.alerts import alerts_actor

    out = ray.get(alerts_actor(_attach(ctx)).tick.remote(), timeout=120)
    if as_json:
        emit(json.dumps(out, default=str))
        return
    for t in out:
        console.print(f"{t['alert']} {t['status']} {json.dumps(t['labels'])} value={t['value']}")
    if not out:
        console.print("no alert changed state")


@alerts_app.command("history")
def history(
    ctx: typer.Context,
    rule: Annotated[str | None, typer.Option(help="Only this rule's alerts.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most recent alerts to show.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Alerts that fired (and when they resolved), newest first, from the durable history."""
    from raymlops.monitoring.alert_store import AlertStore
    from raymlops.monitoring.alerts import history_path

    try:
        settings = _attach(ctx)
    except Exception:  # noqa: BLE001 - the history is a file: readable with no cluster
        settings = ctx.obj.settings()
    rows = AlertStore(history_path(settings)).history(limit, rule)
    if as_json:
        emit(json.dumps(rows, default=str))
        return
    table = Table(title=f"alert history ({len(rows)})", title_justify="left")
    for col in ("rule", "labels", "severity", "status", "value", "started", "resolved", "actions"):
        table.add_column(col)
    for r in rows:
        acts = ", ".join(f"{a['action']}:{'ok' if a.get('ok') else 'failed'}" for a in r["actions"])
        table.add_row(r["rule"], json.dumps(r["labels"]), r["severity"], r["status"],
                      f"{r['value']:g}" if r["value"] is not None else "-", _when(r["started_at"]),
                      _when(r["resolved_at"]), acts or "-")
    console.print(table)


@alerts_app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Stop the raymlops-alerts actor (rules and history stay; `start` or `list` restarts it)."""
    import ray

    from raymlops.monitoring.alerts import alerts_actor

    actor = alerts_actor(_attach(ctx), create=False)
    if actor is not None:
        ray.kill(actor, no_restart=True)
    console.print("alerts stopped" if actor is not None else "no alerts actor was running")
