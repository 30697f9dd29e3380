"""The shared client side of a platform actor: find it by name, call it, keep errors typed."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from raymlops.config import Settings
from raymlops.exceptions import RaymlopsError

__all__ = ["ActorClient"]

T = TypeVar("T", bound="ActorClient")


class ActorClient:
    """Base of RegistryClient, FeatureStoreClient...: ``ACTOR`` names the platform actor."""

    ACTOR: ClassVar[str] = ""
    DEFAULT_TIMEOUT: ClassVar[float | None] = 120

    def __init__(self, actor: Any, settings: Settings) -> None:
        self.actor = actor
        self.settings = settings

    @classmethod
    def connect(cls: type[T], settings: Settings | None = None) -> T:
        """Attach to the running platform (starting nothing) and return a client."""
        import ray

        from raymlops.cluster import init

        if not ray.is_initialized() or settings is None:
            settings = init(settings, start=False).settings
        return cls(ray.get_actor(cls.ACTOR, namespace=settings.namespace), settings)

    def _call(self, method: str, *args: Any, timeout: float | None = -1.0, **kwargs: Any) -> Any:
        """Call the actor; a typed error raised there is re-raised here as itself."""
        import ray
        from ray.exceptions import RayTaskError

        wait = self.DEFAULT_TIMEOUT if timeout == -1.0 else timeout
        try:
            return ray.get(getattr(self.actor, method).remote(*args, **kwargs), timeout=wait)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RaymlopsError):
                raise cause from None
            raise
