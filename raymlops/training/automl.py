"""AutoML on Ray Tune: model families x hyperparameters, TPE + ASHA, every trial in MLflow.

- **Search**: Optuna's TPE through Tune's ``OptunaSearch`` over a define-by-run space (the
  family first, then only its parameters), seeded with known-good configurations (continuous
  training warm-starts from the champion's). A configuration that already finished is not
  trained again: the repeat is answered from its score (:mod:`raymlops.training.searcher`).
- **Objective**: the config's task (binary, multiclass, regression) picks the families that
  apply and the metric (default roc_auc, log_loss, rmse); the metric's direction
  (:mod:`raymlops.training.objectives`) is Tune's ``mode``, so a loss is minimised and a
  score maximised everywhere a trial is ranked. Trials report every metric of the task.
- **Early stopping**: ASHA on that validation metric, judged per step (boosting iterations,
  trees, epochs); the linear models are a single step.
- **Resources**: each trial declares them; torch trials ask for a GPU fraction when the
  cluster has GPUs (Ray sets ``CUDA_VISIBLE_DEVICES``), the others run on CPUs.
- **Tracking**: the search is a parent MLflow run; a driver-side Tune callback logs each
  finished trial as a nested run through the tracking helper (params, per-step scores,
  signature), from the scores the trial computed and kept in its last checkpoint -- the model
  is not loaded back, and early-stopped trials are recorded too. The winner's run gets the
  figures and feature importance, computed while the last trial still runs when possible.
- **Fault tolerance**: each step checkpoints the model (skops / state_dict, never pickle), a
  failed trial is retried from it (``max_failures``), and an interrupted search resumes with
  :func:`resume_search` (``Tuner.restore``).
- **Result**: the best trial's model is registered with lineage (MLflow run, data window,
  feature-view versions, every validation score of the best trial, parent version) and gets
  the ``challenger`` alias.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from raymlops.config import Settings
from raymlops.exceptions import ValidationError
from raymlops.training.families import FAMILIES, TrainData, families_for
from raymlops.training.objectives import (
    Task,
    check_metric,
    default_families,
    default_metric,
    direction,
    is_better,
    registry_task,
)

__all__ = ["SearchConfig", "SearchResult", "TuneOptions", "preload_search_driver", "resume_search",
           "run_search"]


class TuneOptions(BaseModel):
    """How a search runs on Tune (scheduler, resources, retries, where it is recorded): the
    part of a search that a training spec's ``search`` section sets as it is."""

    model_config = ConfigDict(extra="forbid")

    grace_period: int = Field(3, ge=1, description="ASHA: steps before a trial may be stopped.")
    reduction_factor: int = Field(3, ge=2, description="ASHA: keep 1/reduction_factor per rung.")
    max_concurrent: int | None = Field(None, ge=1, description="Trials at once (default: CPUs).")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs each trial reserves.")
    gpus_per_torch_trial: float = Field(0.5, ge=0, description="GPU share of a torch trial when the cluster has GPUs.")
    max_failures: int = Field(2, ge=0, description="Retries of a failed trial, from its checkpoint.")
    seed: int = Field(0, description="Seed of the searcher and the models.")
    experiment: str = Field("raymlops-automl", description="MLflow experiment of the search.")
    alias: str = Field("challenger", description="Alias the best version gets.")


