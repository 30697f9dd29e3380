"""Every ``raymlops_*`` metric the code defines is in the README's table, and every name in
the table is defined in the code (a metric renamed in one place fails here)."""

from __future__ import annotations

import re

import pytest

from raymlops import metrics
from raymlops.exceptions import ValidationError
from tests.conftest import REPO

# A metric is defined where its name is the first argument of a Counter/Gauge/Histogram or a
# MetricSpec/GaugeSpec: a string literal right after the opening parenthesis.
_DEFINED = re.compile(r"""(?:Counter|Gauge|Histogram|MetricSpec|GaugeSpec)\(\s*["'](raymlops_\w+)["']""")


def defined_in_source() -> dict[str, set[str]]:
    """Metric name -> tag keys, from the source files (not the registry objects: a metric made
    directly with ray.util.metrics somewhere must be documented too)."""
    names: dict[str, set[str]] = {}
    for path in (REPO / "raymlops").rglob("*.py"):
        text = path.read_text()
        for match in _DEFINED.finditer(text):
            window = text[match.end():match.end() + 600]
            tags = re.search(r"\(((?:\s*\"\w+\",?\s*)+)\)", window)
            names[match.group(1)] = set(re.findall(r'"(\w+)"', tags.group(1))) if tags else set()
    return names


def readme_table() -> dict[str, set[str]]:
    text = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| `(raymlops_\w+)` \| (\w+) \| ([^|]*) \|", text, flags=re.MULTILINE)
    return {name: {t.strip() for t in tags.split(",") if t.strip()} for name, _, tags in rows}


def test_every_defined_metric_is_documented_with_its_tags_and_vice_versa() -> None:
    code, docs = defined_in_source(), readme_table()
    assert len(code) >= 19 and len(docs) >= 19
    assert sorted(set(code) - set(docs)) == [], "defined but not in README's metrics table"
    assert sorted(set(docs) - set(code)) == [], "in README's table but defined nowhere"
    assert {n: t for n, t in code.items() if t != docs[n]} == {}, "tags differ from README"


def test_catalog_parser_sees_every_declared_metric() -> None:
    """The regex must find the METRICS entries (else the README check above proves nothing)."""
    code = defined_in_source()
    for name, spec in metrics.METRICS.items():
        assert code[name] == set(spec.tag_keys)


def test_record_checks_name_and_tags_and_is_a_noop_outside_ray() -> None:
    assert metrics.record("raymlops_promotions_total", 1, model="m") is False
    with pytest.raises(ValidationError, match="unknown metric"):
        metrics.record("raymlops_nope_total", 1, model="m")
    with pytest.raises(ValidationError, match="takes tags"):
        metrics.record("raymlops_promotions_total", 1, model="m", extra="x")
    assert metrics.publish([("raymlops_rollbacks_total", 1, {"model": "m"})]) is False
    with pytest.raises(ValidationError):
        metrics.publish([("raymlops_rollbacks_total", 1, {"name": "m"})])


def test_staleness_is_wall_time_since_the_newest_event_per_view() -> None:
    from raymlops.features.freshness import FreshnessTracker, view_of

    tracker = FreshnessTracker(lambda: [("weather__v1", 1_000_000)], interval_s=3600)
    tracker.written("planes__v2", [5_000_000, 9_000_000, 7_000_000])
    tracker.written("planes__v2", [8_000_000])  # older than what is there: ignored
    tracker.written("planes__v2", [])
    import time

    deadline = time.monotonic() + 10
    while "weather" not in tracker.staleness_s(now=100.0) and time.monotonic() < deadline:
        time.sleep(0.01)  # the seed runs on the tracker's thread
    assert tracker.staleness_s(now=100.0) == {"planes": 91.0, "weather": 99.0}
    assert view_of("a__b__v12") == "a__b" and view_of("plain") == "plain"
