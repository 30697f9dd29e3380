"""Periods of arriving labels: which period a row belongs to, and which periods are over.

Labels arrive in periods (an hour, a day, a week, a month...), cut in the spec's time zone: a
flight departing at 23:59 New York time on February 28th belongs to February even though it
is March 1st in UTC. A period is named by pandas' ``Period`` string in that zone (``2013-02``
for a month, ``2013-02-28`` for a day, ``2013-02-25/2013-03-03`` for a week), so names sort
in time order and parse back (:func:`parse_period`).

A period is *closed* when its end (plus ``grace`` periods for late labels) has passed: either
by the wall clock, or because the label source already holds rows of a later period (data
that arrives in order, such as a replay of past years, closes a period by moving on).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from raymlops.exceptions import ValidationError

__all__ = ["FREQ", "closed_periods", "parse_period", "period_bounds", "period_index", "periods_between"]

FREQ = {"hour": "h", "day": "D", "week": "W-SUN", "month": "M", "quarter": "Q-DEC", "year": "Y-DEC"}


def period_index(timestamps: pd.Series, unit: str, timezone: str) -> pd.PeriodIndex:
    """The period of each (timezone-aware) timestamp, in ``timezone``."""
    local = pd.DatetimeIndex(timestamps).tz_convert(timezone).tz_localize(None)
    return local.to_period(FREQ[unit])


def parse_period(name: str | pd.Period, unit: str) -> pd.Period:
    """A period from its name (``2013-02``), checked against the unit."""
    if isinstance(name, pd.Period):
        return name
    text = str(name).split("/")[0]  # a week's name is "start/end"
    try:
        return pd.Period(text, freq=FREQ[unit])
    except (ValueError, TypeError):
        raise ValidationError(f"{name!r} is not a {unit} period (e.g. {example_name(unit)})",
                              field="period") from None


def example_name(unit: str) -> str:
    return str(pd.Period("2013-02-28 05:00", freq=FREQ[unit]))


def period_bounds(period: pd.Period, timezone: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of ``period`` as UTC instants."""
    start = period.start_time.tz_localize(timezone, ambiguous=False, nonexistent="shift_forward")
    end = (period + 1).start_time.tz_localize(timezone, ambiguous=False, nonexistent="shift_forward")
    return start.tz_convert("UTC"), end.tz_convert("UTC")


def periods_between(first: pd.Period, last: pd.Period) -> list[pd.Period]:
    """Every period from ``first`` to ``last`` inclusive (empty ones too)."""
    if last < first:
        return []
    return list(pd.period_range(first, last, freq=first.freq))


def closed_periods(present: Iterable[pd.Period], newest_row: pd.Timestamp | None, timezone: str,
                   *, now: pd.Timestamp | None = None, grace: int = 0) -> list[pd.Period]:
    """The periods of ``present`` that are over, in time order.

    Over means: ``grace`` periods after its end have passed on the wall clock (``now``), or
    the source already holds a row (``newest_row``) at or after that point.
    """
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    out = []
    for period in sorted(set(present)):
        _, end = period_bounds(period + grace, timezone)
        if now >= end or (newest_row is not None and newest_row >= end):
            out.append(period)
    return out
