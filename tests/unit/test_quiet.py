"""Long CLI runs keep libraries' INFO chatter off, even for a library imported afterwards."""

from __future__ import annotations

import subprocess
import sys


def test_ray_data_stays_at_warning_when_imported_after_quieting() -> None:
    code = (
        "import logging\n"
        "from raymlops._quiet import quiet_libraries\n"
        "quiet_libraries()\n"
        "import ray.data\n"  # configures its own loggers at import
        "print(logging.getLogger('ray.data._internal.execution.streaming_executor').getEffectiveLevel())\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_DATA_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    assert out.stdout.split()[-1] == "30"  # logging.WARNING
