"""Batch prediction benchmark: raymlops (warm scoring pool) vs a single-process pandas loop.

Input: every 2013 flight, repeated to >= 2M rows, in Parquet (row groups of 100k rows).
Models, on flight fields + point-in-time weather + plane features (FeatureService
`delay_model`): histogram gradient boosting (whose predict already runs on every core in the
baseline, through OpenMP) and a logistic-regression pipeline (single-threaded predict). Both sides do the same work per chunk -- read, point-in-time
join (the same ``HistoricalFeatures.join``), ``predict_proba``, write Parquet -- so the ratio
is what raymlops' batch path buys. The first round's job starts the version's scoring actors
(cold); later rounds find them warm. Issue #6's target (>= 1.5x on 2 cores) is replaced by
issue #19's, measured across sizes by ``scale_bench.py``.

    python benchmarks/batch_bench.py [--copies 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import flights_platform, machine, median, write_section

RAW = ["origin", "tailnum", "sched_dep_ts", "hour", "distance", "carrier"]
OWN = ["hour", "distance"]


def pandas_loop(src: Path, out: Path, predictor, features, keep: list[str]) -> int:
    """The baseline: one process, chunk by chunk (row group by row group)."""
    from raymlops.serving.batch import score_frame
    from raymlops.tabular_input import plan_units, read_unit

    out.mkdir(parents=True)
    rows = 0
    for i, unit in enumerate(plan_units(src, rows_per_unit=100_000)):
        frame = features.join(read_unit(unit, RAW), "sched_dep_ts")
        scored = score_frame(predictor, frame, keep)
        pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), out / f"part-{i:05d}.parquet")
        rows += len(scored)
    return rows


def ceiling(src: Path, predictor, features, keep: list[str], workers: int) -> tuple[float, float, float]:
    """(all-core s, one-thread s, best possible ratio) of the baseline's work on one input file.

    The baseline runs in one process, but scikit-learn's ``predict`` may use every core
    (OpenMP, BLAS); each Ray scoring actor runs one thread. With ``workers`` actors and no
    overhead at all, Ray Data can be at most ``all_core / (one_thread / workers)`` times
    faster: Amdahl's bound for this model on this machine.
    """
    import io

    from threadpoolctl import threadpool_limits

    from raymlops.serving.batch import score_frame
    from raymlops.tabular_input import plan_units, read_unit

    units = plan_units(src, rows_per_unit=100_000)
    units = [u for u in units if u.path == units[0].path]
    timings: dict[int | None, list[float]] = {None: [], 1: []}
    for _ in range(3):  # interleaved passes, medians: one pass is too noisy on a shared machine
        for threads in (None, 1):
            with threadpool_limits(limits=threads):
                t0 = time.perf_counter()
                for unit in units:
                    scored = score_frame(predictor, features.join(read_unit(unit, RAW), "sched_dep_ts"), keep)
                    pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), io.BytesIO())
                timings[threads].append(time.perf_counter() - t0)
    all_core, one_thread = median(timings[None]), median(timings[1])
    return all_core, one_thread, all_core / (one_thread / workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6, help="copies of the 336,776 flights")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="hgb,logreg", help="comma-separated: hgb, logreg")
    args = parser.parse_args()

    import os

    import ray
    from sklearn.ensemble import HistGradientBoostingClassifier

    from raymlops.datasets.flights import load_flights, month_slice
    from raymlops.registry.client import RegistryClient
    from raymlops.serving.batch import batch_predict

    cpus = os.cpu_count() or 2
    settings, fs, work = flights_platform("batch-bench-")

    flights = load_flights()
    jan = month_slice(flights, 1).select([*RAW, "delayed"]).to_pandas().dropna(subset=["delayed"])
    train = fs.get_historical_features("delay_model", jan, "sched_dep_ts", engine="local")
    cols = OWN + [c for c in train.columns if "__" in c]
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = train[cols].astype("float64"), train["delayed"].astype(int)
    models = {
        "hgb": HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X, y),
        "logreg": make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y),
    }
    models = {k: m for k, m in models.items() if k in args.models.split(",")}
    registry = RegistryClient.connect(settings)
    for key, model in models.items():
        registry.register(f"bench-{key}", model, input_example=X.head(5),
                          feature_service="delay_model", entity_timestamp="sched_dep_ts", aliases=["champion"])
    features = fs.historical_features("delay_model")

    src = work / "input"
    src.mkdir()
    table = flights.select(RAW)
    for i in range(args.copies):
        pq.write_table(table, src / f"flights-{i}.parquet", row_group_size=100_000)
    total = table.num_rows * args.copies
    print(f"input: {total:,} rows in {args.copies} files; {len(cols)} features")

    rows_md: list[str] = []
    ratios: list[float] = []
    bounds: dict[str, float] = {}
    for key in models:
        predictor = registry.load(f"bench-{key}", "champion")
        all_core, one_thread, bound = ceiling(src, predictor, features, ["origin"], workers=cpus)
        bounds[key] = bound
        print(f"{key}: one file {all_core:.2f} s on every core, {one_thread:.2f} s on one thread: "
              f"Ray Data's bound {bound:.2f}x")
        ray_s, base_s = [], []
        for r in range(args.rounds):  # interleaved, so drift in machine load hits both
            out = work / f"ray-{key}-{r}"
            t0 = time.perf_counter()
            result = batch_predict(f"bench-{key}@champion", src, out, settings=settings,
                                   keep_columns=["origin"])
            ray_s.append(time.perf_counter() - t0)
            assert result.rows == total
            shutil.rmtree(out)
            out = work / f"pandas-{key}-{r}"
            t0 = time.perf_counter()
            rows = pandas_loop(src, out, predictor, features, ["origin"])
            base_s.append(time.perf_counter() - t0)
            assert rows == total
            shutil.rmtree(out)
            print(f"{key} round {r + 1}: raymlops {ray_s[-1]:.1f} s, pandas loop {base_s[-1]:.1f} s")
        rs, bs = median(ray_s), median(base_s)
        ratios.append(bs / rs)
        rows_md.append(f"| {key} | pandas loop, one process (baseline) | {bs:.1f} | {total / bs:,.0f} | 1.00 |")
        rows_md.append(f"| {key} | `raymlops batch predict` (first job cold, then warm; {cpus} CPUs) | {rs:.1f} | {total / rs:,.0f} | **{bs / rs:.2f}x** |")
        rows_md.append(f"| {key} | bound: {cpus} one-thread actors, zero overhead (Amdahl) | - | - | {bound:.2f}x |")
    table = "\n".join(rows_md)
    worst = min(ratios)
    md = f"""## Batch prediction (`benchmarks/batch_bench.py --copies {args.copies} --rounds {args.rounds} --models {args.models}`)

