"""``raymlops train SPEC``: AutoML on the spec's training window, best model registered."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from raymlops.cli._app import app, console, emit


@app.command("train")
def train_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Training spec YAML (see examples/seattle_weather/spec.yaml).")],
    trials: Annotated[int | None, typer.Option(min=1, help="Override search.trials.")] = None,
    promote: Annotated[bool, typer.Option(help="Make the registered version the champion.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Search model families and hyperparameters on Ray Tune (TPE + ASHA) for the spec's data.

    The spec names the label table, the inputs, the task and the metric; the newest periods
    (or train.start..train.end) train, the newest share of their rows validates. Every trial is
    an MLflow run nested under the search's run; the best model is registered with its
    lineage and gets the spec's alias (challenger by default), and with --promote becomes the
    champion.
    """
    from raymlops import cluster
    from raymlops._quiet import quiet_libraries
    from raymlops.training.objectives import direction
    from raymlops.training.spec import load_spec
    from raymlops.training.workflow import train

    quiet_libraries()

    loaded = load_spec(spec)
    settings = cluster.init(ctx.obj.settings(), start=False).settings
    metric = str(loaded.metric)
    sign = 1 if direction(metric) == "max" else -1
    total = trials or loaded.search.trials
    best = {"value": float("nan")}
    with Progress(TextColumn("[bold]AutoML[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=as_json) as progress:
        task = progress.add_task("trials", total=total)

        def on_trial(done: int, trial: object) -> None:
            value = (getattr(trial, "last_result", None) or {}).get(metric)
            if value is not None and (math.isnan(best["value"]) or sign * value > sign * best["value"]):
                best["value"] = value
            progress.update(task, completed=done, description=f"best {metric} {best['value']:.4f}")

        result = train(loaded, settings, on_trial=on_trial, trials=trials)
    version = result.version or {}
    if promote and version:
        from raymlops.registry.client import RegistryClient

        registry = RegistryClient.connect(settings)
        registry.promote(loaded.name, version["version"])
        version = registry.get_version(loaded.name, version["version"])
    if as_json:
        emit(json.dumps({**result.to_dict(), "version": version}, default=str))
        return
    table = Table(title=f"search {Path(result.path).name}", title_justify="left", show_header=False)
    for key, value in [("best", json.dumps(result.best_config)), (metric, f"{result.best_metric:.4f}"),
                       ("trials", (f"{result.trials} ({result.stopped_early} stopped early by ASHA; "
                                   f"{result.repeats_answered} repeated configurations answered, not trained)")),
                       ("registered", f"{loaded.name} v{version.get('version', '-')} "
                                      f"@{', @'.join(sorted(version.get('aliases') or [])) or '-'}"),
                       ("data window", " .. ".join((version.get("lineage") or {}).get("data_window") or [])),
                       ("mlflow run", result.parent_run_id), ("seconds", f"{result.wall_s:.1f}")]:
        table.add_row(key, value)
    console.print(table)
