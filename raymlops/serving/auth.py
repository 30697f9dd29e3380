"""The inference token: an optional bearer token in front of the model endpoints.

Why it exists: Serve's proxy (and, in HAProxy mode, every ingress replica's own HTTP server)
binds ``serve_host``. On loopback only processes of this machine reach it, and they can reach
Ray itself anyway; once it binds an address other machines reach (a cluster), anyone on that
network could score the models and read their signatures, so the endpoints then ask for
``Authorization: Bearer <token>`` and answer 401 without it.

Two halves, on different machines:

- :func:`resolve_inference_token` runs where a deployment is *built* (the driver that calls
  ``deploy``, or Serve's build task for a config file). It decides whether there is a token
  and which, and the token then travels to the replicas in the deployment's arguments. A
  replica never resolves one itself: it may run on a node without the token file.
- :class:`TokenCheck` runs in the replicas, once per request: a hash and a constant-time
  compare against bytes prepared once, so the cost per request is about a microsecond.

What stays open (never behind the token): liveness and readiness probes that reveal nothing
about a model, because load balancers and orchestrators call them without credentials:
MLflow's ``GET /ping`` (its scoring server and SageMaker's container contract keep it open),
KServe v2's ``GET /v2/health/live`` and ``/v2/health/ready`` (Kubernetes probes), Serve's own
``/-/healthz`` and ``/-/routes`` (answered by Serve, not by raymlops), and the OpenAPI page and
schema (``/docs``, ``/openapi.json``: static, the same for every model, and how a browser user
finds the "Authorize" button). Everything that scores a model or reveals anything about one
(metadata, version, readiness of a named model, the server's version) needs the token.

The token itself is never logged, never put in an error message or context, and never shown
by ``raymlops`` commands (they print where it is, not what it is).

This module imports neither Ray nor FastAPI: clients (CLI, demo, benchmarks) use it too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raymlops.exceptions import AuthenticationError, ConfigError

if TYPE_CHECKING:
    from raymlops.config import Settings

__all__ = [
    "SECURITY_SCHEME",
    "TOKEN_FILE",
    "TokenCheck",
    "auth_headers",
    "challenge_headers",
    "client_headers",
    "is_loopback",
    "resolve_inference_token",
    "secure_openapi",
    "token_hint",
    "token_path",
]

TOKEN_FILE = "inference-token"  # noqa: S105 - a file name
SECURITY_SCHEME = "inferenceToken"  # the name of the scheme in the OpenAPI documents
_LOCALHOST_NAMES = {"localhost", "localhost.", "localhost.localdomain"}
# What a token may contain: visible ASCII, no spaces, so it survives an HTTP header unchanged
# on every client (RFC 6750's b64token is a subset; secrets.token_urlsafe's alphabet is too).
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the endpoints on this machine (127.0.0.0/8, ::1,
    localhost). ``0.0.0.0``, ``::``, an empty host and any other name are not: they may be
    reached from other machines, which is what the token is for."""
    host = host.strip().lower()
    if host in _LOCALHOST_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1
    return address.is_loopback


def token_path(settings: Settings) -> Path:
    """Where a generated token is kept: ``<state_dir>/inference-token`` (mode 0600)."""
    return settings.state_dir / TOKEN_FILE


def resolve_inference_token(settings: Settings) -> str | None:
    """The token the model endpoints ask for, or None when they ask for none.

    The setting wins when given. Otherwise loopback serving needs none (only this machine
    reaches it), and any other ``serve_host`` gets a generated token, made once and kept in
    :func:`token_path`, so every later deploy (and every client on this machine) finds the
    same one. Call it where the deployment is built, not in a replica (see the module doc).
    """
    configured = settings.inference_token
    if configured:
        _check_token(configured, "the inference_token setting")
        return configured
    if is_loopback(settings.serve_host):
        return None
    path = token_path(settings)
    try:
        return _read_token(path)
    except FileNotFoundError:
        return _create_token(path)


def _check_token(token: str, where: str) -> None:
    # The message names where the token came from, never its value.
    if not _TOKEN_CHARS.fullmatch(token):
        raise ConfigError(f"{where} must be visible ASCII characters without spaces (it is sent "
                          "in an HTTP header)", field="inference_token")


def _read_token(path: Path) -> str:
    token = path.read_text(encoding="ascii", errors="replace").strip()
    if not token:
        raise ConfigError(f"the inference token file {path} is empty: delete it to have a "
                          "new token made, or set inference_token", field="inference_token")
    _check_token(token, f"the inference token in {path}")
    return token


