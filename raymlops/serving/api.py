"""deploy / undeploy / status: one Serve application per model, plus the shared ``/v2`` app.

An application ``model-<name>`` at route prefix ``/models/<name>`` holds:

- ``Ingress`` (FastAPI): parses and answers HTTP. By default (``colocate``) the model runs
  inside it (validation, ``@serve.batch``, hot swap): one process hop per request instead of
  two, autoscaled between ``min_replicas`` and ``max_replicas`` on
  ``target_ongoing_requests``, with ``model_num_cpus + ingress_num_cpus`` CPUs per replica;
- ``Model`` (only with ``colocate=False``, e.g. a GPU model behind a CPU ingress): the same
  model server as its own autoscaled deployment;
- ``Canary`` / ``Shadow`` while a traffic split is on (:mod:`raymlops.serving.traffic`).

The ``raymlops-v2`` application (``/v2``) forwards the Open Inference Protocol to the model
applications. Serve's HTTP proxy runs on the head only and binds ``settings.serve_host``
(127.0.0.1 by default) on ``settings.serve_port``.

The inference token (:mod:`raymlops.serving.auth`) is resolved here, where the application is
built, and passed to the ingress and gateway replicas in their arguments (replicas may run on
nodes that lack the token file). It is part of their deployment versions, so a new token
replaces the replicas, and ``deploy`` redeploys the gateway when it asks for another token.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from raymlops.cluster import attached
from raymlops.config import Settings, load_settings
from raymlops.exceptions import ClusterError, ModelNotFoundError, RaymlopsError
from raymlops.registry.names import parse_ref, split_model_ref, validate_model_name
from raymlops.serving.auth import TokenCheck, resolve_inference_token
from raymlops.serving.options import DeploymentOptions, load_options

__all__ = ["build_app", "build_from_args", "build_gateway", "current_deployment", "deploy", "status",
           "undeploy"]

MODEL_DEPLOYMENT = "Model"
INGRESS_DEPLOYMENT = "Ingress"
CANARY_DEPLOYMENT = "Canary"
SHADOW_DEPLOYMENT = "Shadow"


def _settings_dict(settings: Settings) -> dict[str, Any]:
    return settings.model_dump(mode="json")


# Serve runs a replica's user code on an event loop of its own thread by default, so every
# request crosses threads twice (the replica's HTTP server -> user code -> back). Our request
# path never blocks for long (validation, a batched predict of at most max_rows), so it runs
# on the replica's main loop: 1.6-2.3x the requests/s at 16-64 concurrent requests on 2
# cores (benchmarks/serve_bench.py). Serve's own "throughput optimized" mode does the same.
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}


def _actor_options(num_cpus: float) -> dict[str, Any]:
    return {"num_cpus": num_cpus, "runtime_env": {"env_vars": dict(REPLICA_ENV)}}


def _version_of(*parts: Any) -> str:
    """A deployment version derived from what makes replicas differ.

    Serve restarts replicas whose version changed and only reconfigures the others, so an
    unchanged primary keeps running (and serving) while a canary is added or removed.
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model_deployment(deployment_name: str, name: str, ref: int | str, settings: Settings,
                      options: DeploymentOptions, autoscale: bool = True) -> Any:
    from ray import serve

    from raymlops.serving.model import ModelServer

    args = (name, ref, _settings_dict(settings), options.model_dump())
    scaling: dict[str, Any] = (
        {"autoscaling_config": options.autoscaling_config()} if autoscale
        else {"num_replicas": 1})
    return serve.deployment(
        ModelServer, name=deployment_name,
        ray_actor_options=_actor_options(options.model_num_cpus),
        max_ongoing_requests=options.max_ongoing_requests(),
        logging_config=options.logging_config(),
        health_check_period_s=options.health_check_period_s,
        health_check_timeout_s=30,
        graceful_shutdown_timeout_s=10,
        **scaling,
    ).options(version=_version_of("model", *args), _internal=True).bind(*args)


