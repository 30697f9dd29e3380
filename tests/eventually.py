"""One polling helper for tests that wait on a cluster: ``eventually(check, timeout, what)``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float, what: str, every: float = 0.5) -> T:
    """Call ``check`` until it returns something truthy (returned) or ``timeout`` seconds pass
    (AssertionError naming ``what`` and the last value or error)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return last  # type: ignore[return-value]
        except Exception as exc:  # noqa: BLE001 - still settling; reported if it never does
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s (last: {last!r})")
        time.sleep(every)
