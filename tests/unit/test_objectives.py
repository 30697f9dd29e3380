"""Tasks and metrics: directions, which metric judges which task, comparisons, scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression

from raymlops.exceptions import ValidationError
from raymlops.training import objectives as ob


def test_every_metric_has_a_direction_and_every_task_a_valid_default() -> None:
    assert ob.TASKS == ("binary", "multiclass", "regression")
    assert {m: ob.direction(m) for m in ob.METRICS} == {
        "roc_auc": "max", "pr_auc": "max", "log_loss": "min", "accuracy": "max", "f1": "max",
        "f1_macro": "max", "brier": "min", "rmse": "min", "mae": "min", "r2": "max"}
    assert [ob.default_metric(t) for t in ob.TASKS] == ["roc_auc", "log_loss", "rmse"]
    for task in ob.TASKS:
        assert ob.check_metric(task, ob.default_metric(task)) == ob.default_metric(task)
    assert ob.metrics_for("binary") == ["roc_auc", "pr_auc", "log_loss", "accuracy", "f1", "f1_macro", "brier"]
    assert ob.metrics_for("multiclass") == ["roc_auc", "pr_auc", "log_loss", "accuracy", "f1_macro", "brier"]
    assert ob.metrics_for("regression") == ["rmse", "mae", "r2"]
    assert [ob.registry_task(t) for t in ob.TASKS] == ["classification", "classification", "regression"]
    assert ob.default_families("binary") == ob.default_families("multiclass") == ("logreg", "hgb", "rf", "mlp")
    assert ob.default_families("regression") == ("ridge", "hgb", "rf", "mlp")


@pytest.mark.parametrize(("task", "metric", "names"), [
    ("multiclass", "f1", "f1_macro"),  # f1 of one class means nothing with three
    ("regression", "roc_auc", "rmse"),
    ("binary", "rmse", "roc_auc"),
    ("binary", "auc", "roc_auc"),  # unknown
])
def test_a_metric_outside_the_task_is_a_typed_error_naming_the_valid_ones(task, metric, names) -> None:
    with pytest.raises(ValidationError, match=names) as info:
        ob.check_metric(task, metric)
    assert info.value.context["field"] == "metric" and info.value.http_status == 422
    with pytest.raises(ValidationError, match="unknown task"):
        ob.default_metric("ranking")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown metric"):
        ob.direction("auc")


def test_is_better_follows_the_metric_direction_and_the_margin() -> None:
    assert ob.is_better(0.71, 0.70, "roc_auc") and not ob.is_better(0.69, 0.70, "roc_auc")
    assert ob.is_better(0.40, 0.50, "log_loss") and not ob.is_better(0.60, 0.50, "log_loss")
    assert not ob.is_better(0.70, 0.70, "roc_auc") and not ob.is_better(0.5, 0.5, "rmse")  # a tie never wins
    assert ob.is_better(0.72, 0.70, "roc_auc", margin=0.02)  # by at least the margin
    assert not ob.is_better(0.715, 0.70, "roc_auc", margin=0.02)
    assert ob.is_better(9.0, 10.0, "rmse", margin=1.0) and not ob.is_better(9.5, 10.0, "rmse", margin=1.0)
    with pytest.raises(ValidationError, match="margin"):
        ob.is_better(1.0, 0.0, "r2", margin=-0.1)


@pytest.mark.parametrize("missing", [None, float("nan"), np.float32("nan")])
def test_a_missing_score_never_wins_and_a_missing_incumbent_always_loses(missing) -> None:
    assert not ob.is_better(missing, 0.5, "roc_auc") and not ob.is_better(missing, 0.5, "log_loss")
    assert not ob.is_better(missing, missing, "rmse")
    assert ob.is_better(0.1, missing, "roc_auc") and ob.is_better(99.0, missing, "rmse")
    assert ob.is_better(0.1, missing, "roc_auc", margin=1.0)


def test_binary_scores_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = np.where(X[:, 0] + rng.normal(size=400) > 0, "yes", "no")
    model = LogisticRegression().fit(X, y)
    scores, predicted = ob.scores_and_predictions(model, "binary", X, y)
    proba = model.predict_proba(X)
    assert (predicted == model.predict(X)).all()
    assert scores == pytest.approx({
        "roc_auc": skm.roc_auc_score(y == "yes", proba[:, 1]),
        "pr_auc": skm.average_precision_score(y == "yes", proba[:, 1]),
        "log_loss": skm.log_loss(y, proba),
        "accuracy": skm.accuracy_score(y, predicted),
        "f1": skm.f1_score(y, predicted, pos_label="yes"),
        "f1_macro": skm.f1_score(y, predicted, average="macro"),
        "brier": skm.brier_score_loss(y == "yes", proba[:, 1]),
    })
    assert ob.score_model(model, "binary", X, y) == scores
    one_class = ob.task_scores("binary", np.zeros(3, int), np.zeros(3, int), np.full((3, 2), 0.5), [0, 1])
    assert math.isnan(one_class["roc_auc"]) and math.isnan(one_class["pr_auc"])
    with pytest.raises(ValidationError, match="not among"):
        ob.task_scores("binary", np.array([0, 2]), np.array([0, 1]), np.full((2, 2), 0.5), [0, 1])


def test_multiclass_scores_take_string_labels_and_classes_missing_from_either_side() -> None:
    classes = np.array(["drizzle", "fog", "rain", "snow", "sun"])
    rng = np.random.default_rng(1)
    y = rng.choice(["rain", "sun", "fog"], 300)  # drizzle and snow absent from this window
    proba = rng.dirichlet(np.ones(5), 300)
    predicted = classes[proba.argmax(axis=1)]
    scores = ob.task_scores("multiclass", y, predicted, proba, classes)
    assert set(scores) == set(ob.metrics_for("multiclass"))
    onehot = (y[:, None] == classes[None, :]).astype(int)
    assert scores["roc_auc"] == pytest.approx(np.mean([skm.roc_auc_score(onehot[:, k], proba[:, k])
                                                       for k in (1, 2, 4)]))
    assert scores["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=classes))
    assert scores["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    assert scores["f1_macro"] == pytest.approx(skm.f1_score(y, predicted, average="macro", zero_division=0))

    # A label the model never saw (snow only in validation) is a miss with probability 0.
    seen = np.array(["fog", "rain", "sun"])
    y2 = np.array(["rain", "snow", "sun", "fog"])
    p2 = np.array([[0.1, 0.8, 0.1], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
    got = ob.task_scores("multiclass", y2, seen[p2.argmax(1)], p2, seen)
    assert got["accuracy"] == pytest.approx(0.75) and got["log_loss"] > 5  # the clipped zero
    assert math.isfinite(got["brier"]) and math.isfinite(got["roc_auc"])
    in_order = ob.log_loss(y2, *ob.with_unseen_classes(y2, p2, seen))  # columns unsorted after padding
    assert got["log_loss"] == pytest.approx(in_order)
    assert ob.log_loss(y2[[0, 2, 3]], p2[[0, 2, 3]][:, ::-1], seen[::-1]) == pytest.approx(
        skm.log_loss(y2[[0, 2, 3]], p2[[0, 2, 3]], labels=seen))


def test_regression_scores_ignore_probabilities() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 2))
    y = X @ [3.0, -1.0] + 10 + rng.normal(size=200)
    model = LinearRegression().fit(X, y)
    scores, predicted = ob.scores_and_predictions(model, "regression", X, y)
    assert predicted.dtype == np.float64
    assert scores == pytest.approx({"rmse": skm.root_mean_squared_error(y, predicted),
                                    "mae": skm.mean_absolute_error(y, predicted),
                                    "r2": skm.r2_score(y, predicted)})
    assert ob.task_scores("regression", y, predicted, proba=None, classes=None) == scores


def test_objectives_imports_nothing_heavy() -> None:
    """Trial workers import it: no MLflow, torch, matplotlib or Ray on the way (scikit-learn's
    metrics bring pandas themselves)."""
    import subprocess
    import sys

    code = ("import sys, raymlops.training.objectives;"
            "print(sorted(m for m in ('mlflow', 'torch', 'matplotlib', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
