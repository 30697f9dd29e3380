"""GCS fault tolerance for a locally started head: the GCS keeps its tables in Redis.

Why: without it, a GCS that dies takes the cluster's state (actors, placement groups, jobs,
the KV store) with it. With ``gcs_storage: redis`` the head's GCS writes every table to
Redis (``redis_url``) under its own key namespace, so a restarted GCS recovers them, and
meanwhile running actors and Serve replicas keep answering (they talk to each other directly).

Each head start gets a fresh namespace (``raymlops-<root hash>-<start time>``): a new head must
never recover a previous head's dead cluster, and two platforms sharing one Redis never mix.
``raymlops down`` deletes the namespace's keys. Ray writes them as ``RAY<namespace>@<table>``.
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import urlparse

from raymlops.config import Settings
from raymlops.exceptions import ConfigError

__all__ = ["drop_namespace", "gcs_env", "new_namespace"]


def new_namespace(settings: Settings) -> str:
    digest = hashlib.sha256(str(settings.storage_root).encode()).hexdigest()[:10]
    return f"raymlops-{digest}-{int(time.time() * 1000)}"


def gcs_env(settings: Settings, namespace: str) -> dict[str, str]:
    """Environment that makes ``ray start --head`` keep the GCS in Redis.

    A Redis password is refused: Ray passes it to ``gcs_server`` as a command-line flag, which
    every local user can read with ``ps`` (secrets never go where they can be seen).
    """
    url = urlparse(settings.redis_url)
    if url.password:
        raise ConfigError("gcs_storage=redis with a password in redis_url is not supported: Ray "
                          "would put the password on gcs_server's command line",
                          field="redis_url")
    return {"RAY_REDIS_ADDRESS": f"{url.hostname or '127.0.0.1'}:{url.port or 6379}",
            "RAY_external_storage_namespace": namespace}


def drop_namespace(settings: Settings, namespace: str) -> int:
    """Delete every key of ``namespace`` (after its head stopped); returns how many."""
    import redis

    url = urlparse(settings.redis_url)
    client = redis.Redis(host=url.hostname or "127.0.0.1", port=url.port or 6379,
                         password=url.password, socket_timeout=10)
    keys = list(client.scan_iter(match=f"RAY{namespace}@*", count=1000))
    return int(client.delete(*keys)) if keys else 0
