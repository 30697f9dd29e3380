"""Drift statistics: exactness against scipy, mergeable summaries, the sketch's error bound."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from raymlops.exceptions import ValidationError
from raymlops.monitoring.drift_tests import DriftThresholds, column_drift, dataset_drift
from raymlops.monitoring.summaries import CategoricalSummary, NumericSummary, dkw_epsilon


def _merged(values: np.ndarray, blocks: int, k: int, seed: int = 0) -> NumericSummary:
    rng = np.random.default_rng(seed)
    parts = [NumericSummary.of(p, k=k, rng=rng) for p in np.array_split(values, blocks)]
    out = parts[0]
    for part in parts[1:]:
        out = out.merge(part)
    return out


def test_ks_equals_scipy_exactly_when_summaries_hold_everything() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 3000), rng.normal(0.1, 1.1, 2500)
    ref, cur = _merged(a, 7, k=10_000), _merged(b, 5, k=10_000)
    assert ref.exact and cur.exact
    got = column_drift(ref, cur, test="ks")
    want = stats.ks_2samp(a, b)
    assert abs(got.statistic - want.statistic) <= 1e-9
    assert abs(got.p_value - want.pvalue) <= 1e-9
    assert got.exact and got.error_bound == 0.0


def test_merge_is_order_independent_and_counts_nulls() -> None:
    values = np.r_[np.arange(100.0), [np.nan] * 7]
    one = _merged(values, 1, k=1000)
    many = _merged(values[::-1], 9, k=1000)
    assert (one.count, one.nulls, one.minimum, one.maximum) == (many.count, many.nulls, 0.0, 99.0)
    assert sorted(one.values) == sorted(many.values)
    assert many.null_rate == pytest.approx(7 / 107)


@pytest.mark.parametrize("seed", range(5))
def test_sketched_ks_stays_within_the_documented_bound(seed: int) -> None:
    """200k vs 200k values through 2,000-value samples: |KS_sketch - KS_exact| <= eps."""
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0, 1, 200_000)
    b = rng.lognormal(0.05, 1, 200_000)
    ref, cur = _merged(a, 16, k=2000, seed=seed), _merged(b, 16, k=2000, seed=seed + 100)
    assert not ref.exact and len(ref.values) == 2000
    got = column_drift(ref, cur, test="ks")
    exact = stats.ks_2samp(a, b).statistic
    assert got.error_bound == pytest.approx(2 * dkw_epsilon(2000))
    assert abs(got.statistic - exact) <= got.error_bound


def test_bottom_k_sample_is_uniform() -> None:
    """Merged bottom-k samples are uniform: the sample mean of 0..N-1 is close to (N-1)/2."""
    values = np.arange(100_000, dtype=float)
    means = [_merged(values, 10, k=1000, seed=s).values.mean() for s in range(20)]
    assert abs(np.mean(means) - 49_999.5) < 3 * 28_867 / np.sqrt(1000 * 20)


def test_auto_picks_tests_like_evidently() -> None:
    rng = np.random.default_rng(2)
    small_ref, small_cur = NumericSummary.of(rng.normal(size=500)), NumericSummary.of(rng.normal(size=500))
    assert column_drift(small_ref, small_cur).test == "ks"
    big_ref, big_cur = NumericSummary.of(rng.normal(size=5000)), NumericSummary.of(rng.normal(3, 1, 5000))
    big = column_drift(big_ref, big_cur)
    assert big.test == "wasserstein" and big.drift and big.statistic == pytest.approx(3, rel=0.1)
    cats = CategoricalSummary.of(["a", "b"] * 100)
    assert column_drift(cats, cats).test == "chisquare"
    many = CategoricalSummary.of(["a", "b", "c"] * 1000)
    assert column_drift(many, many).test == "jensenshannon" and not column_drift(many, many).drift


def test_categorical_tests_detect_a_shift() -> None:
    ref = CategoricalSummary.of(["EWR"] * 500 + ["JFK"] * 300 + ["LGA"] * 200)
    cur = CategoricalSummary.of(["EWR"] * 200 + ["JFK"] * 300 + ["LGA"] * 500 + [None] * 10)
    chi = column_drift(ref, cur, test="chisquare")
    want = stats.chi2_contingency([[500, 300, 200], [200, 300, 500]])
    assert chi.statistic == pytest.approx(want[0]) and chi.p_value == pytest.approx(want[1])
    assert chi.drift
    assert column_drift(ref, cur, test="psi").drift
    js = column_drift(ref, cur, test="jensenshannon")
    assert 0.1 < js.statistic < 1 and js.drift
    assert cur.null_rate == pytest.approx(10 / 1010)
    same = column_drift(ref, ref, test="psi")
    assert same.statistic == pytest.approx(0.0) and not same.drift


def test_numeric_psi_and_js_grow_with_the_shift() -> None:
    rng = np.random.default_rng(3)
    ref = NumericSummary.of(rng.normal(size=5000))
    small = NumericSummary.of(rng.normal(0.05, 1, 5000))
    large = NumericSummary.of(rng.normal(1.0, 1, 5000))
    for test in ("psi", "jensenshannon"):
        lo, hi = column_drift(ref, small, test=test), column_drift(ref, large, test=test)
        assert lo.statistic < hi.statistic and hi.drift and not lo.drift


def test_dataset_level_share_and_verdict() -> None:
    rng = np.random.default_rng(4)
    ref = {c: NumericSummary.of(rng.normal(size=3000)) for c in "abcd"}
    cur = {c: NumericSummary.of(rng.normal(2 if c in "ab" else 0, 1, 3000)) for c in "abcd"}
    report = dataset_drift({c: column_drift(ref[c], cur[c]) for c in "abcd"})
    assert report["share_drifted"] == 0.5 and report["dataset_drift"] is True
    assert report["drifted_columns"] == ["a", "b"]
    assert set(report["columns"]["a"]) >= {"test", "statistic", "p_value", "drift"}
    strict = dataset_drift({c: column_drift(ref[c], cur[c]) for c in "abcd"},
                           DriftThresholds(dataset_share=0.75))
    assert strict["dataset_drift"] is False


def test_bad_input_is_typed() -> None:
    num, cat = NumericSummary.of([1.0, 2.0]), CategoricalSummary.of(["a"])
    with pytest.raises(ValidationError):
        column_drift(num, cat)
    with pytest.raises(ValidationError, match="no non-null"):
        column_drift(NumericSummary.of([np.nan]), num)
    with pytest.raises(ValidationError, match="unknown numeric"):
        column_drift(num, num, test="t-test")


def test_dkw_bound_covers_merged_samples_of_time_ordered_data_and_catches_a_biased_one() -> None:
    """The documented per-side bound: sup |ECDF(sample) - ECDF(column)| <= dkw_epsilon(n,
    alpha) with probability >= 1 - alpha. Checked over 200 columns with a trend (files are
    often time-ordered) split into 10 blocks; a head-of-file sample breaks it every time."""
    alpha, k, trials = 0.1, 1000, 200
    eps = dkw_epsilon(k, alpha)
    exceed = exceed_head = 0
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        column = np.linspace(0, 5, 50_000) + rng.normal(size=50_000)  # drifts within the file
        merged = _merged(column, 10, k=k, seed=seed)
        assert len(merged.values) == k and not merged.exact
        full = np.sort(column)
        for sample, is_head in ((np.sort(merged.values), False), (np.sort(column[:k]), True)):
            grid = np.concatenate([full, sample])
            gap = np.max(np.abs(np.searchsorted(full, grid, side="right") / len(full)
                                - np.searchsorted(sample, grid, side="right") / len(sample)))
            if gap > eps:
                exceed_head += is_head
                exceed += not is_head
    assert exceed <= alpha * trials * 1.5  # expected <= 20 of 200; DKW is conservative
    assert exceed_head == trials


def test_jensen_shannon_uses_natural_logs_like_evidently() -> None:
    """Evidently's threshold (0.1) is for scipy's default base e; same value as scipy here."""
    from scipy.spatial.distance import jensenshannon

    ref = CategoricalSummary.of(["a"] * 600 + ["b"] * 400)
    cur = CategoricalSummary.of(["a"] * 480 + ["b"] * 520)
    got = column_drift(ref, cur, test="jensenshannon")
    assert got.statistic == pytest.approx(jensenshannon([0.6, 0.4], [0.48, 0.52]))
    assert got.statistic == pytest.approx(0.0849, abs=1e-3) and not got.drift  # base 2: 0.102
