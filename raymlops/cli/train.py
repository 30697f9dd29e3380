"""``raymlops train CONFIG.yaml``: AutoML search, best model registered as challenger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from raymlops.cli._app import app, console, emit


@app.command("train")
def train_command(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="Search YAML (see examples/train_flights.yaml).")],
    trials: Annotated[int | None, typer.Option(min=1, help="Override num_samples.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Search model families and hyperparameters on Ray Tune (TPE + ASHA).

    Every trial is an MLflow run nested under the search's run; the best model is registered
    with its lineage and gets the config's alias (challenger by default).
    """
    from raymlops import cluster
    from raymlops._quiet import quiet_libraries
    from raymlops.training.train_config import load_train_config, train

    quiet_libraries()

    cfg = load_train_config(config)
    if trials is not None:
        cfg = cfg.model_copy(update={"num_samples": trials})
    settings = cluster.init(ctx.obj.settings(), start=False).settings
    best = {"auc": float("nan")}
    with Progress(TextColumn("[bold]AutoML[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=as_json) as progress:
        task = progress.add_task("trials", total=cfg.num_samples)

        def on_trial(done: int, trial: object) -> None:
            auc = (getattr(trial, "last_result", None) or {}).get("roc_auc")
            if auc is not None and not auc <= best["auc"]:
                best["auc"] = auc
            progress.update(task, completed=done, description=f"best AUC {best['auc']:.4f}")

        result = train(cfg, settings, on_trial=on_trial)
    if as_json:
        emit(json.dumps(result.to_dict(), default=str))
        return
    table = Table(title=f"search {Path(result.path).name}", title_justify="left", show_header=False)
    version = result.version or {}
    for key, value in [("best", json.dumps(result.best_config)), ("roc_auc", f"{result.best_metric:.4f}"),
                       ("trials", (f"{result.trials} ({result.stopped_early} stopped early by ASHA; "
                                   f"{result.repeats_answered} repeated configurations answered, not trained)")),
                       ("registered", f"{cfg.name} v{version.get('version', '-')} @{cfg.alias}"),
                       ("mlflow run", result.parent_run_id), ("seconds", f"{result.wall_s:.1f}")]:
        table.add_row(key, value)
    console.print(table)
