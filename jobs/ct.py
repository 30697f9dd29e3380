"""``ray job submit -- python jobs/ct.py --model flights-delay --months 3-12 [--trials N]``.

The continuous-training loop as a long-running job: one cycle per month whose labels have
arrived (drift, performance, maybe retrain, gate, promote). Prints each decision as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

import raymlops
from raymlops.training.ct import CTPolicy
from raymlops.training.ct_flights import flights_trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="flights-delay")
    parser.add_argument("--months", default="3-12", help="M-N: months whose labels arrived, in order")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--cooldown", type=int, default=0)
    args = parser.parse_args(argv)
    first, _, last = args.months.partition("-")
    months = list(range(int(first), int(last or first) + 1))
    settings = raymlops.init(start=False).settings
    trainer = flights_trainer(CTPolicy(model=args.model, trials=args.trials, cooldown=args.cooldown), settings)
    calendar = list(range(1, 13))
    for month in months:
        event = trainer.cycle(calendar, calendar.index(month))
        print(json.dumps(event.to_dict(), default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
