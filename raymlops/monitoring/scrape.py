"""Read the cluster's current metric values from Ray's metrics agents (Prometheus text format).

Why read the agents directly: they are what any Prometheus scrapes, they run on every node
of every Ray cluster, and reading them needs no Prometheus server -- so alert evaluation and
``raymlops status`` work on a bare cluster. Targets come from Ray's own service-discovery
file (``<temp_dir>/session_latest/prom_metrics_service_discovery.json``, written by the head's
dashboard and the file a Prometheus ``file_sd_configs`` points at) or, inside a driver, from
``ray.nodes()``.

Ray prefixes every application metric with ``ray_``; :func:`scrape` strips nothing, and
:class:`Sample` ``name`` is what Prometheus stores (``ray_raymlops_requests_total``).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from raymlops.exceptions import ClusterError

__all__ = ["SD_FILE", "Sample", "parse", "scrape", "sd_file", "targets_from_nodes",
           "targets_from_sd_file"]

SD_FILE = Path("session_latest") / "prom_metrics_service_discovery.json"


@dataclass(frozen=True)
class Sample:
    """One series' value as exported: full Prometheus name, labels, value."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


def sd_file(temp_dir: str | Path) -> Path:
    """Ray's Prometheus service-discovery file for the cluster using ``temp_dir``."""
    return Path(temp_dir) / SD_FILE


def targets_from_sd_file(path: str | Path) -> list[str]:
    """``host:port`` of every metrics agent listed in a service-discovery file."""
    try:
        groups = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot read Ray's service-discovery file {path}: {exc}",
                           path=str(path)) from None
    return sorted({t for group in groups for t in group.get("targets", [])})


def targets_from_nodes() -> list[str]:
    """``host:port`` of every live node's metrics agent (inside a Ray driver)."""
    import ray

    return sorted(f"{n['NodeManagerAddress']}:{n['MetricsExportPort']}" for n in ray.nodes()
                  if n.get("Alive") and n.get("MetricsExportPort"))


def parse(text: str, prefix: str = "ray_raymlops_") -> list[Sample]:
    """Samples whose name starts with ``prefix`` from one Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return [Sample(s.name, tuple(sorted(s.labels.items())), float(s.value))
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith(prefix)]


def scrape(targets: Iterable[str], prefix: str = "ray_raymlops_",
           timeout_s: float = 5.0) -> list[Sample]:
    """Samples of every target; an unreachable node is skipped (it may be going away) but
    none reachable at all is a :class:`ClusterError`."""
    out: list[Sample] = []
    targets = list(targets)
    errors = []
    for target in targets:
        try:
            with urllib.request.urlopen(f"http://{target}/metrics", timeout=timeout_s) as resp:
                out.extend(parse(resp.read().decode(), prefix))
        except OSError as exc:
            errors.append(f"{target}: {exc}")
    if targets and len(errors) == len(targets):
        raise ClusterError("no metrics agent answered: " + "; ".join(errors))
    return out
