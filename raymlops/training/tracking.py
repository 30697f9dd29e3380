"""Record one training run in MLflow: the helper that AutoML trials, continuous training and
the demo all call, so every run in the UI carries the same params, metrics, tags and plots.

Why a client and not ``mlflow.start_run``: the fluent API keeps the tracking URI and the active
run in process-global state, and one Ray worker process runs many trials (drivers and actors
share processes too), so runs here are created and ended through an explicit
:class:`~mlflow.tracking.MlflowClient` built from :class:`~raymlops.config.Settings`.
Model bytes are *not* logged (the registry stores them itself, in safe formats); the run gets
the signature and an input example as JSON so the registry can read the model's contract.

Order of work: every input is checked first, and a bad one raises a typed
:class:`~raymlops.exceptions.ValidationError` before anything is written. Once the run exists,
any failure ends it FAILED (the error in tag ``raymlops.error``) and is re-raised, so no run is
left RUNNING.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from mlflow.entities import Experiment, LifecycleStage, Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_PARAM_VAL_LENGTH,
    MAX_TAG_VAL_LENGTH,
    path_not_unique,
    validate_param_and_metric_name,
)
from sklearn import metrics as skm
from sklearn.inspection import permutation_importance

from raymlops.config import Settings
from raymlops.exceptions import ConflictError, NotFoundError, ValidationError
from raymlops.training import plots as _plots
from raymlops.training.objectives import as_array as _array
from raymlops.training.objectives import log_loss, task_scores, with_unseen_classes
from raymlops.training.objectives import probabilities as _proba

__all__ = [
    "TAG_DATA_WINDOW_END",
    "TAG_DATA_WINDOW_START",
    "TAG_ERROR",
    "TAG_FEATURE_VIEWS",
    "TAG_MODEL_CLASS",
    "TAG_TASK",
    "EvaluationCancelled",
    "Scored",
    "Task",
    "TrackedRun",
    "ensure_experiment",
    "evaluation_files",
    "log_evaluation",
    "log_files",
    "log_training_run",
    "tracking_client",
]

Task = Literal["classification", "regression"]
TAG_DATA_WINDOW_START = "raymlops.data_window.start"
TAG_DATA_WINDOW_END = "raymlops.data_window.end"
TAG_FEATURE_VIEWS = "raymlops.feature_views"
TAG_TASK = "raymlops.task"
TAG_MODEL_CLASS = "raymlops.model_class"
TAG_ERROR = "raymlops.error"

PERMUTATION_MAX_ROWS = 2_000  # permutation importance re-predicts n_features * 3 times
_BATCH_METRICS, _BATCH_PARAMS = 1000, 100  # MLflow's per-request log_batch limits
_CUT = "...[truncated; full value in params.json]"


@dataclass(frozen=True)
class TrackedRun:
    """What a finished training run recorded: enough for the registry to register it."""

    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    signature: ModelSignature
    input_example: pd.DataFrame
    artifact_uri: str
    artifacts: list[str]


def tracking_client(settings: Settings) -> MlflowClient:
    """A client bound to the platform's store, never to MLflow's process-global URI.

    MLflow caches the SQL store per URI within a process, so a client per call is cheap after
    the first one (which runs the schema migrations when the database is new).
    """
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str) -> Experiment:
    """Get or create experiment ``name``, its artifacts under ``<artifact_location>/<name>``.

    ``artifact_location`` is the platform's artifact root (``settings.artifact_location``), so
    each experiment's files sit in their own folder. Race-safe, since many trials start at once:
    if another process creates it between our lookup and our create, we take theirs. A
    *deleted* experiment of that name is a :class:`ConflictError` (MLflow keeps the name until
    it is restored or purged) rather than a silent restore.
    """
    _check_experiment_name(name)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            location = f"{artifact_location.rstrip('/')}/{name}"
            client.create_experiment(name, artifact_location=location)
        except MlflowException:
            pass  # lost a creation race, or a real error: the lookup below tells which
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise MlflowException(f"could neither create nor find MLflow experiment {name!r}")
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        raise ConflictError(
            f"MLflow experiment {name!r} is deleted: restore it (mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}) or use another name", experiment=name)
    return experiment


def log_training_run(
    settings: Settings,
    *,
    experiment: str,
    model: Any,
    task: Task,
    X_valid: pd.DataFrame,
    y_valid: Any,
    params: Mapping[str, Any],
    scored: Scored | None = None,
    step_metrics: Sequence[Mapping[str, float]] | None = None,
    data_window: tuple[str | datetime, str | datetime] | None = None,
    feature_views: Mapping[str, int] | None = None,
    tags: Mapping[str, str] | None = None,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    input_example_rows: int = 5,
    plots: bool = True,
) -> TrackedRun:
    """Record a trained model's run: params, per-step and final metrics, lineage tags, plots.

    ``step_metrics[i]`` holds step ``i``'s metrics (an epoch, a boosting iteration), logged
    with ``step=i``. Final metrics are computed here from ``model`` on the validation set
    (every metric :func:`raymlops.training.objectives.metrics_for` lists for the task: a
    classifier of two classes gets the binary set -- roc_auc, pr_auc, log_loss, accuracy, f1,
    f1_macro, brier --, of more the multiclass one, without f1; a regressor rmse, mae, r2) so
    every training path reports them the same way; they are logged at the last step.
    Only ``predict`` (and ``predict_proba`` for classifiers) is called on ``model``.
    ``parent_run_id`` nests the run (MLflow's ``mlflow.parentRunId`` tag), e.g. a trial under
    its sweep. Bad input raises :class:`ValidationError` before anything is written; a missing
    parent raises :class:`NotFoundError`. ``plots=False`` skips the figures and the feature
    importance (what costs seconds: permutation importance re-predicts the validation set many
    times), for the many trials of a search; :func:`log_evaluation` adds them to a run later.
    With ``scored`` (then ``model`` is None and ``plots`` False) the final metrics and the
    signature's predictions are the caller's, and no model is called.
    """
    _check_experiment_name(experiment)
    if scored is not None and (model is not None or plots):
        raise ValidationError("pass either a model or its scores (with plots=False), not both",
                              field="scored")
    y = _check_inputs(model, task, X_valid, y_valid, model_given=scored is None)
    if type(input_example_rows) is not int or input_example_rows < 1:
        raise ValidationError(f"input_example_rows must be a positive int, got "
                              f"{input_example_rows!r}", field="input_example_rows")
    example_predictions = _check_scored(scored, input_example_rows, len(X_valid)) if scored else None
    param_entities, full_params, truncated = _params(params)
    steps = _steps(step_metrics)
    run_tags = _run_tags(task, model, data_window, feature_views, tags, parent_run_id,
                         model_class=scored.model_class if scored else None)
    client = tracking_client(settings)
    if parent_run_id is not None:
        _check_parent(client, parent_run_id)
    exp = ensure_experiment(client, experiment, str(settings.artifact_location))

    # resolve_tags adds mlflow.user / mlflow.source.* as mlflow.start_run does
    run = client.create_run(exp.experiment_id, tags=resolve_tags(run_tags), run_name=run_name)
    run_id = run.info.run_id
    try:
        now = _now_ms()
        per_step = [Metric(k, v, now, i) for i, row in enumerate(steps) for k, v in row.items()]
        _log_batches(client, run_id, params=param_entities, metrics=per_step)
        if scored is not None:
            final, predictions = dict(scored.metrics), example_predictions
            figures, importance = {}, None
        else:
            final, predictions, figures, importance = _evaluate(model, task, X_valid, y, plots=plots)
        last = max(len(steps) - 1, 0)
        logged = steps[-1] if steps else {}  # a trial's last step already holds its final scores
        _log_batches(client, run_id, metrics=[Metric(k, v, _now_ms(), last)
                                              for k, v in final.items() if logged.get(k) != float(v)])
        example = X_valid.head(input_example_rows)
        signature = infer_signature(example, predictions[: len(example)])
        documents: dict[str, Any] = {
            "signature.json": signature.to_dict(),
            "input_example.json": json.loads(
                example.to_json(orient="split", index=False, date_format="iso")),
        }
        if importance is not None:
            documents["feature_importance.json"] = importance
        if truncated:
            documents["params.json"] = full_params
        artifacts = _upload(client, run_id, _files(figures, documents))
    except BaseException as exc:
        _end_failed(client, run_id, exc)
        raise
    client.set_terminated(run_id, status="FINISHED")
    return TrackedRun(run_id=run_id, experiment_id=exp.experiment_id, metrics=final,
                      signature=signature, input_example=example.copy(),
                      artifact_uri=run.info.artifact_uri, artifacts=artifacts)


# -- input checks (no writes) -------------------------------------------------------------------


def log_evaluation(settings: Settings, run_id: str, *, model: Any, task: Task, X_valid: pd.DataFrame,
                   y_valid: Any) -> list[str]:
    """Add the figures and feature importance to an existing run (e.g. a search's best trial,
    logged with ``plots=False`` while the search ran). Returns the artifact names."""
    return log_files(settings, run_id, evaluation_files(model, task=task, X_valid=X_valid, y_valid=y_valid))


class EvaluationCancelled(Exception):
    """:func:`evaluation_files` stopped because its ``cancelled()`` said so."""


def evaluation_files(model: Any, *, task: Task, X_valid: pd.DataFrame, y_valid: Any,
                     cancelled: Callable[[], bool] | None = None) -> dict[str, bytes]:
    """The figures (PNG) and feature importance (JSON) of ``model`` on the validation rows,
    rendered but not logged: the seconds of work (permutation importance, drawing) can run
    ahead of knowing which run gets them -- a search computes them for its likely winner
    while its last trial runs -- and :func:`log_files` adds them to a run later.
    ``cancelled()`` is polled between pieces of work (each permutation-importance
    prediction, each figure): once true, :class:`EvaluationCancelled` is raised, so work for
    a model that no longer matters stops taking a core."""
    check = _canceller(cancelled)
    y = _check_inputs(model, task, X_valid, y_valid)
    _, _, figures, importance = _evaluate(model, task, X_valid, y, plots=True, check=check)
    return _files(figures, {"feature_importance.json": importance}, check)


def log_files(settings: Settings, run_id: str, files: Mapping[str, bytes]) -> list[str]:
    """Upload ``{file name: content}`` as the run's artifacts in one call; returns the names."""
    for name in files:
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ValidationError(f"artifact file name {name!r} must be a plain file name", field="files")
    return _upload(tracking_client(settings), run_id, files)


def _check_scored(scored: Any, example_rows: int, valid_rows: int) -> np.ndarray:
    """The caller's scores are finite numbers under valid names, with one prediction per
    example row; returns the predictions as an array."""
    if not isinstance(scored, Scored):
        raise ValidationError(f"scored must be a Scored, got {type(scored).__name__}", field="scored")
    for key, value in scored.metrics.items():
        _check_key("metric", key)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                or not np.isfinite(float(value)):
            raise ValidationError(f"metric {key!r} must be a finite number, got {value!r}",
                                  field="scored")
    predictions = np.asarray(scored.example_predictions)
    if len(predictions) != min(example_rows, valid_rows):
        raise ValidationError(f"scored has {len(predictions)} example predictions for "
                              f"{min(example_rows, valid_rows)} example rows", field="scored")
    if not isinstance(scored.model_class, str) or not scored.model_class:
        raise ValidationError("scored.model_class must name the model's class", field="scored")
    return predictions


def _check_inputs(model: Any, task: Any, X_valid: Any, y_valid: Any, model_given: bool = True) -> np.ndarray:
    """The validation set and model fit together; returns ``y_valid`` as a 1-D array.
    ``model_given=False``: the scores come from elsewhere, only the data is checked."""
    if task not in ("classification", "regression"):
        raise ValidationError(f"task must be 'classification' or 'regression', got {task!r}",
                              field="task")
    methods = ("predict", "predict_proba") if task == "classification" else ("predict",)
    for method in methods if model_given else ():
        if not callable(getattr(model, method, None)):
            raise ValidationError(f"a {task} model needs a {method}() method; "
                                  f"{type(model).__name__} has none", field="model")
    if not isinstance(X_valid, pd.DataFrame):
        raise ValidationError(f"X_valid must be a pandas DataFrame with named columns, got "
                              f"{type(X_valid).__name__}", field="X_valid")
    if X_valid.empty:
        raise ValidationError(f"X_valid is empty ({X_valid.shape[0]} rows, "
                              f"{X_valid.shape[1]} columns)", field="X_valid")
    if X_valid.columns.duplicated().any():
        dupes = sorted({str(c) for c in X_valid.columns[X_valid.columns.duplicated()]})
        raise ValidationError(f"X_valid has duplicate columns {dupes}", field="X_valid")
    y = np.asarray(y_valid)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValidationError(f"y_valid must be 1-D, got shape {y.shape}", field="y_valid")
    if len(y) != len(X_valid):
        raise ValidationError(f"X_valid has {len(X_valid)} rows but y_valid has {len(y)}",
                              field="y_valid")
    if pd.isna(y).any():
        raise ValidationError(f"y_valid has {int(pd.isna(y).sum())} missing values",
                              field="y_valid")
    if task == "regression":
        if not np.issubdtype(y.dtype, np.number) or not np.isfinite(y.astype(float)).all():
            raise ValidationError("regression y_valid must be finite numbers", field="y_valid")
        return y.astype(float)
    present = np.unique(y)
    if len(present) < 2:
        raise ValidationError(f"y_valid holds one class only ({present.tolist()}): roc_auc and "
                              "pr_auc are undefined; validate on rows of at least two classes",
                              field="y_valid")
    known = getattr(model, "classes_", None)
    unknown = set(present.tolist()) - set(np.asarray(known).tolist()) if known is not None else ()
    # A binary model asked about a third label was handed mis-coded labels; a multiclass one
    # may meet a rare class only in validation, scored as the misses it gets (objectives).
    if unknown and known is not None and len(known) <= 2:
        raise ValidationError(f"y_valid has classes {sorted(map(str, unknown))} the model never "
                              f"saw (model.classes_ = {np.asarray(known).tolist()})",
                              field="y_valid")
    return y


def _check_key(kind: str, key: Any) -> str:
    """MLflow's rules for param/metric/tag names, raised as our error before any write."""
    if not isinstance(key, str) or not key or len(key) > MAX_ENTITY_KEY_LENGTH:
        raise ValidationError(f"{kind} name must be a string of 1-{MAX_ENTITY_KEY_LENGTH} "
                              f"characters, got {str(key)[:60]!r}", field=kind)
    if not validate_param_and_metric_name(key) or path_not_unique(key):
        raise ValidationError(f"{kind} name {key!r} is invalid: use letters, digits and "
                              "_ - . : / and spaces (no leading '/', '..' or '//')", field=kind)
    return key


def _check_experiment_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise ValidationError(f"experiment name must be a string of 1-"
                              f"{MAX_EXPERIMENT_NAME_LENGTH} characters, got {name!r}",
                              field="experiment")
    if name.startswith("/") or ".." in name.split("/"):  # it names a folder under the root
        raise ValidationError(f"experiment name {name!r} must not start with '/' or hold a "
                              "'..' segment", field="experiment")


def _params(params: Mapping[str, Any]) -> tuple[list[Param], dict[str, str], bool]:
    """Params as strings (JSON for containers), cut to MLflow's value limit when longer."""
    if not isinstance(params, Mapping):
        raise ValidationError(f"params must be a mapping, got {type(params).__name__}",
                              field="params")
    entities, full = [], {}
    for key, value in params.items():
        text = value if isinstance(value, str) else (
            json.dumps(value, sort_keys=True, default=str)
            if isinstance(value, (Mapping, list, tuple)) else str(value))
        full[_check_key("param", key)] = text
        if len(text) > MAX_PARAM_VAL_LENGTH:
            text = text[: MAX_PARAM_VAL_LENGTH - len(_CUT)] + _CUT
        entities.append(Param(key, text))
    return entities, full, any(len(v) > MAX_PARAM_VAL_LENGTH for v in full.values())


def _steps(step_metrics: Sequence[Mapping[str, float]] | None) -> list[dict[str, float]]:
    if step_metrics is None:
        return []
    if isinstance(step_metrics, (str, Mapping)) or not isinstance(step_metrics, Sequence):
        raise ValidationError("step_metrics must be a sequence of {metric: value} mappings, one "
                              "per step", field="step_metrics")
    steps = []
    for i, row in enumerate(step_metrics):
        if not isinstance(row, Mapping):
            raise ValidationError(f"step_metrics[{i}] must be a mapping", field="step_metrics")
        for key, value in row.items():
            _check_key("metric", key)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValidationError(f"step_metrics[{i}][{key!r}] must be a number, got "
                                      f"{value!r}", field="step_metrics")
        steps.append({key: float(value) for key, value in row.items()})
    return steps


def _utc(value: Any, which: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"data_window {which} {value!r} is not a date/time ({exc})",
                              field="data_window") from None
    if pd.isna(stamp):
        raise ValidationError(f"data_window {which} is missing", field="data_window")
    # naive times are taken as UTC: the platform's event times are UTC throughout
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _run_tags(task: Task, model: Any, data_window: Any, feature_views: Any, tags: Any,
              parent_run_id: Any, model_class: str | None = None) -> dict[str, str]:
    ours = {TAG_TASK: task,
            TAG_MODEL_CLASS: model_class or f"{type(model).__module__}.{type(model).__qualname__}"}
    if parent_run_id is not None:
        if not isinstance(parent_run_id, str) or not parent_run_id:
            raise ValidationError(f"parent_run_id must be a run id, got {parent_run_id!r}",
                                  field="parent_run_id")
        ours[MLFLOW_PARENT_RUN_ID] = parent_run_id
    if data_window is not None:
        if not isinstance(data_window, (tuple, list)) or len(data_window) != 2:
            raise ValidationError("data_window must be a (start, end) pair", field="data_window")
        start, end = _utc(data_window[0], "start"), _utc(data_window[1], "end")
        if start > end:
            raise ValidationError(f"data_window starts ({start}) after it ends ({end})",
                                  field="data_window")
        ours[TAG_DATA_WINDOW_START], ours[TAG_DATA_WINDOW_END] = start.isoformat(), end.isoformat()
    if feature_views is not None:
        bad = not isinstance(feature_views, Mapping) or any(
            not isinstance(k, str) or not k or isinstance(v, bool)
            or not isinstance(v, (int, np.integer)) or v < 0 for k, v in feature_views.items())
        if bad:
            raise ValidationError(f"feature_views must map view names to non-negative int "
                                  f"versions, got {feature_views!r}", field="feature_views")
        ours[TAG_FEATURE_VIEWS] = json.dumps({k: int(v) for k, v in feature_views.items()},
                                             sort_keys=True)
    given = {_check_key("tag", k): str(v) for k, v in (tags or {}).items()}
    for key, value in given.items():
        if key in ours:
            raise ValidationError(f"tag {key!r} is set by log_training_run from its own "
                                  "argument; pass it there", field="tags")
        if len(value) > MAX_TAG_VAL_LENGTH:
            raise ValidationError(f"tag {key!r} is longer than MLflow's {MAX_TAG_VAL_LENGTH} "
                                  "characters", field="tags")
    return {**given, **ours}


@dataclass(frozen=True)
class Scored:
    """A model's validation scores, computed where the model already is.

    Why: a search trial scores its model in its own Tune worker after every step. Handing
    those numbers to :func:`log_training_run` lets the driver log the trial's run without the
    model: no skops load and no second pass over the validation rows per trial, work that ran
    on the cores the next trials needed and held the driver's GIL against Tune's loop.
    """

    metrics: Mapping[str, float]
    example_predictions: Sequence[Any]  # predict() of the first input_example_rows rows
    model_class: str  # "module.QualName" of the model, for the run's tag


def _check_parent(client: MlflowClient, parent_run_id: str) -> None:
    try:
        parent = client.get_run(parent_run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(f"parent run {parent_run_id!r} does not exist",
                                run_id=parent_run_id) from None
        raise
    if parent.info.lifecycle_stage == LifecycleStage.DELETED:
        raise ConflictError(f"parent run {parent_run_id!r} is deleted", run_id=parent_run_id)


# -- evaluation: metrics, predictions, figures --------------------------------------------------


def _canceller(cancelled: Callable[[], bool] | None) -> Callable[[], None]:
    def check() -> None:
        if cancelled is not None and cancelled():
            raise EvaluationCancelled("the evaluation was cancelled")
    return check


_not_cancelled = _canceller(None)


def _evaluate(model: Any, task: Task, X: pd.DataFrame, y: np.ndarray, plots: bool = True,
              check: Callable[[], None] = _not_cancelled,
              ) -> tuple[dict[str, float], np.ndarray, dict[str, Any], dict[str, Any] | None]:
    """(final metrics, predict() output, figures by file name, importance document).

    Without ``model.classes_``, predict_proba's columns are taken to follow the sorted labels.
    With ``plots=False`` the figures are empty and the importance is None.
    """
    y_pred = _array(model.predict(X)).reshape(len(X), -1).squeeze(axis=1)
    if task == "regression":
        y_pred = y_pred.astype(float)
        final = task_scores("regression", y, y_pred)
        figures = {"residuals.png": _plots.residual_figure(y, y_pred)} if plots else {}
        classes = None
    else:
        proba = _proba(model, X)
        known = getattr(model, "classes_", None)
        classes = np.asarray(known) if known is not None else np.unique(y)
        if proba.shape != (len(X), len(classes)):
            raise ValidationError(f"predict_proba returned shape {proba.shape}, expected "
                                  f"({len(X)}, {len(classes)}) for classes {classes.tolist()}",
                                  field="model")
        # two classes: the binary metrics (f1 of classes[1]); more: the multiclass ones
        final = task_scores("binary" if len(classes) == 2 else "multiclass", y, y_pred, proba, classes)
        figures = {}
        if plots:
            roc, pr = _plots.roc_pr_figures(y, proba, labels=list(classes))
            shown = with_unseen_classes(y, proba, classes)[1]  # a class unseen in training has a row too
            figures = {"confusion_matrix.png": _plots.confusion_matrix_figure(y, y_pred, labels=list(shown)),
                       "roc_curve.png": roc, "pr_curve.png": pr}
    if not plots:
        return {k: float(v) for k, v in final.items()}, y_pred, figures, None
    check()
    names, values, errors, method, label = _importance(model, task, X, y, classes, check)
    figures["feature_importance.png"] = _plots.feature_importance_figure(
        names, values, errors=errors, xlabel=label, title=f"Feature importance: {method}")
    importance = {"method": method, "unit": label,
                  "importances": dict(zip(names, map(float, values), strict=True))}
    return {k: float(v) for k, v in final.items()}, y_pred, figures, importance


class _Predictor:
    """Lets permutation_importance (which insists on a ``fit`` method) score any predictor."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, X: Any, y: Any = None) -> _Predictor:  # noqa: ARG002 - never called: it is fitted
        return self


def _importance(model: Any, task: Task, X: pd.DataFrame, y: np.ndarray, classes: Any,
                check: Callable[[], None] = _not_cancelled,
                ) -> tuple[list[str], np.ndarray, np.ndarray | None, str, str]:
    """The model's own importances (or |coef_|) when they match the columns, else permutation."""
    names = [str(c) for c in X.columns]
    for attr, label in (("feature_importances_", "importance"),
                        ("coef_", "|coefficient| (depends on feature scale)")):
        try:
            raw = getattr(model, attr, None)
        except Exception:  # noqa: BLE001 - some estimators raise on unfitted attributes
            raw = None
        if raw is not None:
            values = np.abs(_array(raw).astype(float))
            values = values.reshape(-1, values.shape[-1]).mean(axis=0) if values.ndim else values
            if values.size == len(names):
                return names, values, None, attr, label
    if len(X) > PERMUTATION_MAX_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(len(X), PERMUTATION_MAX_ROWS, replace=False))
        X, y = X.iloc[rows], y[rows]
    split = _columnwise_split(model, X)
    if split is not None:  # permute the transformed columns: same numbers, no re-transforming
        model, X, order = split
    if task == "classification":
        def score(est: _Predictor, X_: pd.DataFrame, y_: np.ndarray) -> float:
            check()
            return -log_loss(y_, *with_unseen_classes(y_, _proba(est.model, X_), classes))
        label = "mean increase in log loss when shuffled"
    else:
        def score(est: _Predictor, X_: pd.DataFrame, y_: np.ndarray) -> float:
            check()
            pred = _array(est.model.predict(X_)).astype(float).reshape(-1)
            return -skm.root_mean_squared_error(y_, pred)
        label = "mean increase in RMSE when shuffled"
    result = permutation_importance(_Predictor(model), X, y, scoring=score, n_repeats=3,
                                    random_state=0)
    means, stds = result.importances_mean, result.importances_std
    if split is not None:
        means, stds = means[order], stds[order]
    return names, means, stds, "permutation", label


_COLUMNWISE = ("OrdinalEncoder", "StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")


def _is_columnwise(step: Any) -> bool:
    """Each output column is a function of one input column (row by row), so shuffling an
    input column shuffles exactly its output column."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    if isinstance(step, str):
        return step in ("passthrough", "drop")
    if isinstance(step, Pipeline):
        return all(_is_columnwise(s) for _, s in step.steps)
    if isinstance(step, ColumnTransformer):
        return all(_is_columnwise(t) for _, t, _ in step.transformers_)
    if isinstance(step, SimpleImputer):
        return not step.add_indicator
    return type(step).__name__ in _COLUMNWISE and type(step).__module__.startswith("sklearn.")


def _columnwise_split(model: Any, X: pd.DataFrame) -> tuple[Any, np.ndarray, np.ndarray] | None:
    """(final estimator, transformed rows, input order of the transformed columns) for a
    scikit-learn Pipeline whose preprocessing maps each input column to one output column;
    None for anything else.

    Why: permutation importance predicts n_columns x repeats times, and a Pipeline re-runs
    its preprocessing (pandas column selection, encoders) on every call -- a third of the
    time for a gradient-boosting Pipeline. Shuffling the transformed column is the same
    experiment, and the same shuffles are drawn either way (one seed per column).
    """
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        return None
    prep, final = model[:-1], model.steps[-1][1]
    if not _is_columnwise(prep):
        return None
    try:
        names_out = [str(n) for n in prep.get_feature_names_out()]
        transformed = prep.transform(X)
    except Exception:  # noqa: BLE001 - any doubt: the plain path below is always right
        return None
    names = [str(c) for c in X.columns]
    if sorted(names_out) != sorted(names) or not isinstance(transformed, np.ndarray):
        return None
    position = {name: j for j, name in enumerate(names_out)}
    return final, transformed, np.array([position[n] for n in names])


# -- writing ------------------------------------------------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _log_batches(client: MlflowClient, run_id: str, *, params: Sequence[Param] = (),
                 metrics: Sequence[Metric] = ()) -> None:
    """log_batch in chunks under MLflow's request limits; synchronous whatever the env says."""
    for i in range(0, len(params), _BATCH_PARAMS):
        client.log_batch(run_id, params=list(params[i : i + _BATCH_PARAMS]), synchronous=True)
    for i in range(0, len(metrics), _BATCH_METRICS):
        client.log_batch(run_id, metrics=list(metrics[i : i + _BATCH_METRICS]), synchronous=True)


def _files(figures: Mapping[str, Any], documents: Mapping[str, Any],
           check: Callable[[], None] = _not_cancelled) -> dict[str, bytes]:
    """Figures as PNG and documents as JSON, by file name (``check()`` before each figure)."""
    files = {}
    for name, figure in figures.items():
        check()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        figure.clear()  # frees the artists now (off-pyplot figures have nothing to close)
        files[name] = buffer.getvalue()
    for name, document in documents.items():
        files[name] = json.dumps(document, indent=2, default=str).encode()
    return files


def _upload(client: MlflowClient, run_id: str, files: Mapping[str, bytes]) -> list[str]:
    """Write every file into one temp folder and upload it in one call; return the names."""
    with tempfile.TemporaryDirectory(prefix="raymlops-run-") as tmp:
        for name, content in files.items():
            (Path(tmp) / name).write_bytes(content)
        client.log_artifacts(run_id, tmp)
    return sorted(files)


def _end_failed(client: MlflowClient, run_id: str, exc: BaseException) -> None:
    """Best effort, so the caller sees the original error rather than a follow-up store error."""
    message = f"{type(exc).__name__}: {exc}"[:MAX_TAG_VAL_LENGTH]
    for action in (
        lambda: client.set_tag(run_id, TAG_ERROR, message, synchronous=True),
        lambda: client.set_terminated(run_id, status="FAILED" if isinstance(exc, Exception)
                                      else "KILLED"),
    ):
        try:
            action()
        except Exception:  # noqa: BLE001, S110 - never mask the original error
            pass
