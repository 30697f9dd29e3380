"""Shared helpers: timing, free ports, and writing one benchmark's markdown section.

Machines are noisy, so every benchmark reports a ratio to a baseline measured in the same
run (never an absolute threshold), and the median of several rounds.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from pathlib import Path

from raymlops._ports import free_port  # noqa: F401  (shared with the CLI)

RESULTS_DIR = Path(__file__).parent / "results"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def write_section(name: str, markdown: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(markdown.rstrip() + "\n")
    return path


def flights_platform(prefix: str, num_cpus: int | None = None,
                     object_store_memory: int | None = None) -> tuple[object, object, Path]:
    """A local Ray + raymlops platform in a fresh temp root with the flights feature store
    applied and weather/planes ingested: (settings, FeatureStoreClient, root)."""
    import os
    import tempfile

    import ray

    import raymlops
    from raymlops.config import load_settings
    from raymlops.datasets.flights_features import DEFINITIONS, planes_rows, weather_rows
    from raymlops.features.client import FeatureStoreClient

    root = Path(tempfile.mkdtemp(prefix=prefix))
    ray.init(num_cpus=num_cpus or os.cpu_count() or 2, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False, namespace="raymlops", object_store_memory=object_store_memory)
    settings = raymlops.init(load_settings(storage_root=root / "root")).settings
    fs = FeatureStoreClient.connect(settings)
    fs.apply(DEFINITIONS)
    fs.ingest("weather", weather_rows())
    fs.ingest("planes", planes_rows())
    return settings, fs, root
