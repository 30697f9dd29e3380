"""Run every benchmark and rewrite benchmarks/RESULTS.md from their sections.

    make bench          # or: python benchmarks/run_all.py
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (script and arguments, the results sections it writes: benchmarks/results/<section>.md)
BENCHMARKS = [
    (["cold_up.py"], ["cold_up"]), (["registry_bench.py"], ["registry"]),
    (["features_bench.py"], ["features"]), (["serve_bench.py"], ["serving"]),
    (["serve_champion_bench.py"], ["serving_champion"]), (["batch_bench.py"], ["batch"]),
    (["scale_bench.py"], ["scale", "scale-drift", "scale-retrieval"]),
    (["scale_bench.py", "--object-store-mb", "1024"], ["scale-capped"]),
    (["drift_bench.py"], ["drift"]), (["tune_bench.py"], ["tune"]),
    (["replay_2013.py"], ["replay"]), (["hosts_bench.py"], ["hosts"]),
]


def main() -> None:
    if "--assemble-only" not in sys.argv:
        for (script, *args), _ in BENCHMARKS:
            subprocess.run([sys.executable, str(HERE / script), *args], check=True)
    sections = [(HERE / "results" / f"{name}.md").read_text()
                for _, names in BENCHMARKS for name in names]
    header = (
        "# Benchmark results\n\n"
        f"Latest run: {dt.date.today().isoformat()}. Produced by `make bench` "
        "(= `python benchmarks/run_all.py`); each section names its own command. Every number "
        "is a ratio to a baseline measured in the same run, because machines are noisy.\n\n"
    )
    (HERE / "RESULTS.md").write_text(header + "\n".join(sections))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