class SearchConfig(TuneOptions):
    """What to search: the model, its task and metric, the families and the budget."""

    name: str = Field(description="Registered model name the best trial is registered under.")
    task: Task = Field("binary", description="What the label is: binary, multiclass or regression.")
    metric: str | None = Field(None, description="Validation metric that ranks trials, in its own direction "
                                                 "(default: roc_auc, log_loss or rmse by task).")
    families: list[str] | None = Field(None, description="Model families to search (default, or empty: every "
                                                         "family of the task).")
    num_samples: int = Field(20, ge=1, description="Trials in the search.")
    max_steps: int = Field(8, ge=1, description="Steps of an iterative trial (x25 trees/iterations, or epochs).")
    register_best: bool = Field(True, description="Register the best trial's model.")
    refit: bool = Field(True, description="Register the best configuration refit on train + validation rows "
                                          "(its held-out scores are the trial's); else the trial's own model.")
    warm_start: list[dict[str, Any]] = Field(default_factory=list, description="Configurations to evaluate first.")

    @model_validator(mode="after")
    def _task_defaults(self) -> SearchConfig:
        """Fill what the task implies, so the config records what the search really used
        (the parent run's params); never raises: :meth:`check` names what is wrong."""
        if self.metric is None:
            self.metric = default_metric(self.task)
        if not self.families:
            self.families = list(default_families(self.task))
        return self

    @property
    def search_metric(self) -> str:
        """The metric that ranks trials (the task's default when none was given)."""
        return self.metric or default_metric(self.task)

    @property
    def search_families(self) -> list[str]:
        """The families searched (every family of the task when none were given)."""
        return list(self.families or default_families(self.task))

    def check(self) -> None:
        """The metric judges this task and every family learns it (ValidationError naming
        the field and what would be valid)."""
        check_metric(self.task, self.search_metric)
        valid = families_for(self.task)
        wrong = [f for f in self.search_families if f not in valid]
        if wrong:
            unknown = [f for f in wrong if f not in FAMILIES]
            what = (f"unknown model families {unknown}" if unknown
                    else f"model families {wrong} do not learn a {self.task} task")
            raise ValidationError(f"{what}; use some of {list(valid)}", field="families")


@dataclass
class SearchResult:
    """The search's outcome; ``version`` is the registered one (None if not registered)."""

    name: str
    best_config: dict[str, Any]
    metric: str  # the metric that ranked the trials
    best_metric: float  # its value for the best trial (on the validation rows)
    parent_run_id: str
    best_run_id: str | None
    trials: int
    stopped_early: int
    wall_s: float
    path: str
    version: dict[str, Any] | None = None
    trial_runs: dict[str, str] = field(default_factory=dict)
    best_model: Any = None  # the best trial's own model (never saw the validation rows)
    repeats_answered: int = 0  # suggestions of finished configurations, answered, not trained

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.pop("trial_runs")
        out.pop("best_model")
        return out


# -- the trial (runs in a Tune worker) -------------------------------------------------------


EXAMPLE_ROWS = 5  # rows of the input example (and its predictions) a trial's run records


