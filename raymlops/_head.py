"""Start and stop a local Ray head that raymlops owns, and remember exactly what it started.

Why not ``ray start`` / ``ray stop`` directly: ``ray stop`` kills every Ray process on the
machine, and ``raymlops down`` must stop only what ``raymlops up`` started. So the head is
launched in its own process session (all its daemons share that process group), the group id
and the session folder are written to ``<storage_root>/run/head.json``, and ``stop_head``
signals that group and the workers under it, nothing else.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from raymlops._ports import free_port
from raymlops.config import Settings
from raymlops.exceptions import ClusterError

__all__ = [
    "HeadState",
    "ensure_auth_token",
    "port_is_open",
    "read_head_state",
    "start_head",
    "stop_head",
]

HEAD_STATE_FILE = "head.json"


@dataclass
class HeadState:
    """What ``up`` started or attached to; ``down`` reads it back."""

    started_head: bool
    gcs_address: str
    dashboard_url: str | None
    pgid: int | None = None
    temp_dir: str | None = None
    created_actors: list[str] | None = None
    started_at: float = 0.0
    gcs_namespace: str | None = None  # Redis key namespace of a fault-tolerant GCS

    def save(self, state_dir: Path) -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / HEAD_STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)  # atomic: a killed `up` never leaves half a state file
        return path


def read_head_state(state_dir: Path) -> HeadState | None:
    path = state_dir / HEAD_STATE_FILE
    if not path.is_file():
        return None
    try:
        return HeadState(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def clear_head_state(state_dir: Path) -> None:
    (state_dir / HEAD_STATE_FILE).unlink(missing_ok=True)


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections there (a cheap liveness probe)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not host:port", address=address)
    return host, int(port)


def _token_paths() -> list[Path]:
    paths = []
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        paths.append(Path(os.environ["RAY_AUTH_TOKEN_PATH"]).expanduser())
    paths.append(Path.home() / ".ray" / "auth_token")
    return paths


def ensure_auth_token() -> bool:
    """Make a token where Ray looks for one, when none exists. Returns True if one was made.

    Same format as ``ray get-auth-token --generate`` (256 random bits, hex), written here
    instead of by that command to save its ~2 s interpreter start on every cold ``up``; the
    file is private to the user (0600).
    """
    if os.environ.get("RAY_AUTH_TOKEN"):
        return False
    path = _token_paths()[0]
    if path.is_file() and path.read_text().strip():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return True


def head_env(settings: Settings) -> dict[str, str]:
    """Environment of the head: this interpreter's bin/ first on PATH, auth mode set.

    ``ray job submit -- python jobs/x.py`` runs the ``python`` found on the head's PATH, so
    putting the project's venv first makes jobs run with raymlops installed.
    """
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["RAY_AUTH_MODE"] = settings.auth_mode
    env.pop("RAY_ADDRESS", None)
    return env


def start_head(
    settings: Settings,
    extra_args: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> HeadState:
    """Launch ``ray start --head`` in its own process group and wait until the GCS answers."""
    for field_name, host, port in (
        ("gcs_port", settings.node_ip, settings.gcs_port),
        ("dashboard_port", settings.dashboard_host, settings.dashboard_port),
    ):
        if port_is_open(host, port):
            raise ClusterError(
                f"port {port} ({field_name}) on {host} is already in use; choose another with "
                f"RAYMLOPS_{field_name.upper()} or attach with --address",
                field=field_name,
                port=port,
            )
    if settings.auth_mode == "token":
        ensure_auth_token()
    temp_dir = Path(settings.ray_temp_dir or "/tmp/raymlops")  # noqa: S108 - short: Ray puts sockets there
    temp_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-c",
        "from ray.scripts.scripts import main; main()",
        "start",
        "--head",
        "--node-ip-address", settings.node_ip,
        "--port", str(settings.gcs_port),
        "--include-dashboard", "true",
        "--dashboard-host", settings.dashboard_host,
        "--dashboard-port", str(settings.dashboard_port),
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
        # Ray's fixed defaults (agent 52365, client server 10001) collide with any other Ray
        # on the machine, and a head whose agent cannot bind takes no jobs: pick free ones.
        "--dashboard-agent-listen-port", str(free_port(settings.node_ip)),
        "--ray-client-server-port", str(free_port(settings.node_ip)),
    ]
    if settings.num_cpus is not None:
        cmd += ["--num-cpus", str(settings.num_cpus)]
    if settings.num_gpus is not None:
        cmd += ["--num-gpus", str(settings.num_gpus)]
    cmd += extra_args or []
    log_path = settings.state_dir / "ray-start.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    namespace, ft_env = None, {}
    if settings.gcs_storage == "redis":
        from raymlops._gcs_ft import gcs_env, new_namespace

        namespace = new_namespace(settings)
        ft_env = gcs_env(settings, namespace)
    from raymlops._haproxy import haproxy_env

    with open(log_path, "w") as log:
        proc = subprocess.Popen(  # noqa: S603 - `ray start` of this venv, arguments built here
            cmd, env={**head_env(settings), **ft_env, **haproxy_env(settings), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its daemons share this group: `down` stops just them
        )
        try:
            code = proc.wait(timeout=settings.start_timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            raise ClusterError(
                f"ray start did not finish in {settings.start_timeout_s}s; see {log_path}") from None
    if code != 0:
        _kill_group(proc.pid)
        tail = log_path.read_text()[-2000:]
        raise ClusterError(f"ray start failed (exit {code}); see {log_path}:\n{tail}")
    gcs_address = f"{settings.node_ip}:{settings.gcs_port}"
    return HeadState(
        started_head=True,
        gcs_address=gcs_address,
        dashboard_url=settings.dashboard_url,
        pgid=proc.pid,
        temp_dir=str(temp_dir),
        started_at=time.time(),
        gcs_namespace=namespace,
    )


def fake_cluster_config(settings: Settings, yaml_path: Path) -> tuple[list[str], dict[str, str]]:
    """Args and env to start a head with Ray's fake multi-node autoscaler (``cluster/local.yaml``).

    ``ray up`` cannot launch this provider in Ray 2.60 (its defaults file is missing from the
    wheel); ``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config`` can. The provider needs
    the GCS address, so a copy of the YAML with it filled in goes to the state folder.
    """
    import yaml

    config = yaml.safe_load(Path(yaml_path).read_text())
    config.setdefault("provider", {})["gcs_address"] = f"{settings.node_ip}:{settings.gcs_port}"
    head_type = config.get("head_node_type", "ray.head.default")
    head_cpus = config["available_node_types"][head_type].get("resources", {}).get("CPU")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    rendered = settings.state_dir / "autoscaling-config.yaml"
    rendered.write_text(yaml.safe_dump(config, sort_keys=False))
    args = ["--autoscaling-config", str(rendered)]
    if head_cpus is not None and settings.num_cpus is None:
        args += ["--num-cpus", str(int(head_cpus))]
    return args, {"RAY_FAKE_CLUSTER": "1"}


def head_is_alive(state: HeadState) -> bool:
    host, port = split_address(state.gcs_address)
    return port_is_open(host, port)


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return members


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_head(state: HeadState, timeout_s: float = 1.0) -> int:
    """Stop the head's daemons and every process under them (workers, actors). Returns count.

    SIGTERM first, SIGKILL for what is left after ``timeout_s``. The dashboard and its
    modules leave within ~0.1 s of SIGTERM. Idle workers ignore it, and with every process
    signalled at once the raylet, GCS, autoscaler monitor and runtime-env agent were still
    there after 8 s, so a longer wait only made ``down`` slower. This head is being thrown
    away (its GCS namespace is dropped after), so there is no state for them to save.
    """
    if not state.started_head or state.pgid is None:
        return 0
    members = _group_members(state.pgid)
    victims: dict[int, psutil.Process] = {p.pid: p for p in members}
    for proc in members:
        try:
            for child in proc.children(recursive=True):
                victims.setdefault(child.pid, child)
        except psutil.Error:
            continue
    for proc in victims.values():
        try:
            proc.terminate()
        except psutil.Error:
            pass
    alive = _wait_gone(list(victims.values()), timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    _wait_gone(alive, 5.0)
    return len(victims)


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until each process has exited; returns those still running at the timeout.

    Why not ``psutil.wait_procs``: these are not our children, so it polls until the pid is
    gone. A killed daemon stays a zombie until PID 1 reaps it, which took ~2 s here, and a
    zombie runs nothing: it counts as gone.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in processes if _is_running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        processes = alive
        time.sleep(0.05)


def _is_running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # NoSuchProcess: gone
        return False
