"""``ray job submit -- python jobs/train.py SPEC [--trials N] [--promote]``.

AutoML on a training spec's data as a cluster job: the best model registered (and promoted
with --promote). Prints the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

import raymlops
from raymlops.training.spec import load_spec
from raymlops.training.workflow import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="training spec YAML")
    parser.add_argument("--trials", type=int, default=None, help="override search.trials")
    parser.add_argument("--promote", action="store_true", help="make the new version the champion")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    settings = raymlops.init(start=False).settings
    result = train(spec, settings, trials=args.trials)
    if args.promote and result.version:
        from raymlops.registry.client import RegistryClient

        RegistryClient.connect(settings).promote(spec.name, result.version["version"])
    print(json.dumps(result.to_dict(), default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
