"""What ``raymlops status`` reports, as JSON-safe data: the top of the layers, it may ask
every part of the platform (model health, CT, warm pools) for its section.

Sections are functions registered by name; each degrades to an ``error`` entry instead of
failing the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

from raymlops.cluster import attach, dashboard_url
from raymlops.config import Settings, load_settings, mask_password
from raymlops.platform import platform_actor_specs

__all__ = ["collect", "not_running", "register_section", "status"]

Section = Callable[[Settings], Any]
_SECTIONS: dict[str, Section] = {}


def register_section(name: str, section: Section) -> None:
    """Add a section to the report (its key and the function computing it)."""
    _SECTIONS[name] = section


def _base(settings: Settings) -> dict[str, Any]:
    return {
        "storage_root": str(settings.storage_root),
        "tracking_uri": mask_password(settings.tracking_uri or ""),
        "artifact_location": mask_password(settings.artifact_location or ""),
        "namespace": settings.namespace,
    }


def not_running(settings: Settings) -> dict[str, Any]:
    return {
        "running": False,
        "ray_address": None,
        "dashboard_url": None,
        "serve_http": None,
        "resources": {},
        "actors": [],
        "serve_applications": [],
        **_base(settings),
    }


def _resources() -> dict[str, Any]:
    total = ray.cluster_resources()
    available = ray.available_resources()
    keys = ["CPU", "GPU", "memory", "object_store_memory"]
    out: dict[str, Any] = {}
    for key in keys:
        out[key] = {"total": float(total.get(key, 0.0)), "available": float(available.get(key, 0.0))}
    out["nodes"] = sum(1 for n in ray.nodes() if n.get("Alive"))
    return out


def _actors(settings: Settings) -> list[dict[str, Any]]:
    """State of each platform actor: ALIVE / RESTARTING / DEAD from Ray's state API, else a ping."""
    states: dict[str, dict[str, Any]] = {}
    try:
        from ray.util.state import list_actors

        for actor in list_actors(
            filters=[("ray_namespace", "=", settings.namespace)], detail=False, timeout=10,
            raise_on_missing_output=False,
        ):
            name = actor.get("name") if isinstance(actor, dict) else getattr(actor, "name", "")
            state = actor.get("state") if isinstance(actor, dict) else getattr(actor, "state", "")
            if name and (name not in states or state == "ALIVE"):
                states[name] = {"state": state}
    except Exception:  # noqa: BLE001 - no dashboard: fall back to pinging below
        states = {}
    rows = []
    for spec in platform_actor_specs():
        row = {"name": spec.name, "description": spec.description}
        if spec.name in states:
            row["state"] = states[spec.name]["state"]
        else:
            row["state"] = _ping_state(spec.name, settings.namespace)
            if spec.on_demand and row["state"] == "MISSING":
                row["state"] = "NOT STARTED"
        rows.append(row)
    return rows


def _ping_state(name: str, namespace: str) -> str:
    try:
        handle = ray.get_actor(name, namespace=namespace)
    except ValueError:
        return "MISSING"
    try:
        ray.get(handle.ping.remote(), timeout=5)
        return "ALIVE"
    except Exception:  # noqa: BLE001
        return "UNREACHABLE"


def _serve(settings: Settings) -> tuple[str | None, list[dict[str, Any]]]:
    """Serve's HTTP address and applications, only if Serve runs on this cluster."""
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return None, []
    from ray import serve

    apps = []
    for name, app in serve.status().applications.items():
        apps.append({"name": name, "status": str(app.status), "route_prefix": getattr(app, "route_prefix", None)})
    return settings.serve_url, apps


def _ask(settings: Settings, actor_name: str, method: str) -> list[dict[str, Any]]:
    """``method()`` of a platform actor, or [] when it does not exist (not started)."""
    try:
        actor = ray.get_actor(actor_name, namespace=settings.namespace)
    except ValueError:
        return []
    return ray.get(getattr(actor, method).remote(), timeout=30)


def _models(settings: Settings) -> list[dict[str, Any]]:
    """Registered models with their aliases, from the registry actor's cache."""
    return _ask(settings, "raymlops-registry", "list_models")


register_section("models", _models)


def _features(settings: Settings) -> list[dict[str, Any]]:
    """Feature views with their version and online row count."""
    rows = _ask(settings, "raymlops-features", "list_definitions")
    return [
        {"view": r["name"], "version": r["version"], "online_rows": r["online_rows"],
         "ttl_seconds": r["spec"].get("ttl_seconds")}
        for r in rows if r["kind"] == "feature_view"
    ]


register_section("features", _features)


def _model_health(settings: Settings) -> list[dict[str, Any]]:
    """Per served model version: req/s, p99, error rate (Ray's metrics agents), drift verdict
    and last retrain (CT record). Costs one ~2 s metrics window, only when models are served."""
    from raymlops.monitoring.health import model_health

    _, apps = _serve(settings)
    served = [a["name"].removeprefix("model-") for a in apps if a["name"].startswith("model-")]
    return model_health(settings, served) if served else []


register_section("model_health", _model_health)


def _continuous_training(settings: Settings) -> list[dict[str, Any]]:
    """Models the CT service checks (schedule, running check, last result); [] if not started."""
    return _ask(settings, "raymlops-ct", "status")


register_section("continuous_training", _continuous_training)


def _scoring_pools(settings: Settings) -> list[dict[str, Any]]:
    """Batch prediction's warm scoring actors: model, version, state, idle seconds, units."""
    from raymlops.serving.scoring_pool import describe_pools

    return describe_pools(settings.namespace)


register_section("scoring_pools", _scoring_pools)


def collect(settings: Settings, address: str | None = None) -> dict[str, Any]:
    serve_http, apps = _serve(settings)
    report: dict[str, Any] = {
        "running": True,
        "ray_address": address or ray.get_runtime_context().gcs_address,
        "dashboard_url": dashboard_url(),
        "serve_http": serve_http,
        "resources": _resources(),
        "actors": _actors(settings),
        "serve_applications": apps,
        **_base(settings),
    }
    for name, section in _SECTIONS.items():
        try:
            report[name] = section(settings)
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the rest
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return report


def status(settings: Settings | None = None, *, address: str | None = None) -> dict[str, Any]:
    """What ``raymlops status`` shows; never starts anything."""
    settings = settings or load_settings()
    attached = attach(settings, address=address)
    if attached is None:
        return not_running(settings)
    target, settings = attached
    return collect(settings, address=target)
