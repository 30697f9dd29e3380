"""``raymlops ct run | start | stop | status | rollback``: the continuous-training loop, its
service and its record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from raymlops.cli._app import app, console, emit

ct_app = typer.Typer(help="Continuous training: drift/performance/schedule triggers, gated promotion.",
                     no_args_is_help=True)
app.add_typer(ct_app, name="ct")


def _event_row(table: Table, e: dict[str, Any]) -> None:
    colours = {"promoted": "green", "rejected": "yellow", "failed": "red", "rollback": "magenta"}
    colour = colours.get(e["decision"], "dim")
    num = lambda v: "-" if v is None or v != v else f"{v:.4f}"  # noqa: E731
    table.add_row(str(e["cycle"]), e["period"], e["trigger"] or "-", f"[{colour}]{e['decision']}[/]",
                  f"v{e['champion_before'] or '-'} -> v{e['champion_after'] or '-'}", e.get("metric") or "-",
                  num(e.get("champion_score")), num(e.get("challenger_score")), e["reason"])


def _events_table(events: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("cycle", "period", "trigger", "decision", "champion", "metric", "champion score",
                "challenger score", "why"):
        table.add_column(col)
    for e in events:
        _event_row(table, e)
    return table


def service_table(rows: list[dict[str, Any]]) -> Table:
    """The CT service's models (``ct status`` and ``raymlops status``)."""
    import time

    table = Table(title="continuous-training service", title_justify="left")
    for col in ("model", "every", "state", "next check", "checks", "last check"):
        table.add_column(col)
    now = time.time()
    for row in rows:
        last = row.get("last") or {}
        if "error" in last:
            said = f"[red]{last['error'][:120]}[/]"
        elif last:
            decided = ", ".join(f"{p}: {d}" for p, d in last.get("decisions", [])) or "nothing new"
            said = decided + (f"; late labels in {[x['period'] for x in last['late']]}" if last.get("late") else "")
        else:
            said = "-"
        state = (f"[yellow]checking ({now - row['running_since']:.0f} s)[/]" if row["running"]
                 else "[green]waiting[/]")
        table.add_row(row["model"], f"{row['every_s']:g} s", state, f"in {max(0.0, row['next_at'] - now):.0f} s",
                      str(row["checks"]), said)
    return table


def _spec(path: Path) -> Any:
    from raymlops.training.spec import load_spec

    return load_spec(path)


SpecOption = Annotated[Path, typer.Option("--spec", help="Training spec YAML (see examples/).")]


@ct_app.command("run")
def run(
    ctx: typer.Context,
    spec: SpecOption,
    manual: Annotated[bool, typer.Option(help="The first cycle retrains whatever the signals say.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Decide at most this many periods.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the periods that would be decided.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan and the events as JSON.")] = False,
) -> None:
    """Decide every period whose labels have arrived and that has no decision yet, in order.

    Each cycle: drift and the spec's metric of the champion on the period, maybe an AutoML
    retrain on the window, the gate (in the metric's direction), promotion. Without a champion
    the first cycle trains one. Running it again decides nothing twice; a run that was
    interrupted redoes only its unfinished period. Every decision is logged to MLflow
    (experiment raymlops-ct) and shown by `ct status`.
    """
    from raymlops import cluster
    from raymlops._quiet import quiet_libraries
    from raymlops.training.workflow import champion_window, labelled_data, plan, run_pending

    quiet_libraries()
    loaded = _spec(spec)
    settings = cluster.init(ctx.obj.settings(), start=False).settings
    data = labelled_data(loaded, settings)
    if dry_run:
        the_plan = plan(loaded, settings, data, champion_window=champion_window(settings, loaded.name))
        if as_json:
            emit(json.dumps({"plan": the_plan.to_dict(), "events": []}, default=str))
        else:
            _say_plan(the_plan)
        return
    status = console.status("checking the label source...", spinner="dots")
    status.start()

    def on_start(period: str, i: int, n: int) -> None:
        status.update(f"CT cycle for period {period} ({i + 1}/{n})...")

    def on_event(event: Any) -> None:
        if not as_json:
            console.print(f"{event.period}: [bold]{event.decision}[/] "
                          f"({event.trigger or 'no trigger'}) - {event.reason}")

    def on_plan(the_plan: Any) -> None:
        if not as_json:
            status.stop()
            _say_plan(the_plan)
            status.start()

    try:
        the_plan, events = run_pending(loaded, settings, manual=manual, data=data, limit=limit,
                                       on_plan=on_plan, on_start=on_start, on_event=on_event)
    finally:
        status.stop()
    if as_json:
        emit(json.dumps({"plan": the_plan.to_dict(), "events": [e.to_dict() for e in events]}, default=str))
        return
    if events:
        console.print(_events_table([e.to_dict() for e in events], f"CT cycles for {loaded.name}"))


