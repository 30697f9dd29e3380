"""log_training_run: what a training run records in MLflow (SQLite here, PostgreSQL once)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from mlflow.models import infer_signature
from sklearn import metrics as skm
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from raymlops.config import Settings, load_settings
from raymlops.exceptions import ConflictError, NotFoundError, ValidationError
from raymlops.training import (
    EvaluationCancelled,
    Scored,
    confusion_matrix_figure,
    ensure_experiment,
    evaluation_files,
    feature_importance_figure,
    log_files,
    log_training_run,
    residual_figure,
    roc_pr_figures,
    scores,
    tracking_client,
)
from tests.conftest import PG_URI

CLASSIFIER_ARTIFACTS = {
    "confusion_matrix.png", "roc_curve.png", "pr_curve.png", "feature_importance.png",
    "feature_importance.json", "signature.json", "input_example.json",
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One SQLite store per module: MLflow's schema migration takes seconds, once."""
    return load_settings(storage_root=tmp_path_factory.mktemp("tracking"))


def _frame(X: np.ndarray, prefix: str = "f") -> pd.DataFrame:
    return pd.DataFrame(X, columns=[f"{prefix}_{i}" for i in range(X.shape[1])])


@pytest.fixture(scope="module")
def classification() -> tuple[LogisticRegression, pd.DataFrame, pd.DataFrame, np.ndarray]:
    X, y = make_classification(n_samples=600, n_features=6, n_informative=4, random_state=0)
    X = _frame(X)
    model = LogisticRegression(max_iter=200).fit(X.iloc[:400], y[:400])
    return model, X.iloc[:400], X.iloc[400:].reset_index(drop=True), y[400:]


