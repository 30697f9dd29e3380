"""raymlops: the whole life of a model on one Ray cluster.

Public API (re-exports only)::

    import raymlops
    platform = raymlops.init()          # attach to, or start, the platform
    raymlops.status()                   # what `raymlops status --json` prints
"""

from __future__ import annotations

from raymlops._lazy import lazy_getattr
from raymlops._version import __version__
from raymlops.config import Settings, load_settings
from raymlops.exceptions import RaymlopsError


def init(*args, **kwargs):
    """Attach to (or start) the platform; see :func:`raymlops.cluster.init`."""
    from raymlops.cluster import init as _init

    return _init(*args, **kwargs)


def status(*args, **kwargs):
    """The platform's status as a dict (what `raymlops status --json` prints)."""
    from raymlops._status import status as _status

    return _status(*args, **kwargs)


_LAZY = {
    "RegistryClient": "raymlops.registry.client",
    "FeatureStoreClient": "raymlops.features.client",
}


# Clients are imported on first use, so `import raymlops` stays light.
__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "FeatureStoreClient",
    "RaymlopsError",
    "RegistryClient",
    "Settings",
    "__version__",
    "init",
    "load_settings",
    "status",
]
