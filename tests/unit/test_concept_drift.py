"""Concept drift: performance per month against the training baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from raymlops.exceptions import ValidationError
from raymlops.monitoring.concept import concept_drift, performance_by_window


@pytest.fixture
def scored() -> pd.DataFrame:
    """A score that predicts the label well in Jan-Mar and is noise from April on."""
    rng = np.random.default_rng(0)
    n = 6000
    ts = pd.Timestamp("2013-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 180 * 24, n), unit="h")
    x = rng.normal(size=n)
    late = np.asarray(ts.month >= 4)
    y = np.where(late, rng.random(n) < 0.3, x + rng.normal(0, 0.5, n) > 0.5).astype(int)
    score = 1 / (1 + np.exp(-2 * x))
    return pd.DataFrame({"ts": ts, "label": y, "score": score})


def test_windows_match_sklearn(scored: pd.DataFrame) -> None:
    windows = performance_by_window(scored, timestamp="ts", label="label", score="score")
    assert list(windows["window"]) == ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05", "2013-06"]
    jan = scored[scored["ts"].dt.month == 1]
    assert windows.loc[0, "roc_auc"] == pytest.approx(roc_auc_score(jan["label"], jan["score"]))
    assert windows["rows"].sum() == len(scored)


def test_drop_after_the_concept_changes_is_flagged(scored: pd.DataFrame) -> None:
    windows = performance_by_window(scored, timestamp="ts", label="label", score="score")
    baseline = float(windows.loc[:2, "roc_auc"].mean())
    result = concept_drift(windows, baseline, tolerance=0.05)
    assert result["drifted_windows"] == ["2013-04", "2013-05", "2013-06"]
    brier = concept_drift(windows, float(windows.loc[:2, "brier"].mean()), metric="brier", tolerance=0.02)
    assert "2013-01" not in brier["drifted_windows"]


def test_bad_input(scored: pd.DataFrame) -> None:
    with pytest.raises(ValidationError, match="missing"):
        performance_by_window(scored, timestamp="when", label="label", score="score")
    with pytest.raises(ValidationError, match="unknown metric"):
        concept_drift(pd.DataFrame(), 0.7, metric="accuracy")
    one_class = scored.assign(label=0)
    w = performance_by_window(one_class, timestamp="ts", label="label", score="score")
    assert w["roc_auc"].isna().all() and concept_drift(w, 0.7)["drifted_windows"] == []
