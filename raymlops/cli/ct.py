"""``raymlops ct run | status | rollback``: the continuous-training loop and its record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from raymlops.cli._app import app, console, emit
from raymlops.exceptions import ConfigError, ValidationError

ct_app = typer.Typer(help="Continuous training: drift/performance/schedule triggers, gated promotion.",
                     no_args_is_help=True)
app.add_typer(ct_app, name="ct")


def _months(text: str) -> list[int]:
    try:
        if "-" in text:
            first, last = (int(x) for x in text.split("-"))
            months = list(range(first, last + 1))
        else:
            months = [int(x) for x in text.split(",")]
    except ValueError:
        raise ValidationError(f"--months {text!r}: use M, M-N or M,N,...", field="months") from None
    if not months or any(m < 1 or m > 12 for m in months):
        raise ValidationError(f"--months {text!r}: months of 2013 are 1-12", field="months")
    return months


def _policy(model: str, policy_file: Path | None, overrides: dict[str, Any]) -> Any:
    from pydantic import ValidationError as PydanticError

    from raymlops.training.ct import CTPolicy

    raw: dict[str, Any] = {}
    if policy_file is not None:
        if not policy_file.is_file():
            raise ConfigError(f"no policy file {policy_file}", field="policy")
        raw = yaml.safe_load(policy_file.read_text()) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None}, model=model)
    try:
        return CTPolicy.model_validate(raw)
    except PydanticError as exc:
        raise ConfigError(f"CT policy: {exc}", field="policy") from None


def _event_row(table: Table, e: dict[str, Any]) -> None:
    colour = {"promoted": "green", "rejected": "yellow", "failed": "red", "rollback": "magenta"}.get(e["decision"], "dim")
    auc = lambda v: "-" if v is None or v != v else f"{v:.4f}"  # noqa: E731
    table.add_row(str(e["cycle"]), e["period"], e["trigger"] or "-", f"[{colour}]{e['decision']}[/]",
                  f"v{e['champion_before'] or '-'} -> v{e['champion_after'] or '-'}", auc(e.get("champion_auc")),
                  auc(e.get("challenger_auc")), e["reason"])


def _events_table(events: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("cycle", "after", "trigger", "decision", "champion", "champion AUC", "challenger AUC", "why"):
        table.add_column(col)
    for e in events:
        _event_row(table, e)
    return table


@ct_app.command("run")
def run(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Registered model the loop manages.")] = "flights-delay",
    months: Annotated[str, typer.Option(help="Months whose labels just arrived: M, M-N or M,N (flights 2013).")] = "3",
    manual: Annotated[bool, typer.Option(help="Retrain now whatever the signals say.")] = False,
    policy: Annotated[Path | None, typer.Option(help="Policy YAML (fields of CTPolicy).")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="AutoML trials per retrain.")] = None,
    cooldown: Annotated[int | None, typer.Option(min=0, help="Cycles after a retrain with no retrain.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the events as JSON.")] = False,
) -> None:
    """Run one cycle per month: drift and performance of the champion, maybe retrain, gate, promote.

    Without a champion the first cycle trains one on the window ending at that month.
    Every decision is logged to MLflow (experiment raymlops-ct) and shown by `ct status`.
    """
    from raymlops import cluster
    from raymlops.training.ct_flights import flights_trainer

    chosen = _months(months)
    settings = cluster.init(ctx.obj.settings(), start=False).settings
    trainer = flights_trainer(_policy(model, policy, {"trials": trials, "cooldown": cooldown}), settings)
    calendar = list(range(1, 13))
    events = []
    for i, month in enumerate(chosen):
        with console.status(f"CT cycle after month {month} ({i + 1}/{len(chosen)})...", spinner="dots"):
            event = trainer.cycle(calendar, calendar.index(month), manual=manual)
        events.append(event.to_dict())
        if not as_json:
            console.print(f"after month {month}: [bold]{event.decision}[/] ({event.trigger or 'no trigger'}) - {event.reason}")
    if as_json:
        emit(json.dumps(events, default=str))
    else:
        console.print(_events_table(events, f"CT cycles for {model}"))


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
    try:
        from raymlops import cluster
        from raymlops.registry.client import RegistryClient

        settings = cluster.init(settings, start=False).settings
        for m in RegistryClient.connect(settings).list_models():
            if model is None or m["name"] == model:
                aliases[m["name"]] = m["aliases"]
    except Exception:  # noqa: BLE001 - status still shows the durable record without a platform
        pass
    if as_json:
        emit(json.dumps({"events": events, "aliases": aliases}, default=str))
        return
    for name, al in aliases.items():
        console.print(f"[bold]{name}[/]: " + ", ".join(f"{a}=v{v}" for a, v in sorted(al.items())))
    retrains = sum(1 for e in events if e["decision"] in ("promoted", "rejected", "failed") and e["trigger"] != "bootstrap")
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
