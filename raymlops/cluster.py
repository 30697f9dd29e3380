"""Attach to or start the platform's Ray cluster, get-or-create its actors, report, stop.

``up`` (CLI) and ``init`` (notebooks, jobs) share one path:

1. find an address: ``--address`` > ``RAY_ADDRESS`` > settings.ray_address > the head this
   storage root started earlier (``<root>/run/head.json``) if it still answers;
2. none: start a local head (token auth, dashboard, 127.0.0.1, never 6379 by default);
3. connect this process (or reuse ``ray.init`` done by the caller, e.g. the test session);
4. get-or-create every registered platform actor, named and detached in the namespace.

Each step is idempotent, so running ``up`` twice attaches the second time and creates nothing.
``down`` stops the actors ``up`` created and the head if ``up`` started it — nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import ray

from raymlops import _head
from raymlops.config import Settings, load_settings
from raymlops.exceptions import ClusterError, ClusterNotRunningError
from raymlops.platform import HEAD_PINNED, PLATFORM_INFO_ACTOR, live_platform_actors, platform_actor_specs
from raymlops.shared_state import check_shared_state, cluster_hosts

__all__ = ["Platform", "attach", "attached", "dashboard_url", "down", "ensure_platform_actors", "init",
           "platform_settings", "up"]


@dataclass
class Platform:
    """A connected driver's view of the platform."""

    settings: Settings
    address: str
    dashboard_url: str | None
    started_head: bool
    actors: dict[str, Any] = field(default_factory=dict)  # name -> ActorHandle
    created_actors: list[str] = field(default_factory=list)


def _resolve_address(settings: Settings, address: str | None) -> tuple[str | None, _head.HeadState | None]:
    state = _head.read_head_state(settings.state_dir)
    explicit = address or os.environ.get("RAY_ADDRESS") or settings.ray_address
    if explicit:
        return explicit, state if state and state.gcs_address == explicit else None
    if state and state.started_head and _head.head_is_alive(state):
        return state.gcs_address, state
    return None, None


def _set_client_auth(settings: Settings) -> None:
    """Clients must be told the mode too: the token file alone is not enough in Ray 2.60.

    Ray reads RAY_AUTH_MODE into its C++ config at import, so after setting the variable the
    config is re-read (what Ray's own ``_enable_token_auth`` does).
    """
    if settings.auth_mode != "token" or os.environ.get("RAY_AUTH_MODE") == "token":
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    from ray._raylet import Config

    Config.initialize("")


def _connect(settings: Settings, address: str) -> str | None:
    """``ray.init`` to ``address``, failing fast (not Ray's long retry) when nothing listens."""
    if address not in ("auto",) and not address.startswith(("ray://", "http://", "https://")):
        host, port = _head.split_address(address)
        if not _head.port_is_open(host, port, timeout=2.0):
            raise ClusterNotRunningError(
                f"no Ray cluster answers at {address}; start one with `raymlops up`",
                address=address,
            )
    _set_client_auth(settings)
    try:
        context = ray.init(
            address=address,
            namespace=settings.namespace,
            logging_level="ERROR",
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError) as exc:
        hint = ""
        if "auth" in str(exc).lower():
            hint = " (token auth: put the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN)"
        raise ClusterError(f"could not attach to Ray at {address}{hint}: {exc}") from exc
    url = getattr(context, "dashboard_url", None)
    return f"http://{url}" if url and not url.startswith("http") else url


