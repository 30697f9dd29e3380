"""Test hosts on one machine: network namespaces on a private bridge, each worker with its own
mounts and PIDs, so a cluster test sees what a real cluster of separate machines would.

Layout (a /24 of 10.213.x.0 that no other interface uses, no default route anywhere)::

    root namespace: bridge <prefix>br  10.213.x.1   (PostgreSQL forwarder, the S3 store)
    <prefix>head    eth0 10.213.x.10   the Ray head (`raymlops up`); root's mounts
    <prefix>w1/w2   eth0 10.213.x.11+  `ray start --address`, inside
                    `unshare --mount --uts --ipc --pid --fork --kill-child --mount-proc`:
                    private tmpfs over /tmp, /dev/shm and HOME (the interpreter under HOME
                    bound back read-only), so nothing of the head's disk is visible there.

Why a PID namespace per worker: killing its first process kills the whole host (the way a
machine dies), and nothing inside can signal Ray processes of another host. Why the head keeps
root's mounts: the test drives it with the CLI as a user would, and its storage is S3 anyway.

Everything made is deleted by :meth:`HostNetwork.close` (veths before namespaces), also when a
test fails midway. Needs root (CI has it); a test fails, never skips, without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Worker:
    name: str
    address: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """The host dies: SIGKILL to the PID namespace's first process takes all of it."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def inner_pid(self) -> int:
        """A process inside the host's namespaces (for nsenter)."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                             text=True).stdout.split()
        if not out:
            raise RuntimeError(f"host {self.name} has no process")
        return int(out[0])

    def run(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside this host (its network, mounts and PIDs)."""
        return subprocess.run(
            ["nsenter", "-t", str(self.inner_pid()), "-n", "-m", "-p", "-u", "-i",
             "bash", "-c", command], capture_output=True, text=True, timeout=timeout)


