"""Write Seattle's daily weather 2012-2015 (vega-datasets' ``seattle-weather``) as a label table.

    python examples/seattle_weather/write_labels.py [--until 2013-12] [--out DIR]

One Parquet file per month under ``DIR`` (default ``data/labels`` next to this file), each
row a day: ``date`` (a UTC timestamp: label tables must carry a time zone), the measurements
``precipitation``, ``temp_max``, ``temp_min``, ``wind`` and the observed ``weather`` (sun, fog,
rain, drizzle, snow). Run it again with a later ``--until`` to append the months after: that is
new labels arriving, which a running CT service picks up on its next check. Months already
written are left alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import pandas as pd


def seattle_weather() -> pd.DataFrame:
    """The CSV shipped inside the vega_datasets package (read directly: no download)."""
    spec = importlib.util.find_spec("vega_datasets")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install -e '.[examples]'  (vega-datasets ships seattle-weather.csv)")
    frame = pd.read_csv(Path(spec.origin).parent / "_data" / "seattle-weather.csv")
    frame["date"] = pd.to_datetime(frame["date"], format="%Y/%m/%d").dt.tz_localize("UTC")
    return frame


def write_months(out: Path, until: str | None = None, since: str | None = None) -> list[Path]:
    """Write each month up to ``until`` (YYYY-MM, inclusive) not yet in ``out``."""
    frame = seattle_weather()
    months = frame["date"].dt.strftime("%Y-%m")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for month, rows in frame.groupby(months, sort=True):
        if (until and month > until) or (since and month < since):
            continue
        path = out / f"{month}.parquet"
        if path.exists():
            continue
        tmp = out / f".{month}.parquet.tmp"
        rows.to_parquet(tmp, index=False)
        os.replace(tmp, path)  # readers see whole months only
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--until", help="last month to write, YYYY-MM (default: all, to 2015-12)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data" / "labels")
    args = parser.parse_args()
    written = write_months(args.out, args.until)
    print(f"{len(written)} month(s) written to {args.out}")


if __name__ == "__main__":
    main()