def build_app(name: str, ref: int | str, settings: Settings, options: DeploymentOptions,
              routing: Any = None) -> Any:
    """The bound Serve application of one model: ingress -> model (+ canary / shadow)."""
    from ray import serve

    from raymlops.serving.ingress import ModelIngress
    from raymlops.serving.routing import Routing

    routing = routing if isinstance(routing, Routing) else Routing(**(routing or {}))
    model = (None if options.colocate
             else _model_deployment(MODEL_DEPLOYMENT, name, ref, settings, options))
    extras = {}
    if routing.canary:
        extras[CANARY_DEPLOYMENT] = _model_deployment(
            CANARY_DEPLOYMENT, name, routing.canary.version, settings, options)
    if routing.shadow:
        extras[SHADOW_DEPLOYMENT] = _model_deployment(
            SHADOW_DEPLOYMENT, name, routing.shadow.version, settings, options, autoscale=False)
    opts = options.model_dump()
    if options.colocate:  # the model runs in the ingress replicas, which then autoscale
        sizing: dict[str, Any] = {
            "autoscaling_config": options.autoscaling_config(),
            "ray_actor_options": _actor_options(options.model_num_cpus + options.ingress_num_cpus),
            "max_ongoing_requests": options.max_ongoing_requests(),
            "graceful_shutdown_timeout_s": 10,
        }
    else:
        sizing = {"num_replicas": options.ingress_replicas,
                  "ray_actor_options": _actor_options(options.ingress_num_cpus),
                  "max_ongoing_requests": 1024}
    # the token as resolved here (setting, or the generated file): the replicas only compare
    settings_dict = {**_settings_dict(settings),
                     "inference_token": resolve_inference_token(settings)}
    return serve.deployment(
        ModelIngress, name=INGRESS_DEPLOYMENT,
        health_check_period_s=options.health_check_period_s,
        health_check_timeout_s=30,
        user_config=routing.model_dump(mode="json"),
        logging_config=options.logging_config(),
        **sizing,
    ).options(
        # extras are not in the version: the ingress finds them by name in reconfigure
        version=_version_of("ingress", name, ref, opts, settings_dict), _internal=True,
    ).bind(model, name, ref, opts, extras, settings_dict)


def build_gateway(settings: Settings) -> Any:
    """The bound ``/v2`` application, asking for the inference token ``settings`` resolve to."""
    from ray import serve

    from raymlops.serving.gateway import Gateway

    token = resolve_inference_token(settings)
    return serve.deployment(Gateway, name="Gateway", ray_actor_options=_actor_options(0.05),
                            max_ongoing_requests=1024).options(
        version=_version_of("gateway", token), _internal=True).bind(token)


def build_from_args(args: dict[str, Any]) -> Any:
    """Application builder for Serve config files (``serve deploy cluster/serve_*.yaml``).

    ``args``: ``model`` (required), ``alias`` or ``version``, ``options`` (DeploymentOptions
    fields). Settings come from the running platform, like every other driver's.
    """
    from raymlops.cluster import platform_settings

    args = dict(args)
    name = validate_model_name(args.pop("model", None))
    ref = parse_ref(args.pop("version", None) or args.pop("alias", "champion"))
    options = load_options(args.pop("options", None))
    if args:
        raise RaymlopsError(f"unknown application args {sorted(args)}: use model, alias, "
                            "version, options")
    return build_app(name, ref, platform_settings(load_settings()), options)


def build_gateway_from_args(args: dict[str, Any]) -> Any:  # noqa: ARG001 - Serve passes args
    """Application builder of the ``/v2`` gateway for Serve config files (settings, and so the
    inference token, from the running platform, like :func:`build_from_args`)."""
    from raymlops.cluster import platform_settings

    return build_gateway(platform_settings(load_settings()))


def _gateway_outdated(settings: Settings) -> bool:
    """Whether the running ``/v2`` gateway asks for another token than ``settings`` give (or
    does not answer): then ``deploy`` deploys it again. A fingerprint, not the token, is
    compared, so the token never travels back."""
    from ray import serve

    from raymlops.serving.gateway import GATEWAY_APP

    wanted = TokenCheck(resolve_inference_token(settings)).fingerprint
    try:
        handle = serve.get_deployment_handle("Gateway", GATEWAY_APP)
        return handle.auth_fingerprint.remote().result(timeout_s=30) != wanted
    except Exception:  # noqa: BLE001 - an unanswering gateway is deployed again
        return True


def _start_serve(settings: Settings) -> None:
    from ray import serve

    serve.start(http_options={"host": settings.serve_host, "port": settings.serve_port},
                proxy_location="HeadOnly")


def _split_name(name: str, alias: str | None, version: int | str | None) -> tuple[str, int | str]:
    return split_model_ref(name, default=version if version is not None else (alias or "champion"))


def deploy(
    name: str,
    alias: str | None = "champion",
    *,
    version: int | str | None = None,
    settings: Settings | None = None,
    options: DeploymentOptions | dict[str, Any] | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    target_ongoing_requests: float | None = None,
    max_batch_size: int | None = None,
    batch_wait_timeout_s: float | None = None,
    routing: Any = None,
    **more: Any,
) -> dict[str, Any]:
    """Serve ``name`` (``name@alias`` works too) and return its status entry.

    Following an alias (the default, ``champion``) means replicas hot-swap when it moves; a
    ``version`` pins one. Deploying again updates the application in place (replicas whose
    arguments did not change keep running). ``routing``: a canary/shadow split (see
    :mod:`raymlops.serving.traffic`); by default the one already running, if any.
    """
    name, ref = _split_name(name, alias, version)
    base = options.model_dump() if isinstance(options, DeploymentOptions) else options
    opts = load_options(base, min_replicas=min_replicas, max_replicas=max_replicas,
                        target_ongoing_requests=target_ongoing_requests,
                        max_batch_size=max_batch_size,
                        batch_wait_timeout_s=batch_wait_timeout_s, **more)
    settings = attached(settings)
    from ray import serve

    from raymlops.registry.client import RegistryClient
    from raymlops.serving.gateway import GATEWAY_APP, app_name

    RegistryClient.connect(settings).resolve(name, ref)  # a typed 404 before anything starts
    if routing is None and app_name(name) in _applications():
        routing = current_deployment(name).get("routing")  # a redeploy keeps a running split
    _start_serve(settings)
    try:
        serve.run(build_app(name, ref, settings, opts, routing), name=app_name(name),
                  route_prefix=f"/models/{name}")
        if (GATEWAY_APP not in serve.status().applications
                or _gateway_outdated(settings)):
            serve.run(build_gateway(settings), name=GATEWAY_APP, route_prefix="/v2")
    except RuntimeError as exc:
        raise ClusterError(f"serving {name} failed to deploy: {exc}", name=name) from None
    _wait_routable(f"{settings.serve_url}/models/{name}/ping")
    return status(name, settings=settings)[0]


