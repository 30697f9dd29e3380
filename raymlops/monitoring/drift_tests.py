"""Per-column drift tests on merged summaries, and the dataset-level verdict.

Numeric: two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``; exact when the summaries
hold every value), Wasserstein distance normed by the reference's standard deviation, PSI on
reference-quantile bins, Jensen-Shannon distance on those bins. Categorical: chi-square test
of homogeneity, PSI and Jensen-Shannon on category shares.

``auto`` follows Evidently's defaults: up to 1,000 reference rows a statistical test (KS for
numbers, chi-square for categories, drift when p < 0.05); above that a distance (normed
Wasserstein for numbers, Jensen-Shannon for categories, drift when >= 0.1), because with
large samples every test rejects on differences nobody cares about. All thresholds are
configurable. The dataset drifts when the share of drifted columns reaches 0.5.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from raymlops.exceptions import ValidationError
from raymlops.monitoring.summaries import CategoricalSummary, NumericSummary

__all__ = ["ColumnDrift", "DriftThresholds", "column_drift", "dataset_drift"]

NUMERIC_TESTS = ("ks", "wasserstein", "psi", "jensenshannon")
CATEGORICAL_TESTS = ("chisquare", "psi", "jensenshannon")
_EPS = 1e-4


@dataclass(frozen=True)
class DriftThresholds:
    p_value: float = 0.05  # KS and chi-square: drift when p < this
    wasserstein: float = 0.1  # normed by the reference std
    jensenshannon: float = 0.1
    psi: float = 0.2
    auto_max_rows_for_tests: int = 1000
    dataset_share: float = 0.5


@dataclass(frozen=True)
class ColumnDrift:
    test: str
    statistic: float
    p_value: float | None
    drift: bool
    threshold: float
    exact: bool
    error_bound: float = 0.0  # max |statistic - exact statistic| (KS on samples), w.p. 1-alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bin_shares(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # constant reference: one bin for it, one for anything else
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    r = np.histogram(ref, edges)[0].astype(float)
    c = np.histogram(cur, edges)[0].astype(float)
    return r / max(r.sum(), 1), c / max(c.sum(), 1)


def _psi(r: np.ndarray, c: np.ndarray) -> float:
    r, c = np.clip(r, _EPS, None), np.clip(c, _EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _js(r: np.ndarray, c: np.ndarray) -> float:
    """Jensen-Shannon distance with natural logs (scipy's and Evidently's default, range
    0..sqrt(ln 2) ~ 0.83): the 0.1 threshold is Evidently's and assumes this base; base 2
    would read every distance 1.2x larger and flag columns Evidently leaves alone."""
    value = jensenshannon(r, c)
    return 0.0 if not math.isfinite(value) else float(value)


def _numeric(ref: NumericSummary, cur: NumericSummary, test: str, t: DriftThresholds) -> ColumnDrift:
    a, b = ref.values, cur.values
    exact = ref.exact and cur.exact
    if test == "ks":
        result = stats.ks_2samp(a, b)
        bound = ref.cdf_error + cur.cdf_error
        return ColumnDrift("ks", float(result.statistic), float(result.pvalue),
                           bool(result.pvalue < t.p_value), t.p_value, exact, bound)
    if test == "wasserstein":
        scale = float(np.std(a)) or 1.0
        value = float(stats.wasserstein_distance(a, b)) / scale
        return ColumnDrift("wasserstein", value, None, value >= t.wasserstein, t.wasserstein, exact)
    r, c = _bin_shares(a, b)
    if test == "psi":
        value = _psi(r, c)
        return ColumnDrift("psi", value, None, value >= t.psi, t.psi, exact)
    if test == "jensenshannon":
        value = _js(r, c)
        return ColumnDrift("jensenshannon", value, None, value >= t.jensenshannon, t.jensenshannon, exact)
    raise ValidationError(f"unknown numeric drift test {test!r}; use one of {NUMERIC_TESTS}", field="test")


def _categorical(ref: CategoricalSummary, cur: CategoricalSummary, test: str, t: DriftThresholds) -> ColumnDrift:
    categories = sorted(set(ref.counts) | set(cur.counts))
    r = np.array([ref.counts.get(k, 0) for k in categories], dtype=float)
    c = np.array([cur.counts.get(k, 0) for k in categories], dtype=float)
    if test == "chisquare":
        if len(categories) < 2:
            return ColumnDrift("chisquare", 0.0, 1.0, False, t.p_value, True)
        statistic, p_value, _, _ = stats.chi2_contingency(np.vstack([r, c]) + 0.0)
        return ColumnDrift("chisquare", float(statistic), float(p_value),
                           bool(p_value < t.p_value), t.p_value, True)
    rs, cs = r / max(r.sum(), 1), c / max(c.sum(), 1)
    if test == "psi":
        value = _psi(rs, cs)
        return ColumnDrift("psi", value, None, value >= t.psi, t.psi, True)
    if test == "jensenshannon":
        value = _js(rs, cs)
        return ColumnDrift("jensenshannon", value, None, value >= t.jensenshannon, t.jensenshannon, True)
    raise ValidationError(f"unknown categorical drift test {test!r}; use one of {CATEGORICAL_TESTS}",
                          field="test")


def column_drift(
    ref: NumericSummary | CategoricalSummary,
    cur: NumericSummary | CategoricalSummary,
    test: str = "auto",
    thresholds: DriftThresholds | None = None,
) -> ColumnDrift:
    t = thresholds or DriftThresholds()
    if type(ref) is not type(cur):
        raise ValidationError("reference and current summaries of a column differ in kind", field="column")
    if ref.count == 0 or cur.count == 0:
        raise ValidationError("a column has no non-null values on one side; drift is undefined",
                              field="column")
    numeric = isinstance(ref, NumericSummary)
    if test == "auto":
        small = ref.count <= t.auto_max_rows_for_tests
        test = ("ks" if small else "wasserstein") if numeric else ("chisquare" if small else "jensenshannon")
    return _numeric(ref, cur, test, t) if numeric else _categorical(ref, cur, test, t)  # type: ignore[arg-type]


def dataset_drift(columns: dict[str, ColumnDrift], thresholds: DriftThresholds | None = None) -> dict[str, Any]:
    """The report's top level: ``{"dataset_drift", "share_drifted", "columns": {...}}``."""
    t = thresholds or DriftThresholds()
    drifted = sum(1 for c in columns.values() if c.drift)
    share = drifted / len(columns) if columns else 0.0
    return {
        "dataset_drift": bool(columns) and share >= t.dataset_share,
        "share_drifted": share,
        "drifted_columns": sorted(n for n, c in columns.items() if c.drift),
        "columns": {name: c.to_dict() for name, c in columns.items()},
    }
