"""Names a package re-exports, imported on first use (PEP 562).

Why: a package's ``__init__`` that imports its modules eagerly makes every importer pay for
all of them: a Ray worker that needs one submodule would import MLflow, matplotlib or FastAPI
with it (seconds per process on 2 cores).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps each name to its module."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
