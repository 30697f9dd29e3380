"""The search's trial writer: which trial it evaluates ahead of the search's end, and when.

No Ray cluster: Tune's trials are stand-ins with the attributes the callback reads, and the
MLflow write and the evaluation are replaced by recorders.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from raymlops.training import automl


@dataclass
class FakeTrial:
    trial_id: str
    auc: float
    status: str = "RUNNING"
    config: dict[str, Any] = field(default_factory=lambda: {"family": "logreg", "C": 1.0})

    @property
    def last_result(self) -> dict[str, float]:
        return {"roc_auc": self.auc}

    @property
    def checkpoint(self) -> str:
        return f"ckpt-{self.trial_id}"


@pytest.fixture
def writer(monkeypatch):
    evaluated: list[str] = []
    release = threading.Event()

    def evaluate(self, checkpoint, cancelled):
        if checkpoint == "ckpt-t2":  # t2's evaluation runs until the test releases it
            release.wait(5)
        if cancelled():
            evaluated.append(f"cancelled {checkpoint}")
            raise RuntimeError("cancelled")
        evaluated.append(checkpoint)
        return f"model-of-{checkpoint}", {"roc_curve.png": b"png"}

    monkeypatch.setattr(automl._MlflowTrials, "_log", lambda self, trial: self.runs.update({trial.trial_id: "run"}))
    monkeypatch.setattr(automl._MlflowTrials, "_evaluate", evaluate)
    trials = automl._MlflowTrials(None, "exp", lambda: "parent-run", None, None, {}, num_samples=4, concurrency=2)
    yield trials, evaluated, release
    release.set()
    trials.close()


def _finish(trial: FakeTrial, trials: list[FakeTrial], writer: automl._MlflowTrials) -> None:
    trial.status = "TERMINATED"
    writer.log(trial, trials)


def test_the_best_so_far_is_evaluated_once_no_trial_is_left_to_start_and_a_core_idles(writer):
    trials_writer, evaluated, release = writer
    t1, t2, t3, t4 = (FakeTrial("t1", 0.60), FakeTrial("t2", 0.70), FakeTrial("t3", 0.65), FakeTrial("t4", 0.0))
    _finish(t1, [t1, t2, t3], trials_writer)  # a trial is still to be started
    _finish(t2, [t1, t2, t3, t4], trials_writer)  # all started, but t3 and t4 keep both cores busy
    assert trials_writer._ahead == {}
    _finish(t3, [t1, t2, t3, t4], trials_writer)  # only t4 runs: a core idles
    assert list(trials_writer._ahead) == ["t2"]
    release.set()
    future = trials_writer.evaluation("t2", t2.checkpoint)  # the winner did not change: reused
    assert future.result() == ("model-of-ckpt-t2", {"roc_curve.png": b"png"})
    assert evaluated == ["ckpt-t2"]
    trials_writer.drain()
    assert set(trials_writer.runs) == {"t1", "t2", "t3"} and trials_writer.parent == "parent-run"


def test_a_new_winner_after_the_evaluation_ahead_is_evaluated_as_it_finishes(writer):
    trials_writer, evaluated, release = writer
    t1, t2, t3 = FakeTrial("t1", 0.60), FakeTrial("t2", 0.62), FakeTrial("t3", 0.0)
    t4 = FakeTrial("t4", 0.0)
    _finish(t1, [t1, t2, t3, t4], trials_writer)
    _finish(t2, [t1, t2, t3, t4], trials_writer)  # t3 and t4 still run: no core idles yet
    _finish(t3, [t1, t2, t3, t4], trials_writer)
    t4.auc = 0.9
    _finish(t4, [t1, t2, t3, t4], trials_writer)  # the new winner is evaluated at once
    assert list(trials_writer._ahead) == ["t2", "t4"]
    # ...without queueing behind t2's, which is still running
    assert trials_writer.evaluation("t4", t4.checkpoint).result(timeout=5)[0] == "model-of-ckpt-t4"
    assert evaluated == ["ckpt-t4"]
    release.set()  # t2's evaluation was told to stop when t4 beat it
    trials_writer._ahead["t2"][0].exception(timeout=5)
    assert evaluated == ["ckpt-t4", "cancelled ckpt-t2"]


def test_the_parent_run_opens_on_the_writer_thread_before_any_trial_is_logged(monkeypatch):
    order: list[str] = []
    monkeypatch.setattr(automl._MlflowTrials, "_log", lambda self, trial: order.append(f"log {self.parent}"))

    def open_parent() -> str:
        order.append(threading.current_thread().name.split("_")[0])
        return "p-1"

    trials = automl._MlflowTrials(None, "exp", open_parent, None, None, {}, num_samples=2, concurrency=2)
    trials.log(FakeTrial("t1", 0.6, status="TERMINATED"))
    trials.drain()
    trials.close()
    assert order == ["raymlops-trial-log", "log p-1"] and trials.parent == "p-1"


def test_preloading_the_search_driver_opens_the_store_and_never_raises(tmp_path, monkeypatch):
    import sys

    from raymlops.config import load_settings

    settings = load_settings(storage_root=tmp_path / "root")
    automl.preload_search_driver(settings).join(timeout=60)
    assert "raymlops.training.tracking" in sys.modules and "skops.io" in sys.modules
    assert any(tmp_path.rglob("*.db"))  # MLflow's SQLite store exists (tables made once)

    def broken(settings):
        raise RuntimeError("store unreachable")

    monkeypatch.setattr(sys.modules["raymlops.training.tracking"], "tracking_client", broken)
    escaped: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    thread = automl.preload_search_driver(settings)  # logs at debug level, raises nothing
    thread.join(timeout=60)
    assert not thread.is_alive() and escaped == []
