"""Warm scoring actors for batch prediction: one pool per model version, kept between jobs.

Why: a fresh scoring actor pays 2.5-6 s before its first unit (a new worker process, the
scikit-learn and skops imports, the model mapped), and a batch of a few million rows is
scored in about that time, so a job that started its own actors lost to a one-process pandas
loop. A pool's actors stay up for ``Settings.scoring_pool_idle_s`` after their last unit and
every driver finds them by name (the CLI, ``jobs/batch_predict.py``, the Python API), so the
next job of the same version starts scoring at once.

How the pieces fit:

- Each actor is named ``raymlops-scorer:<model>:<version>:<id>``, detached, in the platform's
  namespace. A job lists the live names of its version (:func:`acquire`), starts the missing
  ones and retires every other version's actors of the model: a promoted version replaces its
  pool, and one job only ever talks to actors of the version it resolved.
- Idle actors hold no CPUs. Their logical CPU is 0 and a job reserves CPUs for the actors it
  uses with a placement group that lives exactly as long as the job (:class:`Reservation`), so
  a warm pool never keeps Tune trials or Serve replicas from being scheduled while it waits.
  Actors spread over the nodes, as Ray Data's pool did.
- An actor ends itself when idle expires (a timer thread asks its own handle to exit, and the
  exit re-checks that nothing came in since), on :func:`retire_all` (``raymlops down``), or when
  a newer version gets a pool. A timeout of 0 turns pooling off: the job retires its actors
  when it ends.
- Actors never restart (``max_restarts=0``): the job that finds one dead starts another
  under a new name and scores the dead one's units again; part files are named after their
  unit, so every row still lands exactly once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["POOL_PREFIX", "PoolMember", "Reservation", "acquire", "describe_pools",
           "pool_names", "retire", "retire_all", "start_member"]

POOL_PREFIX = "raymlops-scorer"


def _prefix(model: str, version: int | None = None) -> str:
    return f"{POOL_PREFIX}:{model}:" if version is None else f"{POOL_PREFIX}:{model}:{version}:"


def pool_names(model: str | None = None, version: int | None = None) -> list[str]:
    """Names of the live pool actors in the connected namespace (of one model / version)."""
    import ray

    prefix = f"{POOL_PREFIX}:" if model is None else _prefix(model, version)
    return sorted(n for n in ray.util.list_named_actors() if n.startswith(prefix))


@dataclass(frozen=True)
class PoolMember:
    """One pool actor as a job uses it: its name and handle."""

    name: str
    handle: Any


def acquire(info: dict[str, Any], model_ref: Any, compiled_ref: Any, settings: Any,
            workers: int, idle_s: float) -> list[PoolMember]:
    """``workers`` actors of this version: the warm ones first, the missing ones started now
    (ending after ``idle_s`` idle seconds; warm ones keep the timeout they started with).

    Every other version's actors of the model are retired (they finish what they are doing
    first; a job still using them starts replacements of its own version).
    """
    import ray

    name, version = info["name"], int(info["version"])
    for other in pool_names(name):
        if not other.startswith(_prefix(name, version)):
            _retire(other, settings.namespace)
    warm = [PoolMember(n, ray.get_actor(n, namespace=settings.namespace))
            for n in pool_names(name, version)[:workers]]
    fresh = [start_member(info, model_ref, compiled_ref, settings, idle_s)
             for _ in range(workers - len(warm))]
    return warm + fresh


def start_member(info: dict[str, Any], model_ref: Any, compiled_ref: Any,
                 settings: Any, idle_s: float) -> PoolMember:
    """A new pool actor of ``info``'s version (named, detached, holding no logical CPU)."""
    from raymlops.serving.scorer import Scorer

    name = f"{_prefix(info['name'], int(info['version']))}{uuid.uuid4().hex[:8]}"
    handle = Scorer.options(
        name=name, namespace=settings.namespace, lifetime="detached", num_cpus=0,
        max_restarts=0, scheduling_strategy="SPREAD",
    ).remote(info, model_ref, settings.model_dump(mode="json"), compiled_ref, idle_s)
    return PoolMember(name, handle)


def retire(member: PoolMember) -> None:
    """Ask ``member`` to end once its current unit (if any) is written."""
    try:
        member.handle.retire.remote()
    except Exception:  # noqa: BLE001, S110 - already gone
        pass


def _retire(name: str, namespace: str) -> None:
    import ray

    try:
        ray.get_actor(name, namespace=namespace).retire.remote()
    except ValueError:  # gone already
        pass


def retire_all(namespace: str) -> list[str]:
    """Kill every pool actor in ``namespace`` now (``raymlops down``); their names."""
    import ray

    killed = []
    for name in pool_names():
        try:
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
            killed.append(name)
        except ValueError:
            continue
    return killed


def describe_pools(namespace: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """One entry per live pool actor: model, version, units scored, idle seconds, node."""
    import ray

    rows = []
    for name in pool_names():
        _, model, version, _ = name.split(":", 3)
        row: dict[str, Any] = {"actor": name, "model": model, "version": int(version)}
        try:
            handle = ray.get_actor(name, namespace=namespace)
            row.update(ray.get(handle.describe.remote(), timeout=timeout_s))
        except Exception as exc:  # noqa: BLE001 - a busy or dying actor is still listed
            row["state"] = f"no answer ({type(exc).__name__})"
        rows.append(row)
    return rows


class Reservation:
    """CPUs for a job's pool actors, held in a placement group for the job's duration.

    The actors themselves hold no logical CPU (so a warm, idle pool blocks nothing); the
    group makes Ray's scheduler count the CPUs a running job uses, as it counted Ray Data's
    pool, so other work does not pile onto cores the job keeps busy.
    """

    def __init__(self, workers: int, cpus_per_worker: float, timeout_s: float = 10.0) -> None:
        from ray.util.placement_group import placement_group

        self.group = placement_group([{"CPU": cpus_per_worker}] * workers, strategy="SPREAD")
        self.timeout_s = timeout_s

    def __enter__(self) -> Reservation:
        import ray

        ray.wait([self.group.ready()], timeout=self.timeout_s)  # not placed in time: score anyway
        return self

    def __exit__(self, *exc: object) -> None:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(self.group)
