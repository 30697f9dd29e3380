"""The series a drift result becomes (no Ray here; the integration test reads them back)."""

from __future__ import annotations

import math

import pytest

from raymlops.exceptions import ValidationError
from raymlops.monitoring.drift_metrics import (
    GAUGES,
    drift_gauge_values,
    export_drift_metrics,
)
from raymlops.monitoring.drift_publish import default_dataset_name

RESULT = {
    "dataset_drift": True, "share_drifted": 0.5, "domain_classifier_auc": 0.97,
    "columns": {
        "temp": {"test": "wasserstein", "statistic": 4.3, "p_value": None, "drift": True},
        "origin": {"test": "chisquare", "statistic": math.nan, "p_value": None, "drift": False},
    },
}


def _by(values):
    return {(v.gauge, v.tags): v.value for v in values}


def test_every_series_of_a_result_with_its_tags() -> None:
    got = _by(drift_gauge_values(RESULT, "weather"))
    ds = (("dataset", "weather"),)
    assert got == {
        ("raymlops_drift_share_drifted", ds): 0.5,
        ("raymlops_dataset_drift", ds): 1.0,
        ("raymlops_drift_domain_classifier_auc", ds): 0.97,
        ("raymlops_drift_score", (("column", "temp"), *ds)): 4.3,
        ("raymlops_drift_column_drift", (("column", "temp"), *ds)): 1.0,
        # a NaN statistic is left out (an alert on NaN never fires); its verdict is kept
        ("raymlops_drift_column_drift", (("column", "origin"), *ds)): 0.0,
    }


def test_series_match_their_gauge_specs() -> None:
    for value in drift_gauge_values(RESULT, "weather"):
        spec = GAUGES[value.gauge]
        assert tuple(k for k, _ in value.tags) == spec.tag_keys
        assert spec.name.startswith("raymlops_")


def test_no_dataset_verdict_without_auc_is_zero_and_absent() -> None:
    calm = {**RESULT, "dataset_drift": False, "domain_classifier_auc": None}
    got = _by(drift_gauge_values(calm, "w"))
    assert got[("raymlops_dataset_drift", (("dataset", "w"),))] == 0.0
    assert not any(g == "raymlops_drift_domain_classifier_auc" for g, _ in got)


@pytest.mark.parametrize("dataset, result", [("", RESULT), ("  ", RESULT), ("w", {"x": 1}),
                                             ("w", [])])
def test_bad_input_is_typed(dataset, result) -> None:
    with pytest.raises(ValidationError):
        drift_gauge_values(result, dataset)


def test_outside_a_ray_driver_nothing_is_exported() -> None:
    assert export_drift_metrics(RESULT, "weather") is False  # unit tests: ray not initialized


@pytest.mark.parametrize("path, name", [("/d/jul.parquet", "jul"), ("/d/jul/", "jul"),
                                        ("x/2013-07.csv", "2013-07"), ("/d/v1.2", "v1.2")])
def test_default_dataset_name(path, name) -> None:
    assert default_dataset_name(path) == name
