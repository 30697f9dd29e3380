"""Traffic management Serve dropped in 1.5 (ray#16790): canary, shadow, promote, abort.

A model's application may hold, beside ``Model`` (which follows the alias), a ``Canary``
and/or a ``Shadow`` deployment, each pinned to one version. The ingress routes by its
``user_config`` (a :class:`Routing`):

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

import random
import zlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from raymlops.config import Settings
from raymlops.exceptions import ConflictError, ValidationError

__all__ = ["Routing", "abort", "canary", "choose_canary", "promote", "shadow"]


class Split(BaseModel):
    """A pinned version beside the primary (canary or shadow)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, description="The registered version this deployment serves.")
    percent: float = Field(default=0.0, ge=0, le=100,
                           description="Canary: share of requests it answers (0-100).")
    sticky_header: str | None = Field(
        default=None, description="Canary: request header whose value pins a caller to a side.")


class Routing(BaseModel):
    """The ingress's ``user_config``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    canary: Split | None = Field(default=None, description="Canary split, if any.")
    shadow: Split | None = Field(default=None, description="Shadow copy, if any.")


def choose_canary(percent: float, sticky_value: str | None, rng: random.Random) -> bool:
    """True: this request goes to the canary. Sticky values hash to a fixed bucket of 10,000."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    if sticky_value is not None:
        bucket = zlib.crc32(sticky_value.encode()) % 10_000
    else:
        bucket = rng.randrange(10_000)
    return bucket < percent * 100


def current_deployment(name: str) -> dict[str, Any]:
    """What ``name``'s application runs with: ``ref``, ``options``, ``routing``, shadow counts."""
    from ray import serve

    from raymlops.serving.api import INGRESS_DEPLOYMENT
    from raymlops.serving.gateway import app_name

    return serve.get_deployment_handle(INGRESS_DEPLOYMENT, app_name(name)).deployed.remote() \
        .result(timeout_s=30)


def _redeploy(name: str, settings: Settings, routing: Routing) -> dict[str, Any]:
    from raymlops.serving.api import deploy

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
    from raymlops.serving.api import _attach

    settings = _attach(settings)
    v = _check_version(name, version, settings)
    if not 0 <= percent <= 100:
        raise ValidationError(f"percent must be within 0..100, got {percent}", field="percent")
    routing = Routing(**current_deployment(name)["routing"])
    new = routing.model_copy(update={"canary": Split(version=v, percent=percent,
                                                     sticky_header=sticky_header)})
    return _redeploy(name, settings, new)


def shadow(name: str, version: int | str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Copy ``name``'s traffic to ``version``: logged and compared, never returned."""
    from raymlops.serving.api import _attach

    settings = _attach(settings)
    v = _check_version(name, version, settings)
    routing = Routing(**current_deployment(name)["routing"])
    return _redeploy(name, settings, routing.model_copy(update={"shadow": Split(version=v)}))


def promote(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Make the canary's (else the shadow's) version the primary's, then remove it."""
    from raymlops.registry.client import RegistryClient
    from raymlops.serving.api import _attach

    settings = _attach(settings)
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
    from raymlops.serving.api import _attach

    settings = _attach(settings)
    if Routing(**current_deployment(name)["routing"]) == Routing():
        raise ConflictError(f"{name} has no canary or shadow to abort", name=name)
    return _redeploy(name, settings, Routing())