def _wait_routable(url: str, timeout_s: float = 20.0) -> bool:
    """Wait until ``url`` answers 200: Serve reports an application RUNNING before HAProxy
    (or its proxy) routes to it, and a request in between got a 404 from the proxy. Returns
    False after ``timeout_s`` (a driver that cannot reach the endpoint is not an error)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our URL
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def undeploy(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Delete ``name``'s application (and the ``/v2`` one when no model is left)."""
    validate_model_name(name)
    attached(settings)
    from ray import serve

    from raymlops.serving.gateway import APP_PREFIX, GATEWAY_APP, app_name

    apps = _applications()
    if app_name(name) not in apps:
        raise ModelNotFoundError(f"model {name!r} is not deployed", name=name)
    serve.delete(app_name(name))
    left = [a for a in apps if a.startswith(APP_PREFIX) and a != app_name(name)]
    if not left and GATEWAY_APP in apps:
        serve.delete(GATEWAY_APP)
    return {"model": name, "undeployed": True, "models_left": [a[len(APP_PREFIX):] for a in left]}


def _applications() -> dict[str, Any]:
    """Serve's applications by name; empty when Serve runs nowhere (never starts it)."""
    import ray
    from ray import serve
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE
    from ray.serve.exceptions import RayServeException

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return {}
    try:
        return dict(serve.status().applications)
    except RayServeException:  # Serve not running: nothing deployed
        return {}


def _live_stats(app: str, deployment: str = MODEL_DEPLOYMENT, method: str = "stats",
                ) -> dict[str, Any] | None:
    """What a replica reports (version, swaps, counts); None if none answers in time."""
    from ray import serve

    try:
        handle = serve.get_deployment_handle(deployment, app)
        return getattr(handle, method).remote().result(timeout_s=10)
    except Exception:  # noqa: BLE001 - status must report, not fail
        return None


def status(name: str | None = None, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """One entry per served model: state, route, version answering, replicas, counts."""
    settings = attached(settings)
    from raymlops.serving.gateway import APP_PREFIX, app_name

    apps = _applications()
    wanted = [app_name(name)] if name else sorted(a for a in apps if a.startswith(APP_PREFIX))
    if name and app_name(name) not in apps:
        raise ModelNotFoundError(f"model {name!r} is not deployed", name=name)
    out = []
    for app in wanted:
        model = app[len(APP_PREFIX):]
        overview = apps[app]
        deployments = {
            d: {"status": str(getattr(ds.status, "value", ds.status)),
                "replicas": {str(getattr(k, "value", k)): v
                             for k, v in (ds.replica_states or {}).items()},
                "message": ds.message}
            for d, ds in overview.deployments.items()
        }
        running = str(getattr(overview.status, "value", "")) == "RUNNING"
        live = _live_stats(app, INGRESS_DEPLOYMENT) if running else None
        traffic = _live_stats(app, INGRESS_DEPLOYMENT, "deployed") if running else None
        out.append({
            "model": model, "app": app,
            "status": str(getattr(overview.status, "value", overview.status)),
            "message": overview.message,
            "route": f"/models/{model}",
            "url": f"{settings.serve_url}/models/{model}",
            "v2_url": f"{settings.serve_url}/v2/models/{model}",
            "version": live["version"] if live else None,
            "ref": live["ref"] if live else None,
            "swaps": live["swaps"] if live else None,
            "last_error": live["last_error"] if live else None,
            # the deployment that holds the primary model (the ingress when colocated)
            "replicas": deployments.get(
                MODEL_DEPLOYMENT, deployments.get(INGRESS_DEPLOYMENT, {})).get("replicas", {}),
            "canary": (traffic or {}).get("routing", {}).get("canary"),
            "shadow": (traffic or {}).get("routing", {}).get("shadow"),
            "shadow_counts": (traffic or {}).get("shadow"),
            "deployments": deployments,
        })
    return out


def current_deployment(name: str) -> dict[str, Any]:
    """What ``name``'s application runs with: ``ref``, ``options``, ``routing``, shadow counts."""
    from ray import serve

    from raymlops.serving.gateway import app_name

    return serve.get_deployment_handle(INGRESS_DEPLOYMENT, app_name(name)).deployed.remote() \
        .result(timeout_s=30)
