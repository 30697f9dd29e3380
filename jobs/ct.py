"""``ray job submit -- python jobs/ct.py SPEC [--manual] [--limit N]``.

Continuous training as a job: every period of the spec whose labels have arrived and that has
no decision yet is decided in order (drift, performance, maybe retrain, gate, promote), as
`raymlops ct run --spec SPEC` does. Prints the plan, then each decision, as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import sys

import raymlops
from raymlops.training.spec import load_spec
from raymlops.training.workflow import run_pending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="training spec YAML")
    parser.add_argument("--manual", action="store_true", help="the first cycle retrains regardless")
    parser.add_argument("--limit", type=int, default=None, help="decide at most this many periods")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    settings = raymlops.init(start=False).settings
    plan, _ = run_pending(spec, settings, manual=args.manual, limit=args.limit,
                          on_event=lambda e: print(json.dumps(e.to_dict(), default=str), flush=True))
    print(json.dumps({"plan": plan.to_dict()}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