def _say_plan(the_plan: Any) -> None:
    console.print(f"[bold]{the_plan.model}[/]: {len(the_plan.closed)} periods with labels, "
                  f"{len(the_plan.decided)} decided, pending: {', '.join(the_plan.pending) or 'none'}")
    for late in the_plan.late:
        console.print(f"[yellow]late labels[/] in decided period {late['period']}: {late['rows_at_decision']} rows "
                      f"at its decision, {late['rows_now']} now (not re-decided; they count in later windows)")


@ct_app.command("start")
def start(
    ctx: typer.Context,
    spec: SpecOption,
    every: Annotated[str, typer.Option(help="How often to check for new labelled periods: 30s, 10m, 1h, 1d.")] = "1h",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Hand the spec to the CT service: it checks for new labelled periods every --every (and
    when an alert asks), decides them as `ct run` would, as Ray work, with no one watching."""
    from raymlops import cluster
    from raymlops.training.ct_service import CT_SERVICE_ACTOR, parse_duration

    loaded = _spec(spec)
    seconds = parse_duration(every)
    settings = cluster.init(ctx.obj.settings(), start=False).settings
    if loaded.labels.path:  # the service's checks read the labels on any host
        from raymlops.shared_state import require_reachable

        require_reachable(settings, {"labels.path": loaded.resolve(loaded.labels.path)})
    import ray

    service = cluster.platform_actor(CT_SERVICE_ACTOR, settings)
    row = ray.get(service.start.remote(loaded.model_dump(mode="json"), seconds), timeout=60)
    if as_json:
        emit(json.dumps(row, default=str))
    else:
        console.print(f"CT service checks [bold]{loaded.name}[/] every {seconds:g} s (first check now); "
                      "`raymlops ct status` shows its decisions")


@ct_app.command("stop")
def stop(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Stop only this model (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Stop the CT service's checks (a check that is running is cancelled)."""

    from raymlops import cluster
    from raymlops.training.ct_service import CT_SERVICE_ACTOR

    settings = cluster.init(ctx.obj.settings(), start=False).settings
    try:
        service = cluster.platform_actor(CT_SERVICE_ACTOR, settings, create=False)
    except ValueError:
        stopped: list[str] = []
    else:
        from raymlops._actor_client import ActorClient

        stopped = ActorClient(service, settings)._call("stop", model)
    if as_json:
        emit(json.dumps({"stopped": stopped}))
    else:
        console.print(f"stopped: {', '.join(stopped) or 'nothing (the CT service holds no model)'}")


@ct_app.command("status")
def status(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's events.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most recent events to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The loop's decisions (newest first), from MLflow, with the models' current aliases."""
    from raymlops.training.ct import history

    settings = ctx.obj.settings()
    events = history(settings, model, limit)
    aliases: dict[str, Any] = {}
    service: list[dict[str, Any]] = []
    try:
        import ray

        from raymlops import cluster
        from raymlops.registry.client import RegistryClient
        from raymlops.training.ct_service import CT_SERVICE_ACTOR

        settings = cluster.init(settings, start=False).settings
        for m in RegistryClient.connect(settings).list_models():
            if model is None or m["name"] == model:
                aliases[m["name"]] = m["aliases"]
        try:
            handle = cluster.platform_actor(CT_SERVICE_ACTOR, settings, create=False)
            service = [r for r in ray.get(handle.status.remote(), timeout=30) if model is None or r["model"] == model]
        except ValueError:
            pass
    except Exception:  # noqa: BLE001, S110 - status still shows the durable record without a platform
        pass
    if as_json:
        emit(json.dumps({"events": events, "aliases": aliases, "service": service}, default=str))
        return
    if service:
        console.print(service_table(service))
    for name, al in aliases.items():
        console.print(f"[bold]{name}[/]: " + ", ".join(f"{a}=v{v}" for a, v in sorted(al.items())))
    retrains = sum(1 for e in events
                   if e["decision"] in ("promoted", "rejected", "failed") and e["trigger"] != "bootstrap")
    console.print(_events_table(events, f"CT events ({len(events)}, {retrains} retrains)"))


@ct_app.command("rollback")
def rollback(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model whose champion goes back to the previous one.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Put the previous champion back (serving hot-swaps to it); recorded as a CT event."""
    import time

    from raymlops import cluster
    from raymlops.registry.client import RegistryClient
    from raymlops.training.ct import Event, log_event

    settings = cluster.init(ctx.obj.settings(), start=False).settings
    registry = RegistryClient.connect(settings)
    before = registry.get_version(model, "champion")["version"]
    result = registry.rollback(model)
    event = Event(0, time.strftime("%Y-%m-%dT%H:%M:%S"), "manual", "rollback",
                  f"rolled back from v{before} to v{result['champion']}", before, result["champion"])
    event.run_id = log_event(settings, model, event)
    if as_json:
        emit(json.dumps(event.to_dict(), default=str))
    else:
        console.print(f"{model}: champion v{before} -> v{result['champion']} (previous=v{result['previous']})")