Input: {total:,} flights ({args.copies} copies of 2013) in Parquet, row groups of 100k. Baseline: a single-process pandas loop doing the same work per 100k-row chunk (read Parquet, point-in-time join of weather + planes, `predict_proba` of the same model, write Parquet). Median of {args.rounds} interleaved rounds, {machine()}. raymlops' time includes starting its scoring actors and the exactly-once check.

| model | pipeline | median s | rows/s | ratio |
|---|---|---:|---:|---:|
{table}

Issue #6's target (>= 1.5x the pandas loop on 2 cores) is replaced by issue #19's, which
`scale_bench.py` measures from 2M to 20M rows, warm and cold (see "Scale" below); worst model
here {worst:.2f}x.

Reading it: the "bound" row is measured in this run: the baseline's work on one file with
every core (as the baseline runs) and on one thread (as each scoring actor runs). It is the
bound for the scikit-learn model; raymlops scores with the compiled model the registry serves
when it matched (both models here), whose units are cheaper, so it can pass the bound. The
median includes the first round, whose job starts the scoring actors (~2.5-3 s: a worker
process, the scikit-learn/skops/ONNX Runtime imports, the model mapped); later jobs of the same
version find them warm. What the path also buys is exactly-once output, point-in-time features
and the same code across hosts (proven on 3 test hosts with S3 storage: see "Three hosts" below).
"""
    print(md)
    write_section("batch", md)
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