def _runs(client, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_classifier_run_records_params_metrics_lineage_and_plots(settings, classification):
    model, _, X_valid, y_valid = classification
    steps = [{"train_loss": 1.0 / (i + 1), "valid_loss": 1.2 / (i + 1)} for i in range(7)]
    long_value = "x" * 7000  # over MLflow's param value limit
    tracked = log_training_run(
        settings, experiment="clf", model=model, task="classification",
        X_valid=X_valid, y_valid=y_valid,
        params={"C": 1.0, "max_iter": 200, "layers": [64, 32], "note": long_value},
        step_metrics=steps,
        data_window=("2013-01-01", datetime(2013, 7, 1, 2, tzinfo=timezone(timedelta(hours=2)))),
        feature_views={"flights_hourly": 3, "weather": 1},
        tags={"raymlops.trigger": "manual"}, run_name="logreg",
    )
    client = tracking_client(settings)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "logreg"

    assert run.data.params["C"] == "1.0" and run.data.params["max_iter"] == "200"
    assert json.loads(run.data.params["layers"]) == [64, 32]
    assert len(run.data.params["note"]) <= 6000 and "truncated" in run.data.params["note"]

    proba, pred = model.predict_proba(X_valid)[:, 1], model.predict(X_valid)
    expected = {
        "roc_auc": skm.roc_auc_score(y_valid, proba),
        "pr_auc": skm.average_precision_score(y_valid, proba),
        "log_loss": skm.log_loss(y_valid, model.predict_proba(X_valid)),
        "accuracy": skm.accuracy_score(y_valid, pred),
        "f1": skm.f1_score(y_valid, pred),
        "f1_macro": skm.f1_score(y_valid, pred, average="macro"),
        "brier": skm.brier_score_loss(y_valid, proba),
    }
    assert tracked.metrics == pytest.approx(expected)
    for key, value in expected.items():
        assert run.data.metrics[key] == pytest.approx(value)
    history = client.get_metric_history(tracked.run_id, "valid_loss")
    assert [m.step for m in history] == list(range(7))
    assert [m.value for m in history] == pytest.approx([s["valid_loss"] for s in steps])

    tags = run.data.tags
    assert tags["raymlops.data_window.start"] == "2013-01-01T00:00:00+00:00"
    assert tags["raymlops.data_window.end"] == "2013-07-01T00:00:00+00:00"  # 02:00+02:00 in UTC
    assert json.loads(tags["raymlops.feature_views"]) == {"flights_hourly": 3, "weather": 1}
    assert tags["raymlops.task"] == "classification" and tags["raymlops.trigger"] == "manual"
    assert tags["raymlops.model_class"].endswith("LogisticRegression")
    assert "mlflow.parentRunId" not in tags and "mlflow.user" in tags

    listed = {a.path for a in client.list_artifacts(tracked.run_id)}
    assert CLASSIFIER_ARTIFACTS | {"params.json"} <= listed
    assert set(tracked.artifacts) == listed
    local = Path(run.info.artifact_uri.removeprefix("file://"))
    assert local.is_relative_to(Path(settings.artifact_location) / "clf")
    assert json.loads((local / "params.json").read_text())["note"] == long_value
    importance = json.loads((local / "feature_importance.json").read_text())
    assert importance["method"] == "coef_" and set(importance["importances"]) == set(X_valid)
    assert (local / "roc_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert tracked.signature.inputs.input_names() == list(X_valid.columns)
    assert json.loads((local / "signature.json").read_text())["inputs"]
    example = json.loads((local / "input_example.json").read_text())
    assert example["columns"] == list(X_valid.columns) and len(example["data"]) == 5
    pd.testing.assert_frame_equal(tracked.input_example, X_valid.head(5))


def test_regressor_without_importances_uses_permutation(settings):
    X, y = make_regression(n_samples=3000, n_features=5, n_informative=2, random_state=1)
    X = _frame(X, "x")
    model = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, y)
    assert not hasattr(model, "feature_importances_")
    steps = [{"train_score": float(s)} for s in model.train_score_]
    tracked = log_training_run(settings, experiment="reg", model=model, task="regression",
                               X_valid=X, y_valid=pd.Series(y), params={"max_iter": 30},
                               step_metrics=steps)
    pred = model.predict(X)
    assert tracked.metrics == pytest.approx({
        "rmse": skm.root_mean_squared_error(y, pred), "mae": skm.mean_absolute_error(y, pred),
        "r2": skm.r2_score(y, pred)})
    assert {"residuals.png", "feature_importance.png", "signature.json"} <= set(tracked.artifacts)
    assert "confusion_matrix.png" not in tracked.artifacts
    client = tracking_client(settings)
    assert len(client.get_metric_history(tracked.run_id, "train_score")) == len(steps)
    local = Path(tracked.artifact_uri.removeprefix("file://"))
    importance = json.loads((local / "feature_importance.json").read_text())
    assert importance["method"] == "permutation"
    top2 = sorted(importance["importances"], key=importance["importances"].get)[-2:]
    informative = np.argsort(np.abs(np.corrcoef(X.T, y)[-1, :-1]))[-2:]
    assert set(top2) == {f"x_{i}" for i in informative}


def test_multiclass_with_string_labels(settings):
    X, y = make_classification(n_samples=450, n_features=6, n_informative=4, n_classes=3,
                               random_state=2)
    X, labels = _frame(X), np.array(["late", "on_time", "early"])[y]
    model = LogisticRegression(max_iter=300).fit(X[:300], labels[:300])
    X_valid, y_valid = X[300:], labels[300:]
    tracked = log_training_run(settings, experiment="multi", model=model, task="classification",
                               X_valid=X_valid, y_valid=y_valid, params={})
    proba, pred = model.predict_proba(X_valid), model.predict(X_valid)
    assert tracked.metrics == pytest.approx({
        "roc_auc": skm.roc_auc_score(y_valid, proba, multi_class="ovr", labels=model.classes_),
        "pr_auc": np.mean([skm.average_precision_score(y_valid == c, proba[:, k])
                           for k, c in enumerate(model.classes_)]),
        "log_loss": skm.log_loss(y_valid, proba, labels=model.classes_),
        "accuracy": skm.accuracy_score(y_valid, pred),
        "f1_macro": skm.f1_score(y_valid, pred, average="macro"),  # f1 of one class is binary only
        "brier": skm.brier_score_loss(y_valid, proba, labels=model.classes_),
    })
    assert CLASSIFIER_ARTIFACTS <= set(tracked.artifacts)


def test_multiclass_evaluation_when_classes_are_missing_on_either_side(settings, monkeypatch):
    """A class only in validation (never trained on) is scored as misses and has its row in
    the confusion matrix; a class absent from validation has no ROC/PR curve (0/0 rates)."""
    from raymlops.training import tracking

    X, y = make_classification(n_samples=600, n_features=6, n_informative=4, n_classes=4,
                               random_state=3)
    X, labels = _frame(X), np.array(["drizzle", "fog", "rain", "sun"])[y]
    train = labels != "drizzle"  # drizzle is never trained on
    model = LogisticRegression(max_iter=300).fit(X[train][:300], labels[train][:300])
    valid = np.arange(300, 600)
    X_valid, y_valid = X.iloc[valid], labels[valid]
    keep = y_valid != "fog"  # fog never shows up in validation
    X_valid, y_valid = X_valid[keep], y_valid[keep]
    drawn = {}
    real_cm, real_roc = tracking._plots.confusion_matrix_figure, tracking._plots.roc_pr_figures

    def confusion(y_true, y_pred, *, labels=None):
        drawn["cm"] = list(labels)
        return real_cm(y_true, y_pred, labels=labels)

    def roc_pr(y_true, scores, *, labels=None):
        roc, pr = real_roc(y_true, scores, labels=labels)
        drawn["curves"] = [t.get_text() for t in roc.axes[0].get_legend().get_texts()]
        return roc, pr

    monkeypatch.setattr(tracking._plots, "confusion_matrix_figure", confusion)
    monkeypatch.setattr(tracking._plots, "roc_pr_figures", roc_pr)
    files = evaluation_files(model, task="classification", X_valid=X_valid, y_valid=y_valid)
    assert CLASSIFIER_ARTIFACTS - {"signature.json", "input_example.json"} == set(files)
    assert drawn["cm"] == ["fog", "rain", "sun", "drizzle"]
    assert [t.split(" (")[0] for t in drawn["curves"]] == ["class rain", "class sun", "chance"]
    metrics = log_training_run(settings, experiment="multi-missing", model=model, task="classification",
                               X_valid=X_valid, y_valid=y_valid, params={}, plots=False).metrics
    assert np.isfinite(list(metrics.values())).all()
    assert metrics["accuracy"] <= 1 - np.mean(y_valid == "drizzle")  # drizzle rows are misses


class TorchClassifier:
    """An sklearn-style wrapper over a torch module that returns tensors, with no classes_."""

    def __init__(self, n_features: int) -> None:
        import torch

        torch.manual_seed(0)
        self.net = torch.nn.Linear(n_features, 1)

    def fit(self, X: pd.DataFrame, y: np.ndarray, epochs: int = 5) -> list[dict[str, float]]:
        import torch

        xt, yt = torch.tensor(X.to_numpy(np.float32)), torch.tensor(y, dtype=torch.float32)
        opt = torch.optim.SGD(self.net.parameters(), lr=0.5)
        history = []
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(self.net(xt)[:, 0], yt)
            loss.backward()
            opt.step()
            history.append({"train_loss": loss.item()})
        return history

    def predict_proba(self, X: pd.DataFrame):
        import torch

        with torch.no_grad():
            p = torch.sigmoid(self.net(torch.tensor(X.to_numpy(np.float32)))[:, 0])
        return torch.stack([1 - p, p], dim=1)

    def predict(self, X: pd.DataFrame):
        return (self.predict_proba(X)[:, 1] > 0.5).long()


def test_torch_wrapper_and_nested_run(settings, classification):
    _, X_train, X_valid, y_valid = classification
    y_train = classification[0].predict(X_train)  # a learnable target
    client = tracking_client(settings)
    exp = ensure_experiment(client, "sweep", settings.artifact_location)
    parent = client.create_run(exp.experiment_id, run_name="sweep").info.run_id

    model = TorchClassifier(X_train.shape[1])
    steps = model.fit(X_train, y_train)
    tracked = log_training_run(settings, experiment="sweep", model=model,
                               task="classification", X_valid=X_valid, y_valid=y_valid,
                               params={"lr": 0.5}, step_metrics=steps, parent_run_id=parent)
    run = client.get_run(tracked.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert [r.info.run_id for r in children] == [tracked.run_id]
    assert 0.5 < tracked.metrics["roc_auc"] <= 1.0
    assert CLASSIFIER_ARTIFACTS <= set(tracked.artifacts)
    assert str(tracked.signature.outputs.to_dict()[0]["tensor-spec"]["dtype"]) == "int64"

    before = len(_runs(client, "sweep"))
    with pytest.raises(NotFoundError, match="does not exist"):
        log_training_run(settings, experiment="sweep", model=model, task="classification",
                         X_valid=X_valid, y_valid=y_valid, params={}, parent_run_id="0" * 32)
    assert len(_runs(client, "sweep")) == before


class Broken(LogisticRegression):
    def predict_proba(self, X):
        raise RuntimeError("predict_proba exploded")


def test_failure_marks_the_run_failed_and_reraises(settings, classification):
    model, X_train, X_valid, y_valid = classification
    broken = Broken().fit(X_train, model.predict(X_train))
    with pytest.raises(RuntimeError, match="exploded"):
        log_training_run(settings, experiment="broken", model=broken, task="classification",
                         X_valid=X_valid, y_valid=y_valid, params={"C": 1.0})
    (run,) = _runs(tracking_client(settings), "broken")
    assert run.info.status == "FAILED"
    assert run.data.tags["raymlops.error"] == "RuntimeError: predict_proba exploded"
    assert run.data.params["C"] == "1.0"  # what was logged before the failure stays


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"X_valid": pd.DataFrame({"f_0": []})}, "X_valid is empty"),
        ({"y_valid": np.zeros(3)}, "200 rows but y_valid has 3"),
        ({"y_valid": np.ones(200)}, "one class only"),
        ({"y_valid": np.full(200, 7)}, "one class only"),
        ({"y_valid": np.r_[np.zeros(100), np.full(100, 2)]}, "never saw"),
        ({"task": "ranking"}, "task must be"),
        ({"params": {"bad name!": 1}}, "param name 'bad name!' is invalid"),
        ({"step_metrics": [{"loss": "low"}]}, "must be a number"),
        ({"data_window": ("2013-02-01", "2013-01-01")}, "after it ends"),
        ({"data_window": ("yesterday-ish", "2013-01-01")}, "not a date/time"),
        ({"feature_views": {"flights": "v3"}}, "non-negative int"),
        ({"tags": {"raymlops.task": "x"}}, "set by log_training_run"),
        ({"input_example_rows": 0}, "input_example_rows"),
        ({"experiment": "../escape"}, "'..' segment"),
        ({"scored": "0.7"}, "either a model or its scores"),
        ({"model": None, "plots": False, "scored": Scored({"roc_auc": float("nan")}, [0] * 5, "m.C")},
         "finite number"),
        ({"model": None, "plots": False, "scored": Scored({"bad name!": 0.5}, [0] * 5, "m.C")},
         "metric name 'bad name!' is invalid"),
        ({"model": None, "plots": False, "scored": Scored({"roc_auc": 0.5}, [0] * 3, "m.C")},
         "3 example predictions for 5"),
        ({"model": None, "plots": False, "scored": Scored({"roc_auc": 0.5}, [0] * 5, "")},
         "model_class"),
    ],
)
def test_bad_input_raises_validation_error_before_any_write(settings, classification, change,
                                                            message):
    model, _, X_valid, y_valid = classification
    client = tracking_client(settings)
    name = f"bad-{uuid.uuid4().hex[:8]}"
    runs_before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    kwargs = dict(experiment=name, model=model, task="classification", X_valid=X_valid,
                  y_valid=y_valid, params={"C": 1.0})
    with pytest.raises(ValidationError, match=message) as info:
        log_training_run(settings, **{**kwargs, **change})
    assert info.value.http_status == 422
    assert client.get_experiment_by_name(name) is None  # not even the experiment was made
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == (
        runs_before)


