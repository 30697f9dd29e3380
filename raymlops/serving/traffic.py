"""Traffic management Serve dropped in 1.5 (ray#16790): canary, shadow, promote, abort.

A model's application may hold, beside ``Model`` (which follows the alias), a ``Canary``
and/or a ``Shadow`` deployment, each pinned to one version. The ingress routes by its
``user_config`` (a :class:`~raymlops.serving.routing.Routing`):

- **canary**: ``percent`` of requests go to the canary version; with ``sticky_header`` set, a
  request carrying that header always lands on the same side (a hash of its value, so a
  user sees one version), otherwise the choice is random per request;
- **shadow**: every request answered by the primary is also sent to the shadow version after
  the answer is on its way; the shadow's predictions are logged (prediction log, its own
  version) and compared with the primary's (agreement counts in ``serve status``), and never
  returned to the caller.

Why ``user_config``: changing it is a lightweight update (the ingress's ``reconfigure``),
and each deployment carries a version derived from its arguments, so starting or stopping a
canary never restarts the primary replicas or drops a request. ``promote`` moves the alias
the primary follows to the canary/shadow version (the primary hot-swaps) and removes it.
"""

from __future__ import annotations

from typing import Any

from raymlops.cluster import attached
from raymlops.config import Settings
from raymlops.exceptions import ConflictError, ValidationError
from raymlops.serving.api import current_deployment, deploy
from raymlops.serving.routing import Routing, Split

__all__ = ["abort", "canary", "promote", "shadow"]


def _redeploy(name: str, settings: Settings, routing: Routing) -> dict[str, Any]:
    current = current_deployment(name)
    return deploy(name, version=current["ref"] if isinstance(current["ref"], int) else None,
                  alias=current["ref"] if isinstance(current["ref"], str) else None,
                  settings=settings, options=current["options"], routing=routing)


def _check_version(name: str, version: int | str, settings: Settings) -> int:
    from raymlops.registry.client import RegistryClient
    from raymlops.registry.names import parse_ref

    return RegistryClient.connect(settings).resolve(name, parse_ref(version))


def canary(name: str, version: int | str, percent: float, *, sticky_header: str | None = None,
           settings: Settings | None = None) -> dict[str, Any]:
    """Send ``percent`` of ``name``'s traffic to ``version`` (sticky on a header if given)."""

    settings = attached(settings)
    v = _check_version(name, version, settings)
    if not 0 <= percent <= 100:
        raise ValidationError(f"percent must be within 0..100, got {percent}", field="percent")
    routing = Routing(**current_deployment(name)["routing"])
    new = routing.model_copy(update={"canary": Split(version=v, percent=percent,
                                                     sticky_header=sticky_header)})
    return _redeploy(name, settings, new)


def shadow(name: str, version: int | str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Copy ``name``'s traffic to ``version``: logged and compared, never returned."""

    settings = attached(settings)
    v = _check_version(name, version, settings)
    routing = Routing(**current_deployment(name)["routing"])
    return _redeploy(name, settings, routing.model_copy(update={"shadow": Split(version=v)}))


def promote(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Make the canary's (else the shadow's) version the primary's, then remove it."""
    from raymlops.registry.client import RegistryClient

    settings = attached(settings)
    current = current_deployment(name)
    routing = Routing(**current["routing"])
    split, field = (routing.canary, "canary") if routing.canary else (routing.shadow, "shadow")
    if split is None:
        raise ConflictError(f"{name} has no canary or shadow to promote", name=name)
    if not isinstance(current["ref"], str):
        raise ConflictError(f"{name} serves pinned v{current['ref']}: deploy it with an alias "
                            "to promote", name=name)
    RegistryClient.connect(settings).set_alias(name, current["ref"], split.version)
    return _redeploy(name, settings, routing.model_copy(update={field: None}))


def abort(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Remove the canary and the shadow; all traffic back to the primary."""

    settings = attached(settings)
    if Routing(**current_deployment(name)["routing"]) == Routing():
        raise ConflictError(f"{name} has no canary or shadow to abort", name=name)
    return _redeploy(name, settings, Routing())
