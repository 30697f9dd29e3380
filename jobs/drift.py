"""``ray job submit -- python jobs/drift.py --reference A --current B [--report out.html]``.

Computes the drift report on the cluster (Ray Data reads and summarises the files), logs it
to MLflow (experiment ``raymlops-drift``; ``--no-log-mlflow`` to skip; ``--model NAME``
attributes it to a registered model), sets the ``raymlops_drift_*`` Ray gauges, and prints
the JSON with ``mlflow_run_id``. Exits 2 when the dataset drifted, so a scheduler can act on
it.
"""

from __future__ import annotations

import argparse
import json
import sys

import raymlops
from raymlops.monitoring.drift import drift_report
from raymlops.monitoring.drift_publish import default_dataset_name, publish_drift
from raymlops.shared_state import require_reachable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True)
    parser.add_argument("--current", required=True)
    parser.add_argument("--columns", default=None)
    parser.add_argument("--test", default="auto")
    parser.add_argument("--report", default=None, help="write the HTML report here")
    parser.add_argument("--dataset", default=None, help="metric tag (default: current's name)")
    parser.add_argument("--model", default=None,
                        help="registered model whose data this is (tags the MLflow run; "
                             "raymlops status shows it as the model's drift)")
    parser.add_argument("--log-mlflow", action=argparse.BooleanOptionalAction, default=True,
                        help="log an MLflow run (default: on)")
    args = parser.parse_args(argv)
    platform = raymlops.init(start=False)
    require_reachable(platform.settings, {"reference": args.reference, "current": args.current})
    columns = args.columns.split(",") if args.columns else None
    result = drift_report(args.reference, args.current, columns=columns, test=args.test)
    out = publish_drift(
        result, settings=platform.settings,
        dataset=args.dataset or default_dataset_name(args.current),
        reference=args.reference, current=args.current, log_mlflow=args.log_mlflow,
        export_metrics=True, report_path=args.report, model=args.model)
    print(json.dumps(out, default=str))
    return 2 if out["dataset_drift"] else 0


if __name__ == "__main__":
    sys.exit(main())