def ensure_platform_actors(
    settings: Settings, wait: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """Get-or-create every platform actor; returns (handles by name, names newly created).

    ``get_if_exists=True`` makes creation race-free between two drivers; ``max_restarts=-1``
    brings a killed actor back (it rebuilds from its durable store).
    """
    handles: dict[str, Any] = {}
    created: list[str] = []
    for spec in platform_actor_specs():
        if spec.on_demand:
            continue
        existed = _actor_exists(spec.name, settings.namespace)
        handles[spec.name] = _create_actor(spec, settings)
        if not existed:
            created.append(spec.name)
    # By default wait until all answer, so `up` returning means the platform is usable (and a
    # failing constructor, e.g. an unreachable database, fails `up`). Without waiting, calls
    # made meanwhile simply queue until the actor is ready.
    if wait:
        try:
            ray.get([h.ping.remote() for h in handles.values()], timeout=120)
        except ray.exceptions.RayActorError as exc:
            raise ClusterError(f"a platform actor failed to start: {exc}") from exc
    return handles, created


def _create_actor(spec: Any, settings: Settings) -> Any:
    """Get-or-create one platform actor (detached, restarted forever, settings as its argument)."""
    cls = ray.remote(spec.load_class())
    options = {
        "name": spec.name,
        "namespace": settings.namespace,
        "lifetime": "detached",
        "get_if_exists": True,
        "max_restarts": -1,
        "max_task_retries": -1,
        **HEAD_PINNED,
        **spec.options,
    }
    return cls.options(**options).remote(settings.model_dump(mode="json"))


def platform_actor(name: str, settings: Settings, create: bool = True) -> Any:
    """The handle of platform actor ``name``; an on-demand one is created if ``create``."""
    try:
        return ray.get_actor(name, namespace=settings.namespace)
    except ValueError:
        if not create:
            raise
    spec = next((s for s in platform_actor_specs() if s.name == name), None)
    if spec is None:
        raise ValueError(f"no platform actor {name!r}")
    handle = _create_actor(spec, settings)
    ray.get(handle.ping.remote(), timeout=120)
    return handle


def _actor_exists(name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
        return True
    except ValueError:
        return False


def platform_settings(settings: Settings) -> Settings:
    """When attaching to a running platform, adopt its settings (one truth for all drivers)."""
    try:
        actor = ray.get_actor(PLATFORM_INFO_ACTOR, namespace=settings.namespace)
        stored = ray.get(actor.settings.remote(), timeout=30)
    except ValueError:
        return settings
    return load_settings(**{k: v for k, v in stored.items() if v is not None})


def init(
    settings: Settings | None = None,
    *,
    address: str | None = None,
    start: bool = True,
    autoscaling_config: str | None = None,
    wait: bool = True,
) -> Platform:
    """Attach to (or start) the platform from this process and return a :class:`Platform`.

    In a job submitted with ``ray job submit``, ``RAY_ADDRESS`` is set and this attaches. If
    the caller already ran ``ray.init`` (tests, notebooks with their own cluster), that
    connection is reused and only the actors are ensured.
    """
    settings = settings or load_settings()
    started_head = False
    if ray.is_initialized():
        target = ray.get_runtime_context().gcs_address
        dashboard = dashboard_url()
    else:
        target, state = _resolve_address(settings, address)
        if target is None:
            if not start:
                raise ClusterNotRunningError("no raymlops platform is running; run `raymlops up`")
            args, env = (
                _head.fake_cluster_config(settings, autoscaling_config)
                if autoscaling_config
                else ([], {})
            )
            # The head's start is a subprocess this driver only waits for: meanwhile create
            # MLflow's schema, which the registry actor would otherwise do on the critical path.
            # Without waiting, nobody is held up by the schema: don't compete for CPU.
            prepare = _prepare_tracking_store(settings) if wait else None
            state = _head.start_head(settings, extra_args=args, extra_env=env)
            if prepare is not None:
                _finish(prepare, timeout_s=60)
            target, started_head = state.gcs_address, True
            state.save(settings.state_dir)
        dashboard = _connect(settings, target)
        if started_head:
            _wait_for_job_agent(settings.start_timeout_s)
    settings = platform_settings(settings)
    check_shared_state(settings, len(cluster_hosts(ray.nodes())))
    actors, created = ensure_platform_actors(settings, wait=wait)
    return Platform(
        settings=settings,
        address=target,
        dashboard_url=dashboard,
        started_head=started_head,
        actors=actors,
        created_actors=created,
    )


def _prepare_tracking_store(settings: Settings) -> subprocess.Popen:
    """Start creating (migrating) MLflow's database in a child process; see :func:`_finish`.

    Why a child process and not a thread: once MLflow is imported, tearing the interpreter
    down takes 0.4-0.8 s, which every ``raymlops up`` paid on exit just for this. Its failures
    are left for the registry actor to report; its output goes to the state folder's log.
    """
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "tracking-store-prepare.log", "w") as log:
        return subprocess.Popen(  # noqa: S603 - this interpreter and module, the settings' URI
            [sys.executable, "-m", "raymlops.registry.prepare_store", settings.tracking_uri],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )


def _finish(process: subprocess.Popen, timeout_s: float) -> None:
    """Wait for a helper process; one that hangs is killed (the registry then does the work)."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_job_agent(timeout_s: float) -> None:
    """Block until the head's dashboard agent has registered, so the job API takes jobs.

    `ray start` returns before the agent is known; a `ray job submit` right after `up` then
    fails with "No available agent" on a busy machine. `up` returning means jobs work.
    """
    from ray._private.ray_constants import KV_NAMESPACE_DASHBOARD
    from ray.dashboard.consts import DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX
    from ray.experimental.internal_kv import _internal_kv_get

    heads = [n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"]]
    if not heads:
        return
    key = f"{DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX}{heads[0]}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _internal_kv_get(key, namespace=KV_NAMESPACE_DASHBOARD):
            return
        time.sleep(0.2)
    raise ClusterError(f"the head's dashboard agent did not register within {timeout_s}s")


def up(
    settings: Settings | None = None,
    *,
    address: str | None = None,
    autoscaling_config: str | None = None,
    wait: bool = True,
) -> Platform:
    """``raymlops up``: :func:`init`, then record what was started/created for ``down``.

    ``autoscaling_config`` starts the local head with Ray's fake multi-node autoscaler
    (``cluster/local.yaml``): worker nodes, GPU ones included, appear on this machine.
    """
    settings = settings or load_settings()
    previous = _head.read_head_state(settings.state_dir)
    platform = init(settings, address=address, autoscaling_config=autoscaling_config, wait=wait)
    if platform.started_head:
        state = _head.read_head_state(settings.state_dir)
        if state is None:
            raise ClusterError(f"the head started but its state file in {settings.state_dir} is gone")
    elif previous and previous.gcs_address == platform.address:
        state = previous
    else:
        state = _head.HeadState(
            started_head=False,
            gcs_address=platform.address,
            dashboard_url=platform.dashboard_url,
            started_at=time.time(),
        )
    known = set(state.created_actors or [])
    state.created_actors = sorted(known | set(platform.created_actors))
    state.dashboard_url = platform.dashboard_url or state.dashboard_url
    # This storage root's own record (what its `down` reads), even when attaching adopted
    # the platform's settings: a second root attaching must not overwrite the owner's.
    state.save(settings.state_dir)
    return platform


def attach(settings: Settings | None = None, *, address: str | None = None) -> tuple[str, Settings] | None:
    """Connect this process to the running platform without starting or creating anything:
    (the address ``up`` used, the platform's settings), or None when none runs."""
    settings = settings or load_settings()
    target = None
    if ray.is_initialized():  # report the address `up` used (Ray's own may be the LAN one)
        state = _head.read_head_state(settings.state_dir)
        if state and state.gcs_address.endswith(":" + ray.get_runtime_context().gcs_address.rsplit(":", 1)[-1]):
            target = state.gcs_address
        target = target or ray.get_runtime_context().gcs_address
    else:
        target, _ = _resolve_address(settings, address)
        if target is None:
            return None
        _connect(settings, target)
    return target, platform_settings(settings)


def attached(settings: Settings | None = None) -> Settings:
    """Connect this driver to the running platform (starting nothing) and return the settings
    to use: the platform's when attaching, else the given ones (or the environment's)."""
    if ray.is_initialized():
        return settings or load_settings()
    return init(settings, start=False).settings


def dashboard_url() -> str | None:
    """The connected cluster's dashboard URL, or None when it runs without one."""
    try:
        from ray._private.worker import get_dashboard_url

        url = get_dashboard_url()
    except Exception:  # noqa: BLE001
        return None
    return f"http://{url}" if url and not url.startswith("http") else url


def down(settings: Settings | None = None) -> dict[str, Any]:
    """Stop the platform actors ``up`` created and the head it started; keep everything else."""
    settings = settings or load_settings()
    state = _head.read_head_state(settings.state_dir)
    if state is None:
        return {"stopped": False, "reason": "nothing was started by `raymlops up` here"}
    killed: list[str] = []
    if _head.head_is_alive(state) and not state.started_head:
        # Attached to someone else's cluster: remove only our actors, leave the cluster.
        if not ray.is_initialized():
            _connect(settings, state.gcs_address)
        # The declared actors this `up` created or that start on demand, and every actor the
        # platform made per use (warm scoring pools, metrics, alerts), found by its name.
        declared = {s.name for s in platform_actor_specs()}
        on_demand = {s.name for s in platform_actor_specs() if s.on_demand}
        per_use = set(live_platform_actors(settings.namespace)) - declared
        for name in sorted(set(state.created_actors or []) | on_demand | per_use):
            try:
                ray.kill(ray.get_actor(name, namespace=settings.namespace), no_restart=True)
                killed.append(name)
            except ValueError:
                continue
    if ray.is_initialized():
        ray.shutdown()
    processes = _head.stop_head(state)
    _head.clear_head_state(settings.state_dir)
    if state.started_head and _head.head_is_alive(state):
        raise ClusterError(f"the head at {state.gcs_address} still answers after stopping it")
    if state.started_head and state.gcs_namespace:
        from raymlops._gcs_ft import drop_namespace

        drop_namespace(settings, state.gcs_namespace)
    return {
        "stopped": True,
        "address": state.gcs_address,
        "head_stopped": state.started_head,
        "processes": processes,
        "actors_killed": killed if not state.started_head else list(state.created_actors or []),
    }
