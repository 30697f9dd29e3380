"""``ray job submit -- python jobs/drift.py --reference A --current B [--report out.html]``.

Computes the drift report on the cluster (Ray Data reads and summarises the files) and prints
the JSON; exits 2 when the dataset drifted, so a scheduler can act on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import raymlops
from raymlops.monitoring.drift import drift_report
from raymlops.monitoring.report import render_html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True)
    parser.add_argument("--current", required=True)
    parser.add_argument("--columns", default=None)
    parser.add_argument("--report", default=None)
    args = parser.parse_args(argv)
    raymlops.init(start=False)
    columns = args.columns.split(",") if args.columns else None
    result = drift_report(args.reference, args.current, columns=columns)
    if args.report:
        Path(args.report).write_text(render_html(result))
    result.pop("_summaries", None)
    print(json.dumps(result, default=str))
    return 2 if result["dataset_drift"] else 0


if __name__ == "__main__":
    sys.exit(main())