def _save(model: Any, family: str, step: int, metrics: list[dict[str, float]], folder: Path,
          scores: dict[str, float], example_predictions: list[Any], task: Task = "binary") -> None:
    """The model (skops / state_dict) and what the trial's MLflow run needs without it:
    per-step metrics, this step's validation scores, the predictions of the example rows,
    the model's class."""
    from raymlops.registry.formats import serialize

    data, meta = serialize(model, task=registry_task(task))
    (folder / "model.bin").write_bytes(data)
    (folder / "meta.json").write_text(meta.to_json())
    (folder / "state.json").write_text(json.dumps({
        "family": family, "step": step, "metrics": metrics, "scores": scores,
        "example_predictions": example_predictions,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}"}))


@contextmanager
def checkpoint_folder(checkpoint: Any) -> Iterator[str]:
    """A local folder holding ``checkpoint``'s files, for as long as the block runs.

    A checkpoint on the local disk is read in place. One in S3 (trials on other nodes) is
    downloaded into a folder of this call's own: Ray's ``Checkpoint.as_directory`` picks
    the same temporary folder for every caller in a process, so two threads reading one
    checkpoint (the evaluation started ahead and the final one) deleted it under each
    other."""
    import pyarrow.fs as pafs

    if isinstance(checkpoint.filesystem, pafs.LocalFileSystem):
        yield checkpoint.path
        return
    with tempfile.TemporaryDirectory(prefix="raymlops-checkpoint-") as tmp:
        yield checkpoint.to_directory(tmp)


def read_state(folder: str | Path) -> dict[str, Any]:
    """A trial checkpoint's state (family, step, per-step scores, ...), without the model."""
    return json.loads((Path(folder) / "state.json").read_text())


def load_checkpoint(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """(model, state) from a trial checkpoint: digest-checked, skops/state_dict only."""
    from raymlops.registry.formats import ArtifactMeta, deserialize

    folder = Path(folder)
    meta = ArtifactMeta.from_json((folder / "meta.json").read_text())
    model = deserialize((folder / "model.bin").read_bytes(), meta)
    return model, read_state(folder)


def _trial(config: dict[str, Any], data: TrainData = None, max_steps_: int = 8, seed: int = 0) -> None:  # type: ignore[assignment]
    import ray
    from ray import tune
    from threadpoolctl import threadpool_limits

    from raymlops.training.families import max_steps, train_steps, validation_scores

    family = config["family"]
    params = {k: v for k, v in config.items() if k != "family"}
    start_model, start_step, history = None, 0, []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a retried trial: continue after the last finished step
        with checkpoint_folder(checkpoint) as folder:
            start_model, state = load_checkpoint(folder)
        start_step, history = int(state["step"]), list(state["metrics"])
    total = max_steps(family, max_steps_)
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    with threadpool_limits(limits=max(1, int(cpus))):
        for step, model, extra in train_steps(family, params, data, max_steps_, seed=seed,
                                              start_model=start_model, start_step=start_step):
            scores, predicted = validation_scores(model, family, data)
            history.append({**scores, **extra})
            with tempfile.TemporaryDirectory() as tmp:
                _save(model, family, step, history, Path(tmp), scores, predicted[:EXAMPLE_ROWS].tolist(),
                      data.task)
                tune.report({**scores, "step": step, "resumed_from": start_step,
                             "done_steps": total, "gpus": float(len(ray.get_gpu_ids())), **extra},
                            checkpoint=tune.Checkpoint.from_directory(tmp))


# -- driver side ----------------------------------------------------------------------------


class _TrialCallback:
    """Adapter to Tune's Callback interface (built lazily: Tune is imported only when used)."""

    @staticmethod
    def create(owner: _MlflowTrials) -> Any:
        from ray.tune import Callback

        class MlflowTrialCallback(Callback):
            def on_trial_complete(self, iteration: int, trials: list, trial: Any,  # noqa: ARG002
                                  **info: Any) -> None:  # noqa: ARG002 - Tune's signature
                owner.log(trial, trials)

            def __reduce__(self) -> Any:  # Tune pickles callbacks with its state: keep none
                return (_NullCallback.create, ())

        return MlflowTrialCallback()


class _NullCallback:
    @staticmethod
    def create() -> Any:
        from ray.tune import Callback

        return Callback()


@dataclass(frozen=True)
class _FinishedTrial:
    """What the writer needs of a finished trial (Tune's Trial object keeps changing)."""

    trial_id: str
    config: dict[str, Any]
    checkpoint: Any
    last_result: dict[str, Any]

    def score(self, metric: str) -> float | None:
        """The trial's last value of ``metric`` (None when it reported none)."""
        value = self.last_result.get(metric)
        return None if value is None else float(value)


class _MlflowTrials:
    """Tune callback: log each finished trial as a nested MLflow run via the tracking helper.

    Logging runs on one background thread: Tune calls ``on_trial_complete`` from its control
    loop, and a synchronous MLflow write there (~0.1-0.3 s on SQLite) held up the next trial's
    start every time. The run is written from the trial's own scores (its checkpoint's
    state.json), never by loading the model back. The search's parent run is opened on that
    thread just before the first trial is logged, so it does not compete with Tune's start.
    ``drain()`` waits for every queued trial.

    The best trial's figures and feature importance (seconds of work) are computed ahead:
    once no trial is left to start and a core has gone idle, the best finished trial so far is
    evaluated on a second thread while the last trials run, and again for each trial that
    beats it from then on (the last trial often does: its evaluation then overlaps Tune's
    teardown); the search's end uses the winner's (see :meth:`evaluation`).
    """

    def __init__(self, settings: Settings, experiment: str, open_parent: Callable[[], str], data: TrainData,
                 data_window: tuple[str, str] | None, feature_views: dict[str, int], *,
                 num_samples: int | None = None, concurrency: int = 1, metric: str = "roc_auc") -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.callback = _TrialCallback.create(self)
        self.settings, self.experiment, self.metric = settings, experiment, metric
        self.data, self.window, self.views = data, data_window, feature_views
        self.num_samples, self.concurrency = num_samples, concurrency
        self.runs: dict[str, str] = {}
        self.on_trial: Any = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raymlops-trial-log")
        # Two: a new winner's evaluation must not queue behind a running one for an older
        # winner (the search ends on whoever finished last; by then both cores are free).
        self._evaluator = ThreadPoolExecutor(max_workers=2, thread_name_prefix="raymlops-best-eval")
        self._open_parent = open_parent
        self._parent: Any = None  # future of the parent run's id, once asked for
        self._pending: list[Any] = []
        self._best: _FinishedTrial | None = None  # best finished trial so far
        self._ahead: dict[str, tuple[Any, threading.Event]] = {}  # trial_id -> (future, cancel)
        self._tail = False  # every trial has started and a core has gone idle

    @property
    def parent(self) -> str:
        """The parent run's id (waits for the writer thread to have opened it)."""
        return self._opening_parent().result()

    def _opening_parent(self) -> Any:
        """Open the parent run on the writer thread, once: when the first trial is logged,
        so it does not compete for the driver with Tune's start."""
        if self._parent is None:
            self._parent = self._writer.submit(self._open_parent)
        return self._parent

    def log(self, trial: Any, trials: list | None = None) -> None:
        """Queue a finished trial (Tune's loop goes on at once)."""
        snapshot = _FinishedTrial(trial.trial_id, dict(trial.config), trial.checkpoint,
                                  dict(getattr(trial, "last_result", None) or {}))
        if snapshot.checkpoint is not None and is_better(
                snapshot.score(self.metric), self._best.score(self.metric) if self._best else None, self.metric):
            self._best = snapshot
        self._opening_parent()
        self._pending.append(self._writer.submit(self._log_and_tell, snapshot))
        if trials is not None and not self._tail:
            self._tail = self._last_trials_running(trials, trial)
        best = self._best
        if self._tail and best is not None and best.trial_id not in self._ahead:
            for _, cancel in self._ahead.values():
                cancel.set()  # an older winner's evaluation is moot: stop it taking a core
            self._submit_evaluation(best.trial_id, best.checkpoint)

    def _submit_evaluation(self, trial_id: str, checkpoint: Any) -> Any:
        cancel = threading.Event()
        future = self._evaluator.submit(self._evaluate, checkpoint, cancel.is_set)
        self._ahead[trial_id] = (future, cancel)
        return future

    def _last_trials_running(self, trials: list, finished: Any) -> bool:
        """Every trial has been started and fewer run than the search's concurrency."""
        if self.num_samples is None or len(trials) < self.num_samples:
            return False
        running = sum(1 for t in trials if t is not finished and t.status not in ("TERMINATED", "ERROR"))
        return running < self.concurrency

    def _evaluate(self, checkpoint: Any, cancelled: Any) -> tuple[Any, dict[str, bytes]]:
        from raymlops.training.tracking import evaluation_files

        with checkpoint_folder(checkpoint) as folder:
            model, state = load_checkpoint(folder)
        cols = self.data.columns_for(state["family"])
        return model, evaluation_files(model, task=registry_task(self.data.task), X_valid=self.data.X_valid[cols],
                                       y_valid=self.data.y_valid, cancelled=cancelled)

    def evaluation(self, trial_id: str, checkpoint: Any) -> Any:
        """A future of (model, evaluation files) for the search's winner: the one computed
        ahead when the winner is that trial, else one started now (beside the drain)."""
        ahead = self._ahead.get(trial_id)
        if ahead is None or ahead[1].is_set():
            return self._submit_evaluation(trial_id, checkpoint)
        return ahead[0]

    def _log_and_tell(self, trial: _FinishedTrial) -> None:
        self._log(trial)
        if self.on_trial is not None:
            self.on_trial(len(self.runs), trial)

    def drain(self) -> None:
        """Wait for every queued trial to be logged; a failed write raises here."""
        pending, self._pending = self._pending, []
        try:
            for future in pending:
                future.result()
        finally:
            self._writer.shutdown(wait=True)

    def close(self) -> None:
        """Stop the threads (errors are not raised: the search failed, or its result is
        complete); an evaluation of a trial that did not win is not waited for."""
        self._writer.shutdown(wait=True)
        self._evaluator.shutdown(wait=False, cancel_futures=True)

    def abandon(self, client: Any) -> None:
        """The search failed or was interrupted: stop the threads and end the parent run FAILED
        if it was opened. Never raises, so the search's own error (or the SystemExit of a
        worker being stopped) is what the caller sees -- a cleanup error in its place would
        read as an ordinary training failure."""
        parent = self._parent
        self.close()
        if parent is None:
            return
        try:
            client.set_terminated(parent.result(timeout=30), status="FAILED")
        except Exception:
            logging.getLogger(__name__).debug("could not end the search's parent run", exc_info=True)

    def _log(self, trial: _FinishedTrial) -> None:
        from raymlops.training.tracking import Scored, log_training_run

        ckpt = trial.checkpoint
        if ckpt is None or trial.trial_id in self.runs:
            return
        with checkpoint_folder(ckpt) as folder:
            state = read_state(folder)
        family, history = state["family"], state["metrics"]
        run = log_training_run(
            self.settings, experiment=self.experiment, model=None, task=registry_task(self.data.task),
            X_valid=self.data.X_valid[self.data.columns_for(family)], y_valid=self.data.y_valid,
            scored=Scored(state["scores"], state["example_predictions"], state["model_class"]),
            params=dict(trial.config), step_metrics=history, data_window=self.window, plots=False,
            feature_views=self.views, parent_run_id=self.parent, run_name=f"trial-{trial.trial_id}",
            input_example_rows=EXAMPLE_ROWS,
            tags={"raymlops.trial_id": trial.trial_id, "raymlops.family": family,
                  "raymlops.steps": str(state["step"])},
        )
        self.runs[trial.trial_id] = run.run_id


class _Space:
    """The define-by-run space; a module-level class because Tune pickles the searcher."""

    def __init__(self, families: list[str]) -> None:
        self.families = list(families)

    def __call__(self, trial: Any) -> dict[str, Any]:
        from raymlops.training.families import suggest

        return suggest(trial, self.families)


def _resources(config: SearchConfig) -> Any:
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)

    def per_trial(trial_config: dict[str, Any]) -> dict[str, float]:
        if trial_config.get("family") == "mlp" and gpus and config.gpus_per_torch_trial:
            return {"CPU": config.cpus_per_trial, "GPU": config.gpus_per_torch_trial}
        return {"CPU": config.cpus_per_trial}

    return per_trial


def _result_loggers() -> list[Any]:
    """Tune's CSV and JSON result files: ``ExperimentAnalysis`` and ``Tuner.restore`` read them."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return [CSVLoggerCallback(), JsonLoggerCallback()]


@contextmanager
def _no_default_loggers() -> Iterator[None]:
    """Stop Tune from adding its default loggers while a search starts.

    Why: the default set includes a TensorBoardX logger, and importing tensorboardX imports
    torch in the driver: 2.1 s of every search's start on this machine, for event files
    nobody reads (MLflow has every trial). The CSV and JSON loggers are passed explicitly.
    """
    key = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
    before = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def stopped_early(result: dict[str, Any]) -> bool:
    """A trial's last result is from before its last step: the scheduler (ASHA) stopped it."""
    return result.get("step", 0) < result.get("done_steps", 0)


def _trainable(config: SearchConfig, data: TrainData) -> Any:
    from ray import tune

    return tune.with_resources(
        tune.with_parameters(_trial, data=data, max_steps_=config.max_steps, seed=config.seed),
        _resources(config),
    )


def preload_search_driver(settings: Settings) -> threading.Thread:
    """Load what a search's driver will need, on a background thread, and return it.

    Why: the first search in a process imports MLflow (0.5 s), matplotlib (0.4 s) and skops
    (0.5 s) and opens MLflow's SQL store (0.5-1.5 s) -- inside the search, where that work
    competes with the first trials for the cores and with Tune's loop for the GIL (tune_bench:
    0.40 s of overhead per trial for a search that pays it, 0.22-0.28 s for searches that do
    not). Callers start this before retrieving features, which mostly waits on the cluster,
    so the loading overlaps with it. Nothing here is required: a search works without it,
    and a failure here only leaves the work to the search (logged at debug level).
    """
    def load() -> None:
        try:
            import matplotlib.backends.backend_agg  # noqa: F401 - the winner's figures

            from raymlops.registry.formats import import_skops
            from raymlops.training.tracking import tracking_client

            import_skops()
            tracking_client(settings).search_experiments(max_results=1)
        except Exception:  # a warm-up: the search reports real errors itself
            logging.getLogger(__name__).debug("preloading the search driver failed", exc_info=True)

    thread = threading.Thread(target=load, name="raymlops-preload-search", daemon=True)
    thread.start()
    return thread


def run_search(
    config: SearchConfig,
    data: TrainData,
    *,
    settings: Settings,
    data_window: tuple[str, str] | None = None,
    feature_views: dict[str, int] | None = None,
    register_kwargs: dict[str, Any] | None = None,
    parent_version: int | None = None,
    search_name: str | None = None,
    on_trial: Any = None,
    refit_data: TrainData | None = None,
) -> SearchResult:
    """Run the search on the connected cluster; register the best trial (unless told not to).

    ``on_trial(finished_count, trial)`` is called in this process as each trial ends (the
    CLI drives its progress bar with it). ``refit_data.X_train/y_train`` are the rows the
    winner is refit on before it is registered (default: train + validation rows); continuous
    training passes its window there, because its trials train on a span shifted back by the
    validation rows.
    """
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from raymlops.training.searcher import DistinctConfigs
    from raymlops.training.tracking import tracking_client

    config.check()
    started = time.perf_counter()
    search_name = search_name or f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"

    def open_parent() -> str:  # on the trial writer's thread, when the first trial ends
        from mlflow.entities import Param

        from raymlops.training.tracking import ensure_experiment, tracking_client

        client = tracking_client(settings)
        experiment = ensure_experiment(client, config.experiment, str(settings.artifact_location))
        parent = client.create_run(experiment.experiment_id, run_name=search_name, tags={
            "raymlops.search": search_name, "raymlops.model": config.name})
        client.log_batch(parent.info.run_id, params=[
            Param(key, json.dumps(value) if isinstance(value, (list, dict)) else str(value))
            for key, value in config.model_dump(exclude={"warm_start"}).items()], synchronous=True)
        return parent.info.run_id

    _check_task(config, data)
    metric, families = config.search_metric, config.search_families
    concurrent = config.max_concurrent or max(1, int(ray.cluster_resources().get("CPU", 1) // config.cpus_per_trial))
    trials = _MlflowTrials(settings, config.experiment, open_parent, data, data_window, feature_views or {},
                           num_samples=config.num_samples, concurrency=concurrent, metric=metric)
    trials.on_trial = on_trial
    searcher = DistinctConfigs(OptunaSearch(
        space=_Space(families), metric=metric, mode=direction(metric), seed=config.seed,
        points_to_evaluate=[w for w in config.warm_start if w.get("family") in families] or None,
    ), pruned_if=stopped_early)
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=config.max_steps,
                              grace_period=min(config.grace_period, config.max_steps),
                              reduction_factor=config.reduction_factor)
    tuner = tune.Tuner(
        _trainable(config, data),
        tune_config=tune.TuneConfig(metric=metric, mode=direction(metric), search_alg=searcher, scheduler=scheduler,
                                    num_samples=config.num_samples, max_concurrent_trials=concurrent,
                                    reuse_actors=True),
        run_config=tune.RunConfig(
            # Trials on other nodes sync their results to the storage root (S3 on a cluster).
            name=search_name, storage_path=settings.storage.path("tune"),
            storage_filesystem=settings.storage.filesystem,
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[trials.callback, *_result_loggers()], verbose=0,
        ),
    )
    try:
        with _no_default_loggers():
            results = tuner.fit()
    except BaseException:
        trials.abandon(tracking_client(settings))
        raise
    # Repeats of finished configurations answered from their scores instead of trained again.
    tracking_client(settings).log_metric(trials.parent, "repeats_answered", searcher.repeats_answered)
    result = _finish(config, results, trials, tracking_client(settings), trials.parent, settings, data, started,
                     settings.storage.path("tune", search_name),
                     data_window, feature_views or {}, register_kwargs or {}, parent_version, refit_data)
    result.repeats_answered = searcher.repeats_answered
    return result


def _finish(config: SearchConfig, results: Any, trials: _MlflowTrials, client: Any, parent_id: str,
            settings: Settings, data: TrainData, started: float, path: str,
            data_window: tuple[str, str] | None, feature_views: dict[str, int],
            register_kwargs: dict[str, Any], parent_version: int | None,
            refit_data: TrainData | None = None) -> SearchResult:
    from raymlops.metrics import publish

    ok = [r for r in results if r.error is None and r.checkpoint is not None]
    # The counters go to the metrics holder actor while the best trial is evaluated (the
    # first publish of a driver can wait ~1 s for that actor); joined before returning.
    publishing = threading.Thread(target=publish, name="raymlops-trials-metrics", args=(
        [("raymlops_training_trials_total", n, {"model": config.name, "status": status})
         for status, n in (("ok", len(ok)), ("error", len(results) - len(ok))) if n],))
    publishing.start()
    if not ok:
        trials.close()
        publishing.join()
        client.set_terminated(parent_id, status="FAILED")
        raise ValidationError("no trial of the search finished; see the Tune logs under " + path)
    metric = config.search_metric
    best = _best_result(ok, metric)
    stopped = sum(1 for r in ok if stopped_early(r.metrics))
    best_config = dict(best.config)
    for r in results:  # trials the callback did not see (e.g. restored searches)
        if r.checkpoint is not None and r.metrics.get("trial_id") not in trials.runs:
            trials.log(_FinishedTrial(r.metrics.get("trial_id"), dict(r.config), r.checkpoint, dict(r.metrics)))
    best_id = best.metrics.get("trial_id")
    evaluation = trials.evaluation(best_id, best.checkpoint)  # runs beside the drain
    try:
        trials.drain()
        best_model, files = evaluation.result()
    finally:
        trials.close()
    best_run = trials.runs.get(best_id)
    best_value = _value(best.metrics, metric)
    client.log_metric(parent_id, f"best_{metric}", best_value)
    client.set_tag(parent_id, "raymlops.best_config", json.dumps(best_config))
    version = None
    with checkpoint_folder(best.checkpoint) as folder:
        state = read_state(folder)
    if best_run is not None:
        from raymlops.training.tracking import log_files

        log_files(settings, best_run, files)
    if config.register_best:
        from raymlops.registry.client import RegistryClient

        family = state["family"]
        model = (_refit(family, best_config, data, int(state["step"]), config.seed, refit_data)
                 if config.refit else best_model)
        X = (refit_data if refit_data is not None else data).X_train[data.columns_for(family)]
        # every validation score of the best trial's last step (the metric among them)
        scores = {k: float(v) for k, v in (state.get("scores") or {}).items()}
        lineage = {"run_id": best_run, "data_window": list(data_window) if data_window else None,
                   "feature_views": feature_views, "parent_version": parent_version,
                   "metrics": {**scores, metric: best_value}}
        init_kwargs = getattr(model, "init_kwargs", None)
        version = RegistryClient.connect(settings).register(
            config.name, model, input_example=X.head(5), lineage=lineage, aliases=[config.alias],
            tags={"family": family, "search": Path(path).name, "config": json.dumps(best_config),
                  **(register_kwargs.get("tags") or {})},
            task=registry_task(data.task), init_kwargs=init_kwargs, training_data=X,
            check_data=(data.X_valid[data.columns_for(family)], data.y_valid),
            **{k: v for k, v in register_kwargs.items() if k != "tags"},
        )
        client.set_tag(parent_id, "raymlops.registered_version", str(version["version"]))
    client.set_terminated(parent_id, status="FINISHED")
    publishing.join()
    return SearchResult(
        name=config.name, best_config=best_config, metric=metric, best_metric=best_value,
        parent_run_id=parent_id, best_run_id=best_run, trials=len(results), stopped_early=stopped,
        wall_s=time.perf_counter() - started, path=path, version=version, trial_runs=dict(trials.runs),
        best_model=best_model,
    )


def _value(result: dict[str, Any], metric: str) -> float:
    value = result.get(metric)
    return float("nan") if value is None else float(value)


def _best_result(results: list[Any], metric: str) -> Any:
    """The result with the best value of ``metric`` in its direction; the first of equals
    (Tune's order), and the first result when none has a value."""
    best = results[0]
    for result in results[1:]:
        if is_better(result.metrics.get(metric), best.metrics.get(metric), metric):
            best = result
    return best


def _check_task(config: SearchConfig, data: TrainData) -> None:
    """The data's task is the config's: a mismatch would train classifiers on a number."""
    if data.task != config.task:
        raise ValidationError(f"the search is for a {config.task} task but its data is labelled for "
                              f"{data.task}; build TrainData with task={config.task!r}", field="task")


def _refit(family: str, config: dict[str, Any], data: TrainData, steps: int, seed: int,
           rows: TrainData | None = None) -> Any:
    """The winning configuration trained on every row of the window (train + validation,
    or ``rows.X_train`` when given), for as many steps as its trial ran: the newest rows
    matter most under drift."""
    import pandas as pd

    from raymlops.training.families import train_steps

    params = {k: v for k, v in config.items() if k != "family"}
    if rows is not None:
        full = TrainData(rows.X_train, rows.y_train, data.X_valid, data.y_valid, data.numeric, data.categorical,
                         data.task)
    else:
        full = TrainData(pd.concat([data.X_train, data.X_valid]), np.concatenate([data.y_train, data.y_valid]),
                         data.X_valid, data.y_valid, data.numeric, data.categorical, data.task)
    model = None
    for _, stepped, _ in train_steps(family, params, full, steps, seed=seed):
        model = stepped  # the last step's model is the trained one
    return model


def resume_search(path: str, config: SearchConfig, data: TrainData, *, settings: Settings,
                  **kwargs: Any) -> SearchResult:
    """Resume an interrupted search from its Tune folder (``Tuner.restore``): finished trials
    are kept, unfinished ones continue from their checkpoints."""
    from ray import tune

    from raymlops.training.tracking import ensure_experiment, tracking_client

    config.check()
    _check_task(config, data)
    filesystem = settings.storage.filesystem
    if not tune.Tuner.can_restore(path, storage_filesystem=filesystem):
        raise ValidationError(f"no resumable search at {path}", field="path")
    started = time.perf_counter()
    client = tracking_client(settings)
    experiment = ensure_experiment(client, config.experiment, str(settings.artifact_location))
    parent = client.create_run(experiment.experiment_id, run_name=f"{Path(path).name}-resumed",
                               tags={"raymlops.search": Path(path).name, "raymlops.resumed": "true"})
    trials = _MlflowTrials(settings, config.experiment, lambda: parent.info.run_id, data,
                           kwargs.get("data_window"), kwargs.get("feature_views") or {}, metric=config.search_metric)
    tuner = tune.Tuner.restore(path, trainable=_trainable(config, data), resume_errored=True,
                               storage_filesystem=filesystem)
    with _no_default_loggers():
        results = tuner.fit()
    return _finish(config, results, trials, client, parent.info.run_id, settings, data, started, path,
                   kwargs.get("data_window"), kwargs.get("feature_views") or {},
                   kwargs.get("register_kwargs") or {}, kwargs.get("parent_version"), kwargs.get("refit_data"))