def test_a_run_from_scores_computed_elsewhere_never_calls_the_model(settings, classification):
    """A search trial scores its model in its worker; the run is written from those numbers."""
    model, _, X_valid, y_valid = classification
    proba = scores.probabilities(model, X_valid)
    metrics, predicted = scores.scores_from_probabilities(y_valid, proba, model.classes_)
    assert (predicted == model.predict(X_valid)).all()  # one predict_proba pass gives predict()
    steps = [{"roc_auc": 0.6}, dict(metrics)]
    tracked = log_training_run(
        settings, experiment="scored", model=None, task="classification", X_valid=X_valid,
        y_valid=y_valid, params={"C": 1.0}, step_metrics=steps, plots=False,
        scored=Scored(metrics, predicted[:5].tolist(), "sklearn.linear_model.LogisticRegression"))
    run = tracking_client(settings).get_run(tracked.run_id)
    assert run.data.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y_valid, proba[:, 1]))
    assert run.data.metrics["log_loss"] == pytest.approx(skm.log_loss(y_valid, proba))
    assert run.data.tags["raymlops.model_class"] == "sklearn.linear_model.LogisticRegression"
    assert set(tracked.artifacts) == {"signature.json", "input_example.json"}
    assert tracked.signature == infer_signature(X_valid.head(5), model.predict(X_valid.head(5)))
    history = tracking_client(settings).get_metric_history(tracked.run_id, "roc_auc")
    assert [m.step for m in history] == [0, 1]


