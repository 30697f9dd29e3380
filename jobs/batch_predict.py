"""``ray job submit -- python jobs/batch_predict.py NAME[@ALIAS] --input IN --output OUT``.

Scores the input on the cluster (Ray Data shows its progress in the job log) and prints the
result as JSON: model, version, rows, output, seconds.
"""

from __future__ import annotations

import argparse
import json
import sys

import raymlops
from raymlops.serving.batch import batch_predict, validate_keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="NAME, NAME@ALIAS or NAME@VERSION")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--keep", default=None, help="comma-separated input columns to keep")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    platform = raymlops.init(start=False)
    result = batch_predict(args.model, args.input, args.output, settings=platform.settings,
                           keep_columns=validate_keep(args.keep), workers=args.workers,
                           overwrite=args.overwrite)
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
