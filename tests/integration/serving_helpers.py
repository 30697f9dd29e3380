"""Shared by the serving integration tests: Serve on a free loopback port, a tiny model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from raymlops.config import Settings
from tests.conftest import free_port


def serve_settings(platform: Any) -> Settings:
    """The platform's settings with the port Serve listens on (started here on a free one).

    Serve's HTTP options are fixed when it starts, once per cluster: a second module reuses
    the port the first one picked.
    """
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        port = ray.get(controller.get_http_config.remote()).port
    except ValueError:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
    return platform.settings.model_copy(update={"serve_port": port, "serve_host": "127.0.0.1"})


def training_data(seed: int = 0, n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"temp": rng.normal(50, 10, n), "hour": rng.integers(0, 24, n)})
    y = ((X["temp"] - 50) / 10 + (X["hour"] - 12) / 6 + rng.normal(0, 0.5, n) > 0).astype(int)
    return X, y.to_numpy()


def register_classifier(settings: Settings, name: str, seed: int = 0, C: float = 1.0,
                        aliases: tuple[str, ...] = ("champion",)) -> int:
    from sklearn.linear_model import LogisticRegression

    from raymlops.registry import RegistryClient

    X, y = training_data(seed)
    model = LogisticRegression(C=C).fit(X, y)
    info = RegistryClient.connect(settings).register(
        name, model, input_example=X.head(5), aliases=list(aliases))
    return int(info["version"])