def test_evaluation_files_are_rendered_ahead_and_logged_later(settings, classification):
    model, _, X_valid, y_valid = classification
    files = evaluation_files(model, task="classification", X_valid=X_valid, y_valid=y_valid)
    assert set(files) == CLASSIFIER_ARTIFACTS - {"signature.json", "input_example.json"}
    assert files["roc_curve.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(files["feature_importance.json"])["method"] == "coef_"
    tracked = log_training_run(settings, experiment="later", model=model, task="classification",
                               X_valid=X_valid, y_valid=y_valid, params={}, plots=False)
    assert log_files(settings, tracked.run_id, files) == sorted(files)
    listed = {a.path for a in tracking_client(settings).list_artifacts(tracked.run_id)}
    assert set(files) | {"signature.json", "input_example.json"} == listed
    with pytest.raises(ValidationError, match="plain file name"):
        log_files(settings, tracked.run_id, {"../escape.png": b"x"})


def test_an_evaluation_stops_when_cancelled_midway():
    X, y = make_regression(n_samples=300, n_features=4, random_state=0)
    model = HistGradientBoostingRegressor(max_iter=10).fit(_frame(X), y)  # permutation importance
    polls = []

    def cancelled() -> bool:
        polls.append(1)
        return len(polls) > 3  # a few permutation predictions in

    with pytest.raises(EvaluationCancelled):
        evaluation_files(model, task="regression", X_valid=_frame(X), y_valid=y, cancelled=cancelled)
    assert len(polls) == 4  # stopped at the first poll that said so


def test_ensure_experiment_is_race_safe_and_refuses_deleted(settings):
    client = tracking_client(settings)
    first = ensure_experiment(client, "race", settings.artifact_location)
    assert first.artifact_location.endswith(f"{Path(settings.artifact_location).name}/race")
    assert ensure_experiment(client, "race", settings.artifact_location).experiment_id == (
        first.experiment_id)

    class LateLookup:  # sees "no experiment" first, as if another trial created it meanwhile
        def __init__(self) -> None:
            self.calls = 0

        def get_experiment_by_name(self, name):
            self.calls += 1
            return None if self.calls == 1 else client.get_experiment_by_name(name)

        def create_experiment(self, *args, **kwargs):
            return client.create_experiment(*args, **kwargs)  # raises: it exists

    raced = ensure_experiment(LateLookup(), "race", settings.artifact_location)
    assert raced.experiment_id == first.experiment_id

    client.delete_experiment(first.experiment_id)
    with pytest.raises(ConflictError, match="deleted"):
        ensure_experiment(client, "race", settings.artifact_location)


def test_plots_are_titled_and_labelled():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet(np.ones(3), 300)
    figures = [confusion_matrix_figure(y, proba.argmax(1)), *roc_pr_figures(y, proba),
               residual_figure(rng.normal(size=50), rng.normal(size=50)),
               feature_importance_figure([f"c{i}" for i in range(30)], rng.random(30), top=5)]
    for fig in figures:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel() is not None
    assert len(figures[1].axes[0].get_legend().get_texts()) == 4  # 3 classes + chance
    assert len(figures[-1].axes[0].get_yticklabels()) == 5


def test_postgres_store(tmp_path, classification):
    from tests.conftest import require_service

    require_service(5432, "PostgreSQL")
    settings = load_settings(storage_root=tmp_path, tracking_uri=PG_URI,
                             artifact_location=str(tmp_path / "pg-artifacts"))
    model, _, X_valid, y_valid = classification
    name = f"pg-{uuid.uuid4().hex}"
    tracked = log_training_run(settings, experiment=name, model=model, task="classification",
                               X_valid=X_valid, y_valid=y_valid, params={"C": 1.0},
                               step_metrics=[{"loss": 0.5}, {"loss": 0.4}],
                               feature_views={"flights": 2})
    client = tracking_client(settings)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y_valid, model.predict_proba(X_valid)[:, 1]))
    assert [m.step for m in client.get_metric_history(tracked.run_id, "loss")] == [0, 1]
    assert json.loads(run.data.tags["raymlops.feature_views"]) == {"flights": 2}
    assert Path(tracked.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path)
    assert CLASSIFIER_ARTIFACTS <= {a.path for a in client.list_artifacts(tracked.run_id)}