def _create_token(path: Path) -> str:
    """Make the token file once, atomically, even with several processes racing.

    The token is written to a private temporary file first (``mkstemp``: O_CREAT | O_EXCL,
    mode 0600) and then published with ``link``, which, like O_EXCL, fails when the name
    exists, and unlike creating the final name directly never lets a reader see the file
    before its content is there. The loser of a race reads the winner's token, so every racer
    returns the same one. Hard links also keep this exclusive on NFS, where O_EXCL on the
    final name was not always.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{TOKEN_FILE}.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(token + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process made it first: theirs is the token
            return _read_token(path)
        return token
    finally:
        os.unlink(tmp)


class TokenCheck:
    """The per-request check of a replica; built once from the resolved token (or None).

    The expected token is kept only as its SHA-256 digest, and the presented one is hashed
    the same way before :func:`hmac.compare_digest`: both sides then have the same length,
    so the compare's time says nothing about the token, not even how long it is.
    """

    __slots__ = ("_expected",)

    def __init__(self, token: str | None) -> None:
        if token:
            _check_token(token, "the inference token")
        self._expected: bytes | None = _digest(token.encode("ascii")) if token else None

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    @property
    def fingerprint(self) -> str | None:
        """A short, one-way name of the token (None: no token), so a deploy can tell whether
        a running replica asks for the same token without anyone reading the token back."""
        return hashlib.sha256(self._expected).hexdigest()[:16] if self._expected else None

    def check(self, authorization: str | None) -> None:
        """Return if the ``Authorization`` header value lets the request in, else raise
        :class:`AuthenticationError` (401; its ``context.reason`` is ``missing``, ``scheme``
        or ``invalid``, and neither token is in it)."""
        expected = self._expected
        if expected is None:
            return
        if not authorization:
            raise AuthenticationError("this endpoint needs the inference token: send "
                                      "'Authorization: Bearer <token>'", reason="missing")
        scheme, _, credentials = authorization.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise AuthenticationError("the Authorization header must be 'Bearer <token>'",
                                      reason="scheme")
        try:
            # Starlette decodes header bytes as latin-1: this gives the bytes sent back.
            presented = credentials.encode("latin-1")
        except UnicodeEncodeError:
            presented = b""
        if not hmac.compare_digest(_digest(presented), expected):
            raise AuthenticationError("the inference token is not valid", reason="invalid")


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def challenge_headers(reason: str | None = None) -> dict[str, str]:
    """``WWW-Authenticate`` of a 401; ``reason`` is the error's ``context.reason`` (RFC 6750:
    ``error="invalid_token"`` for a wrong token, no error code when none was sent)."""
    value = 'Bearer realm="raymlops"'
    if reason == "invalid":
        value += ', error="invalid_token"'
    return {"WWW-Authenticate": value}


def auth_headers(token: str | None) -> dict[str, str]:
    """Headers a client sends with ``token`` (none when there is no token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def client_headers(settings: Settings) -> dict[str, str]:
    """Headers our own clients send to the model endpoints of the platform ``settings``
    describes: the ``Authorization`` header when the endpoints ask for a token."""
    return auth_headers(resolve_inference_token(settings))


def token_hint(settings: Settings) -> str | None:
    """A curl ``-H`` argument that sends the token without showing it (None: no token),
    for the commands raymlops prints: secrets printed to a terminal end up in scrollback,
    logs and screenshots."""
    token = resolve_inference_token(settings)
    if token is None:
        return None
    if settings.inference_token:
        if os.environ.get("RAYMLOPS_INFERENCE_TOKEN") == token:
            return "-H \"Authorization: Bearer $RAYMLOPS_INFERENCE_TOKEN\""
        return "-H 'Authorization: Bearer <inference_token from your settings>'"
    return f"-H \"Authorization: Bearer $(cat {token_path(settings)})\""


def secure_openapi(schema: dict[str, Any], open_paths: Iterable[str]) -> dict[str, Any]:
    """A copy of an OpenAPI ``schema`` that declares the bearer scheme and requires it on
    every operation except those under ``open_paths`` (so /docs shows "Authorize" and the
    locks where the token is needed, and "try it out" sends it)."""
    open_set = set(open_paths)
    paths: dict[str, Any] = {}
    for path, operations in schema.get("paths", {}).items():
        if path in open_set:
            paths[path] = operations
            continue
        paths[path] = {method: ({**op, "security": [{SECURITY_SCHEME: []}]}
                                if isinstance(op, dict) else op)
                       for method, op in operations.items()}
    components = dict(schema.get("components") or {})
    components["securitySchemes"] = {
        **(components.get("securitySchemes") or {}),
        SECURITY_SCHEME: {"type": "http", "scheme": "bearer",
                          "description": "The platform's inference token (setting "
                          "inference_token, or <state_dir>/inference-token)."},
    }
    return {**schema, "paths": paths, "components": components}
