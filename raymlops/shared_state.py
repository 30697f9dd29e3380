"""Refuse settings that only work on one host when the cluster spans several.

On one host every process sees the same disk, so a local storage root and SQLite files just
work. Across hosts they fail in the worst way: silently. A Tune trial or a scoring actor on a
worker writes to that worker's own disk, a CT check on a worker opens an empty SQLite file of
its own, and nobody notices until a result is missing. So ``raymlops up`` / ``raymlops.init``
count the distinct hosts of the cluster and refuse such settings with an error naming the
setting, before anything runs.

Hosts, not nodes: the fake multi-node cluster puts several Ray nodes on one machine, where a
local root and SQLite are shared as they are on a single node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from raymlops.config import Settings
from raymlops.exceptions import ConfigError

__all__ = ["check_shared_state", "cluster_hosts", "require_reachable"]


def cluster_hosts(nodes: Iterable[Mapping[str, Any]]) -> set[str]:
    """Distinct addresses of the alive nodes (what ``ray.nodes()`` returns)."""
    return {str(n.get("NodeManagerAddress")) for n in nodes if n.get("Alive")}


def check_shared_state(settings: Settings, hosts: int) -> None:
    """Raise :class:`ConfigError` naming each setting that a cluster of ``hosts`` cannot share."""
    if hosts <= 1:
        return
    problems: list[str] = []
    fields: list[str] = []
    if settings.storage.is_local and not settings.storage_shared:
        fields.append("storage_root")
        problems.append(
            f"storage_root {settings.storage_root!r} is a local folder, but this cluster has "
            f"{hosts} hosts, each with its own disk: use s3://bucket/prefix (RAYMLOPS_STORAGE_ROOT), "
            "or declare a mount every host shares at that path (storage_shared: true)")
    for name in ("tracking_uri", "feature_registry_uri"):
        value = str(getattr(settings, name) or "")
        if value.startswith("sqlite:") or "://" not in value:
            fields.append(name)
            problems.append(
                f"{name} is a SQLite file that only one host sees: set a PostgreSQL URL "
                f"(RAYMLOPS_{name.upper()}=postgresql://user@host/db)")
    if settings.serve_haproxy:
        fields.append("serve_haproxy")
        problems.append(
            "serve_haproxy: HAProxy mode binds every ingress replica to serve_host, an address "
            "only the head has, so replicas on other hosts cannot serve: set serve_haproxy: false "
            "(Serve's proxy on the head reaches replicas on every host)")
    if problems:
        raise ConfigError("; ".join(problems), fields=fields, hosts=hosts)


def require_reachable(settings: Settings, locations: Mapping[str, str]) -> None:
    """Refuse local paths (``{"input": path}``) that work on other hosts would not find.

    Needs a connected driver (it counts the cluster's hosts)."""
    import ray

    from raymlops.exceptions import ValidationError
    from raymlops.storage import is_remote_uri

    local = {name: loc for name, loc in locations.items() if not is_remote_uri(str(loc))}
    if not local or settings.storage_shared:
        return
    hosts = len(cluster_hosts(ray.nodes()))
    if hosts > 1:
        name, loc = next(iter(local.items()))
        raise ValidationError(
            f"{name} {loc} is a local path, but this cluster has {hosts} hosts and the work "
            "runs on all of them: give an s3:// URI (or declare a shared mount: storage_shared)",
            field=name)
