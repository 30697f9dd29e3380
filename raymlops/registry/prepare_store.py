"""Create (or migrate) MLflow's tracking and registry database, as a child process of ``up``.

``raymlops up`` runs this while ``ray start`` brings the head up, so the registry actor finds
the schema ready instead of creating it on ``up``'s critical path. It is a separate process
(``python -m raymlops.registry.prepare_store URI``) because a process that imported MLflow
takes 0.4-0.8 s to exit, which ``up`` would otherwise pay.
"""

from __future__ import annotations

import sys


def prepare(tracking_uri: str) -> None:
    """Open the store the way the registry does; MLflow creates or upgrades the schema."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri, tracking_uri).search_registered_models(max_results=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m raymlops.registry.prepare_store TRACKING_URI")
    prepare(sys.argv[1])
