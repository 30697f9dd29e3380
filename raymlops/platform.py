"""The platform's named actors: what exists, and the one that holds the platform's settings.

Every later component (model registry, feature store, monitor, continuous training) registers
an :class:`ActorSpec` here; ``raymlops up`` / ``raymlops.init()`` get-or-create every spec as a
named, detached actor in the platform namespace, so any driver (a job, the CLI, a notebook)
finds the same ones. Specs name their class by import path so this module imports nothing heavy.

``PlatformInfo`` is the first of them: it keeps the settings the platform was brought up with.
A job or notebook that attaches reads them from it, so every driver uses the same storage root
and tracking URI even if its own environment says otherwise.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any

from raymlops._version import __version__

__all__ = ["ACTOR_PREFIX", "HEAD_PINNED", "PLATFORM_INFO_ACTOR", "ActorSpec", "PlatformInfo",
           "live_platform_actors", "platform_actor_specs", "register_actor"]

PLATFORM_INFO_ACTOR = "raymlops-platform"
# Every actor the platform creates is named with this prefix, the declared ones below and the
# ones made per use (warm scoring pools, metrics, alerts): `down` finds them all by it.
ACTOR_PREFIX = "raymlops-"


@dataclass(frozen=True)
class ActorSpec:
    """How to create one platform actor. ``options`` go to ``ActorClass.options``."""

    name: str
    import_path: str  # "package.module:ClassName"; the class is decorated with nothing
    description: str
    options: dict[str, Any] = field(default_factory=dict)
    # Created when first needed (``cluster.platform_actor``), not by ``up``: e.g. the CT
    # service, which costs a process only once someone starts continuous training.
    on_demand: bool = False

    def load_class(self) -> type:
        module_name, _, attr = self.import_path.partition(":")
        return getattr(importlib.import_module(module_name), attr)


# Every platform actor runs on the head node, and a restarted one comes back there: the head
# is the node a cluster never loses to scale-down (a worker holding only zero-CPU actors looks
# idle to the autoscaler), and it is where the head-local state lives (the online log, the
# alert history). "node:__internal_head__" is the resource Ray gives the head only.
HEAD_PINNED: dict[str, Any] = {"resources": {"node:__internal_head__": 0.001},
                               "scheduling_strategy": "DEFAULT"}


_SPECS: dict[str, ActorSpec] = {}


def register_actor(spec: ActorSpec) -> None:
    """Add (or replace) a platform actor; components call this at import time."""
    _SPECS[spec.name] = spec


def live_platform_actors(namespace: str) -> list[str]:
    """Names of the platform's live actors in ``namespace`` (the connected cluster's)."""
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == namespace and a["name"].startswith(ACTOR_PREFIX))


def platform_actor_specs() -> list[ActorSpec]:
    """All platform actors in creation order (``PlatformInfo`` first: others may read it)."""
    return list(_SPECS.values())


class PlatformInfo:
    """Holds the settings the platform runs with; cheap, no resources, restarted on failure.

    Its state is rebuilt from its constructor argument on restart, which Ray replays, so a
    killed ``PlatformInfo`` comes back with the same settings.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self._settings = dict(settings)
        self._started_at = time.time()

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def info(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "started_at": self._started_at,
            "storage_root": self._settings.get("storage_root"),
            "tracking_uri": self._settings.get("tracking_uri"),
        }

    def ping(self) -> str:
        return "ok"


register_actor(
    ActorSpec(
        name=PLATFORM_INFO_ACTOR,
        import_path="raymlops.platform:PlatformInfo",
        description="settings every driver of this platform shares",
        options={"num_cpus": 0},
    )
)

register_actor(
    ActorSpec(
        name="raymlops-registry",
        import_path="raymlops.registry.actor:ModelRegistry",
        description="model registry: versions, aliases, lineage (MLflow on SQL)",
        options={"num_cpus": 0, "max_concurrency": 64},
    )
)

register_actor(
    ActorSpec(
        name="raymlops-features",
        import_path="raymlops.features.actor:FeatureStore",
        description="feature store: definitions, offline/online stores, materialization",
        options={"num_cpus": 0, "max_concurrency": 16},
    )
)

register_actor(
    ActorSpec(
        name="raymlops-ct",
        import_path="raymlops.training.ct_service:CTService",
        description="continuous-training service: checks specs for newly labelled periods",
        options={"num_cpus": 0, "max_concurrency": 16},
        on_demand=True,
    )
)
