"""drift_report's input handling without Ray: typed errors for bad input, the one-pass row
sample, and the domain classifier on awkward columns (nullable strings, 4,000 categories)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raymlops.exceptions import ValidationError
from raymlops.monitoring.drift import RowSample, domain_classifier_auc, drift_report


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"temp": rng.normal(40, 8, 1500), "origin": rng.choice(["EWR", "JFK"], 1500)})


@pytest.mark.parametrize("make_current, match", [
    (lambda f: f.iloc[:0], "current data .* has no rows"),
    (lambda f: f.drop(columns="origin"), r"lacks columns \['origin'\]"),
    (lambda f: f.assign(temp=f["temp"].astype(str)), "differ in kind"),
    (lambda f: f.assign(origin=None), r"\['origin'\] have no non-null values in the current"),
])
def test_bad_current_data_gets_a_typed_error_naming_it(frame, make_current, match) -> None:
    with pytest.raises(ValidationError, match=match):
        drift_report(frame, make_current(frame), domain_classifier=False)


def test_bad_arguments_and_paths(frame, tmp_path) -> None:
    with pytest.raises(ValidationError, match="unknown drift test"):
        drift_report(frame, frame, test="t-test")
    with pytest.raises(ValidationError, match="lacks columns"):
        drift_report(frame, frame, columns=["temp", "nope"])
    with pytest.raises(ValidationError, match="does not exist"):
        drift_report(tmp_path / "missing.parquet", frame)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match="holds no parquet files"):
        drift_report(tmp_path / "empty", frame)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(ValidationError, match="not readable"):
        drift_report(tmp_path / "junk.parquet", frame)


def test_row_sample_merges_to_a_uniform_sample_of_all_rows() -> None:
    """Bottom-k over whole rows: merged from 10 blocks, rows stay intact (x and 2x together)
    and the sample is uniform over the blocks (mean close to the population's)."""
    rng = np.random.default_rng(1)
    means = []
    for _ in range(20):
        data = pd.DataFrame({"x": np.arange(100_000.0)}).assign(y=lambda d: 2 * d["x"])
        parts = [RowSample.of(data.iloc[i: i + 10_000], 500, rng) for i in range(0, 100_000, 10_000)]
        merged = parts[0]
        for part in parts[1:]:
            merged = merged.merge(part, 500)
        assert len(merged.frame) == 500 and merged.frame["x"].is_unique
        assert (merged.frame["y"] == 2 * merged.frame["x"]).all()
        means.append(merged.frame["x"].mean())
    assert abs(np.mean(means) - 49_999.5) < 3 * 28_867 / np.sqrt(500 * 20)


def test_domain_classifier_handles_nullable_and_high_cardinality_categories() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    tails = np.array([f"N{i:04d}" for i in range(4000)])

    def side(shift: float) -> pd.DataFrame:
        origin = pd.array(rng.choice(["EWR", "JFK", None], n), dtype="string")  # pd.NA nulls
        return pd.DataFrame({"temp": rng.normal(40 + shift, 8, n), "origin": origin,
                             "tailnum": rng.choice(tails, n)})

    ref, same, summer = side(0), side(0), side(40)
    columns = ["temp", "origin", "tailnum"]
    assert 0.4 < domain_classifier_auc(ref, same, columns) < 0.6
    assert domain_classifier_auc(ref, summer, columns) > 0.95


def test_same_data_gives_the_same_report_every_time() -> None:
    """Samples are seeded by block identity: a sketched report is reproducible."""
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.lognormal(size=60_000)})  # above the 20,000-value sample
    cur = pd.DataFrame({"x": rng.lognormal(0.02, 1, 60_000)})
    first, second = (drift_report(ref, cur, test="ks", domain_classifier=False) for _ in range(2))
    assert not first["columns"]["x"]["exact"]
    assert first["columns"]["x"] == second["columns"]["x"]
