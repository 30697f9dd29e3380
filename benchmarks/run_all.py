"""Run every benchmark and rewrite benchmarks/RESULTS.md from their sections.

    make bench          # or: python benchmarks/run_all.py
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["cold_up.py", "registry_bench.py", "features_bench.py"]


def main() -> None:
    for script in BENCHMARKS:
        subprocess.run([sys.executable, str(HERE / script)], check=True)
    sections = [(HERE / "results" / f"{Path(s).stem}.md").read_text() for s in BENCHMARKS]
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
