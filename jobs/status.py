"""``ray job submit -- python jobs/status.py``: attach to the platform and print its status.

The first job entrypoint: it proves a submitted job runs with raymlops installed (the head's
PATH starts with the project's interpreter) and attaches to the platform through RAY_ADDRESS,
which Ray sets for every job.
"""

from __future__ import annotations

import json
import sys

import raymlops


def main() -> int:
    platform = raymlops.init(start=False)
    report = raymlops.status(platform.settings)
    print(json.dumps(report, default=str, indent=2))
    # an on-demand actor (the CT service) that nobody started yet is not a failure
    missing = [a["name"] for a in report["actors"] if a["state"] not in ("ALIVE", "NOT STARTED")]
    if missing:
        print(f"platform actors not alive: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
