"""The ``raymlops`` command line: one module per noun, assembled here."""

from __future__ import annotations

from raymlops.cli import alerts as _alerts  # noqa: F401  (registers `alerts ...`)
from raymlops.cli import batch as _batch  # noqa: F401  (registers `batch ...`, `validate`)
from raymlops.cli import ct as _ct  # noqa: F401  (registers `ct ...`)
from raymlops.cli import demo as _demo  # noqa: F401  (registers `demo`)
from raymlops.cli import drift as _drift  # noqa: F401  (registers `drift`)
from raymlops.cli import features as _features  # noqa: F401  (registers `features ...`)
from raymlops.cli import models as _models  # noqa: F401  (registers `models ...`)
from raymlops.cli import platform as _platform  # noqa: F401  (registers up/status/down/demo)
from raymlops.cli import serve as _serve  # noqa: F401  (registers `serve ...`)
from raymlops.cli import train as _train  # noqa: F401  (registers `train`)
from raymlops.cli._app import app, main

__all__ = ["app", "main"]