@dataclass
class HostNetwork:
    """A bridge, a head namespace and worker hosts; see the module docstring."""

    folder: Path
    subnet: int = 213
    prefix: str = field(default_factory=lambda: f"rmo{os.getpid() % 10000}")
    workers: list[Worker] = field(default_factory=list)
    _forwarders: list[_Forwarder] = field(default_factory=list)
    _made_netns: list[str] = field(default_factory=list)
    _made_links: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.third = self._free_third_octet()

    # -- addresses -------------------------------------------------------------------------

    def _free_third_octet(self) -> int:
        used = _ip("-4", "-o", "addr", "show").stdout
        for third in range(os.getpid() % 200 + 20, 255):
            if f"10.{self.subnet}.{third}." not in used:
                return third
        raise RuntimeError("no free test subnet")

    def addr(self, host: int) -> str:
        """``0``: the bridge (root namespace), ``10``: the head, ``11+``: workers."""
        return f"10.{self.subnet}.{self.third}.{host}"

    @property
    def bridge_ip(self) -> str:
        return self.addr(1)

    @property
    def head_ip(self) -> str:
        return self.addr(10)

    @property
    def head_ns(self) -> str:
        return f"{self.prefix}head"

    # -- life cycle ------------------------------------------------------------------------

    def up(self) -> HostNetwork:
        bridge = f"{self.prefix}br"
        _ip("link", "add", bridge, "type", "bridge")
        self._made_links.append(bridge)
        _ip("addr", "add", f"{self.bridge_ip}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        self._add_namespace(self.head_ns, self.head_ip, bridge)
        return self

    def _add_namespace(self, ns: str, address: str, bridge: str) -> None:
        _ip("netns", "add", ns)
        self._made_netns.append(ns)
        veth = f"{ns}v"[:15]
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self._made_links.append(veth)
        _ip("link", "set", veth, "master", bridge, "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")

    def head_command(self, argv: list[str]) -> list[str]:
        """``argv`` run on the head host (its network namespace)."""
        return ["ip", "netns", "exec", self.head_ns, *argv]

    def add_worker(self, gcs_address: str, env: dict[str, str], *, num_cpus: int = 2,
                   memory_bytes: int = 3 * 1024**3) -> Worker:
        index = len(self.workers) + 1
        name = f"{self.prefix}w{index}"
        address = self.addr(10 + index)
        self._add_namespace(name, address, f"{self.prefix}br")
        home = os.environ.get("HOME", "/root")
        interpreter = Path(os.path.realpath(sys.executable)).parents[1]  # .../versions/3.11.x
        keep = [p for p in {str(interpreter)} if p.startswith(home + "/")]
        steps = [
            "set -e",
            "mount --make-rprivate /",
            "mount -t tmpfs tmpfs /tmp",
            "mount -t tmpfs tmpfs /dev/shm",
        ]
        for i, path in enumerate(keep):  # HOME is masked; the interpreter under it comes back
            steps += [f"mkdir -p /tmp/.keep{i}", f"mount --bind {shlex.quote(path)} /tmp/.keep{i}"]
        steps.append(f"mount -t tmpfs tmpfs {shlex.quote(home)}")
        for i, path in enumerate(keep):
            steps += [f"mkdir -p {shlex.quote(path)}",
                      f"mount --bind /tmp/.keep{i} {shlex.quote(path)}",
                      f"mount -o remount,bind,ro {shlex.quote(path)}",
                      f"umount /tmp/.keep{i}"]
        steps += [
            f"hostname {name}",
            " ".join([
                "exec", str(VENV_BIN / "ray"), "start", "--block", "--address", gcs_address,
                "--node-ip-address", address, "--num-cpus", str(num_cpus),
                "--memory", str(memory_bytes), "--object-store-memory", str(512 * 1024**2),
                "--disable-usage-stats"]),
        ]
        log = self.folder / f"{name}.log"
        self.folder.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            ["ip", "netns", "exec", name, "unshare", "--mount", "--uts", "--ipc", "--pid",
             "--fork", "--kill-child", "--mount-proc", "bash", "-c", "\n".join(steps)],
            # Not this process's RAY_* / RAYMLOPS_*: an earlier test in the session may have
            # set some (the integration suite switches Serve's HAProxy mode on), and a raylet
            # passes its environment to every worker process of its host.
            env={**{k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RAYMLOPS_"))},
                 **env, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"},
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        worker = Worker(name, address, process, log)
        self.workers.append(worker)
        return worker

    def forward(self, port: int, target: tuple[str, int]) -> int:
        """Listen on the bridge address at ``port`` and relay to ``target`` (e.g. PostgreSQL
        on the machine's loopback, which the hosts' own loopbacks do not reach)."""
        fwd = _Forwarder(self.bridge_ip, port, target)
        fwd.start()
        self._forwarders.append(fwd)
        return port

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        for ns in self._made_netns:  # anything still running on a host (the head's daemons)
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for fwd in self._forwarders:
            fwd.stop()
        for link in reversed(self._made_links):  # veths before their namespaces
            _ip("link", "del", link, check=False)
        for ns in self._made_netns:
            _ip("netns", "del", ns, check=False)


class _Forwarder:
    """A TCP relay in a thread of the test process (asyncio, one loop)."""

    def __init__(self, host: str, port: int, target: tuple[str, int]) -> None:
        self.host, self.port, self.target = host, port, target
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None

    def start(self) -> None:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, self.host, self.port), self.loop).result(10)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def wait_for(predicate, timeout: float, what: str, every: float = 0.5):
    """Poll ``predicate`` until truthy; fail the test naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


REPO = Path(__file__).resolve().parents[2]


@dataclass
class S3Cluster:
    """A running 3-host platform: S3 storage, PostgreSQL, token auth, endpoints on the head's
    address, the head offering 0 CPUs (every piece of work runs on a worker host)."""

    hosts: HostNetwork
    env: dict[str, str]
    gcs: str
    storage_root: str
    s3_env: dict[str, str]

    def on_head(self, *argv: str, timeout: float = 300,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command on the head host, as a user there would."""
        proc = subprocess.run(self.hosts.head_command(list(argv)), env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                                 f"\n{proc.stderr[-5000:]}")
        return proc

    def raymlops(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.on_head(str(VENV_BIN / "raymlops"), *args, timeout=timeout)


@contextmanager
def s3_cluster(folder: Path, *, workers: int = 2) -> Iterator[S3Cluster]:
    """`raymlops up` on a head host, ``workers`` worker hosts joined; all torn down after."""
    import psycopg

    from tests.s3_store import start_s3_store

    database = f"rmo_hosts_{uuid.uuid4().hex[:8]}"
    admin = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    hosts = HostNetwork(folder / "hosts")
    store = None
    cluster: S3Cluster | None = None
    try:
        hosts.up()
        store = start_s3_store(folder / "s3", host=hosts.bridge_ip)
        store.make_bucket("platform")
        from raymlops._ports import free_port

        pg = hosts.forward(free_port(hosts.bridge_ip), ("127.0.0.1", 5432))
        sql = f"postgresql://postgres@{hosts.bridge_ip}:{pg}/{database}"
        home = folder / "head-home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RAYMLOPS_", "RAY_"))},
            **store.env, "HOME": str(home),
            "RAYMLOPS_STORAGE_ROOT": "s3://platform/raymlops",
            "RAYMLOPS_TRACKING_URI": sql, "RAYMLOPS_FEATURE_REGISTRY_URI": sql,
            "RAYMLOPS_NODE_IP": hosts.head_ip, "RAYMLOPS_DASHBOARD_HOST": hosts.head_ip,
            "RAYMLOPS_SERVE_HOST": hosts.head_ip, "RAYMLOPS_SERVE_HAPROXY": "false",
            "RAYMLOPS_NUM_CPUS": "0",  # the head runs the platform; work goes to the workers
            "RAY_AUTH_MODE": "token",
            # a dead host is noticed in seconds, not Ray's default ~30 s
            "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
        }
        cluster = S3Cluster(hosts, env, "", "s3://platform/raymlops", store.env)
        cluster.gcs = json.loads(cluster.raymlops("up", "--json").stdout)["ray_address"]
        token = (home / ".ray" / "auth_token").read_text().strip()
        worker_env = {**store.env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        for _ in range(workers):
            hosts.add_worker(cluster.gcs, worker_env)
        wait_for(lambda: json.loads(cluster.raymlops("status", "--json").stdout)
                 ["resources"]["nodes"] == 1 + workers, 90, "the worker hosts to join")
        yield cluster
    finally:
        if cluster is not None and cluster.gcs:
            cluster.on_head(str(VENV_BIN / "raymlops"), "down", timeout=120, check=False)
        hosts.close()
        if store is not None:
            store.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
