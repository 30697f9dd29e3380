"""How an application's ingress splits requests: the ``Routing`` it is configured with (its
Serve ``user_config``) and the per-request canary choice. Read on every request, so it
imports nothing but pydantic; the commands that change a routing are in
:mod:`raymlops.serving.traffic`.
"""

from __future__ import annotations

import random
import zlib

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Routing", "Split", "choose_canary"]


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
