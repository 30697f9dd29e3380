"""Model families: each trains in steps, resumes from a saved step, and stores safely."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from raymlops.exceptions import ValidationError
from raymlops.registry.formats import deserialize, serialize
from raymlops.training.families import FAMILIES, TrainData, max_steps, suggest, train_steps, validation_auc

PARAMS = {
    "logreg": {"C": 1.0},
    "hgb": {"learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 20, "l2_regularization": 0.1},
    "rf": {"max_depth": 6, "min_samples_leaf": 5, "max_features": "sqrt"},
    "mlp": {"hidden": 16, "layers": 2, "lr": 1e-2, "dropout": 0.0},
}


@pytest.fixture(scope="module")
def data() -> TrainData:
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame({"carrier": rng.choice(["AA", "UA", "DL"], n).astype(object),
                      "a": rng.normal(size=n), "b": rng.normal(size=n)})
    X.loc[::7, "a"] = np.nan  # missing values must not break any family
    signal = X["a"].fillna(0) + (X["carrier"] == "UA") + rng.normal(scale=0.5, size=n)
    y = (signal > 0.5).astype(np.int64).to_numpy()
    return TrainData(X[:2000], y[:2000], X[2000:], y[2000:], ["a", "b"], ["carrier"])


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_learns_in_steps_and_round_trips_through_the_safe_formats(family, data) -> None:
    steps = list(train_steps(family, PARAMS[family], data, 3))
    assert [s for s, _, _ in steps] == list(range(1, max_steps(family, 3) + 1))
    model = steps[-1][1]
    auc = validation_auc(model, family, data)
    assert auc > 0.75  # the signal is strong; chance is 0.5
    blob, meta = serialize(model, task="classification")
    assert meta.format in ("skops", "torch_state_dict")
    again = deserialize(blob, meta)
    assert validation_auc(again, family, data) == pytest.approx(auc, abs=1e-9)


@pytest.mark.parametrize("family", ["hgb", "rf", "mlp"])
def test_resuming_from_a_saved_step_continues_instead_of_restarting(family, data) -> None:
    first = list(train_steps(family, PARAMS[family], data, 2))
    saved = first[0][1]
    blob, meta = serialize(saved, task="classification")
    resumed = list(train_steps(family, PARAMS[family], data, 2, start_model=deserialize(blob, meta), start_step=1))
    assert [s for s, _, _ in resumed] == [2]
    model = resumed[0][1]
    if family == "hgb":
        assert model[-1].n_iter_ == 50
    elif family == "rf":
        assert len(model[-1].estimators_) == 50


def test_the_space_only_holds_the_chosen_familys_parameters() -> None:
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    seen = {}
    for _ in range(30):
        trial = study.ask()
        suggest(trial, list(FAMILIES))
        seen.setdefault(trial.params["family"], set()).add(frozenset(trial.params))
        study.tell(trial, 0.5)
    assert set(seen) == set(FAMILIES)
    for family, keys in seen.items():
        assert keys == {frozenset({"family", *PARAMS[family]})}


def test_unknown_family_is_a_typed_error(data) -> None:
    with pytest.raises(ValidationError, match="xgb"):
        list(train_steps("xgb", {}, data, 1))
