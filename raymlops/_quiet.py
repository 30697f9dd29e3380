"""Keep long CLI runs readable: libraries' INFO chatter off, our own progress and summary on.

Ray Tune prints a configuration box and checkpoint-sync advice per search, Serve and Ray Data
log every deployment and dataset at INFO, Optuna announces every study. In ``raymlops demo``
and ``raymlops train`` that buries the lines a person should read; warnings and errors still
come through.
"""

from __future__ import annotations

import logging
import os

__all__ = ["quiet_libraries"]


def quiet_libraries() -> None:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    # Ray Data configures its loggers when it is first imported (which may be after this
    # call) and sets "ray.data" back to INFO unless this variable says otherwise.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    for name in ("ray", "ray.serve", "ray.data", "ray.tune", "ray.train", "optuna", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:  # pragma: no cover - optuna is a dependency
        pass
