"""SearchConfig per task: defaults the task implies, typed errors for a metric or family
that does not fit it, and the search's ranking in the metric's direction (no Ray)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from raymlops.exceptions import ValidationError
from raymlops.training import automl
from raymlops.training.automl import SearchConfig, SearchResult
from raymlops.training.families import TrainData


def test_defaults_follow_the_task() -> None:
    binary = SearchConfig(name="m")
    assert (binary.task, binary.metric, binary.families) == ("binary", "roc_auc", ["logreg", "hgb", "rf", "mlp"])
    multi = SearchConfig(name="m", task="multiclass")
    assert multi.metric == "log_loss" and multi.search_metric == "log_loss"
    regression = SearchConfig(name="m", task="regression", families=[])  # empty: every family of the task
    assert regression.metric == "rmse" and regression.search_families == ["ridge", "hgb", "rf", "mlp"]
    chosen = SearchConfig(name="m", task="regression", metric="mae", families=["hgb"])
    assert (chosen.metric, chosen.families) == ("mae", ["hgb"])
    for config in (binary, multi, regression, chosen):
        config.check()
    dumped = SearchConfig.model_validate(multi.model_dump()).model_dump()
    assert dumped == multi.model_dump()  # the parent run's params say what was searched


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"task": "multiclass", "metric": "f1"}, "metric", "f1_macro"),
    ({"task": "regression", "metric": "roc_auc"}, "metric", "rmse"),
    ({"metric": "auc"}, "metric", "unknown metric"),
    ({"task": "regression", "families": ["logreg", "hgb"]}, "families", r"\['logreg'\] do not learn a regression"),
    ({"task": "binary", "families": ["ridge"]}, "families", "logreg"),
    ({"families": ["xgb", "hgb"]}, "families", r"unknown model families \['xgb'\]"),
])
def test_check_names_what_does_not_fit_the_task(kwargs, field, message) -> None:
    config = SearchConfig(name="m", **kwargs)  # building never fails: check() explains
    with pytest.raises(ValidationError, match=message) as info:
        config.check()
    assert info.value.context["field"] == field and info.value.http_status == 422


def test_a_search_refuses_data_labelled_for_another_task() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    data = TrainData(frame, np.array([0, 1]), frame, np.array([0, 1]), ["a"], [])  # binary by default
    with pytest.raises(ValidationError, match="task='regression'"):
        automl._check_task(SearchConfig(name="m", task="regression"), data)


def test_the_result_names_its_metric() -> None:
    result = SearchResult(name="m", best_config={}, metric="log_loss", best_metric=0.4, parent_run_id="p",
                          best_run_id=None, trials=1, stopped_early=0, wall_s=1.0, path="/x")
    assert result.to_dict()["metric"] == "log_loss"


@dataclass
class _Result:  # what _finish reads of Tune's Result
    metrics: dict[str, Any]


def test_the_best_result_is_taken_in_the_metrics_direction() -> None:
    results = [_Result({"log_loss": 0.9, "roc_auc": 0.9}), _Result({"log_loss": 0.5, "roc_auc": 0.6}),
               _Result({"log_loss": float("nan")}), _Result({"log_loss": 0.5, "roc_auc": 0.7})]
    assert automl._best_result(results, "log_loss") is results[1]  # lowest; the first of equals
    assert automl._best_result(results, "roc_auc") is results[0]
    assert automl._best_result([_Result({}), _Result({"r2": 0.1})], "r2").metrics == {"r2": 0.1}


@dataclass
class _Trial:
    trial_id: str
    loss: float
    status: str = "TERMINATED"
    config: dict[str, Any] = field(default_factory=lambda: {"family": "hgb"})

    @property
    def last_result(self) -> dict[str, float]:
        return {"log_loss": self.loss, "roc_auc": 1 - self.loss}

    @property
    def checkpoint(self) -> str:
        return f"ckpt-{self.trial_id}"


def test_the_trial_writer_tracks_the_best_trial_by_the_searchs_metric(monkeypatch) -> None:
    monkeypatch.setattr(automl._MlflowTrials, "_log", lambda self, trial: self.runs.update({trial.trial_id: "r"}))
    writer = automl._MlflowTrials(None, "exp", lambda: "parent", None, None, {}, metric="log_loss")
    try:
        for trial in (_Trial("t1", 0.6), _Trial("t2", 0.4), _Trial("t3", 0.5), _Trial("t4", float("nan"))):
            writer.log(trial)
        assert writer._best is not None and writer._best.trial_id == "t2"
        writer.drain()
    finally:
        writer.close()