def test_permutation_importance_of_a_columnwise_pipeline_permutes_transformed_columns(monkeypatch):
    """Same numbers as shuffling the raw columns (same shuffles), without re-transforming."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    from raymlops.training import tracking

    X, y = make_classification(n_samples=800, n_features=4, n_informative=3, n_redundant=0,
                               random_state=1)
    frame = _frame(X).assign(origin=np.where(X[:, 0] > 0, "JFK", "EWR"))
    prep = ColumnTransformer([("cat", OrdinalEncoder(), ["origin"]),
                              ("num", StandardScaler(), ["f_2", "f_0", "f_1", "f_3"])],
                             verbose_feature_names_out=False)
    model = Pipeline([("prep", prep), ("clf", HistGradientBoostingClassifier(
        max_iter=20, categorical_features=[0]))]).fit(frame, y)
    split = tracking._columnwise_split(model, frame)
    assert split is not None and split[0] is model.steps[-1][1]
    fast = tracking._importance(model, "classification", frame, y, model.classes_)
    monkeypatch.setattr(tracking, "_columnwise_split", lambda model, X: None)
    plain = tracking._importance(model, "classification", frame, y, model.classes_)
    assert fast[0] == plain[0] == list(frame.columns)
    np.testing.assert_allclose(fast[1], plain[1], atol=1e-12)
    np.testing.assert_allclose(fast[2], plain[2], atol=1e-12)
    assert fast[1].max() > 0.01  # the model does depend on some columns

    one_hot = Pipeline([("prep", ColumnTransformer([("cat", OneHotEncoder(), ["origin"])],
                                                   remainder="passthrough")),
                        ("clf", LogisticRegression())]).fit(frame, y)
    assert tracking._columnwise_split(one_hot, frame) is None  # one column -> several outputs
