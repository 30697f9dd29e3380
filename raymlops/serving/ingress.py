"""The per-model HTTP ingress (FastAPI): parse, forward to the model deployment, answer.

Routes, relative to the application's prefix ``/models/{name}``:

- ``POST /invocations``: MLflow's scoring formats; ``{"predictions": [...]}`` (plus
  ``model``, ``version`` and, with ``?probabilities=true``, ``probabilities``/``classes``);
- ``GET /`` model metadata, ``GET /ping`` (what MLflow's scoring client polls),
  ``GET /version``; OpenAPI docs at ``/docs``.

With an inference token (:mod:`raymlops.serving.auth`) every route but ``/ping`` and the
OpenAPI page and schema answers 401 without ``Authorization: Bearer <token>``; ``/docs`` then
declares the bearer scheme. The methods the ``/v2`` gateway calls through a handle check
nothing: the gateway checked the token, and a handle needs access to Ray itself.

The Open Inference Protocol routes live in the ``/v2`` gateway application, which calls
:meth:`ModelIngress.v2_infer` / :meth:`v2_metadata` through a handle, so both protocols share
one parsing/validation path and one set of metrics.

Every answer carries ``x-model-version`` (and ``x-request-id``); every error is
``{"detail", "error", "context"}`` with the typed error's status. An exception that is not a
typed error is a bug on our side and the only path to a 5xx.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from raymlops.exceptions import AuthenticationError, BadRequestError, ClusterError, RaymlopsError
from raymlops.serving.auth import TokenCheck, challenge_headers, secure_openapi
from raymlops.serving.metrics import ServingMetrics
from raymlops.serving.options import DeploymentOptions
from raymlops.serving.protocol import (
    Limits,
    check_content_length,
    jsonable,
    parse_invocations,
    parse_v2_infer,
    query_flag,
    v2_response,
)
from raymlops.serving.routing import Routing, choose_canary
from raymlops.serving.schema import V2_DATATYPES

__all__ = ["InvocationsFastPath", "ModelIngress", "TokenAwareAPI", "error_body", "unauthorized", "unwrap_error"]

logger = logging.getLogger("ray.serve")

_SCORING_SCHEMA: dict[str, Any] = {
    "description": "Exactly one of the MLflow scoring formats.",
    "oneOf": [
        {"type": "object", "required": ["dataframe_split"], "properties": {"dataframe_split": {
            "type": "object", "required": ["data"], "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "array", "items": {"type": "array"}}}}}},
        {"type": "object", "required": ["dataframe_records"], "properties": {
            "dataframe_records": {"type": "array", "items": {"type": "object"}}}},
        {"type": "object", "required": ["instances"], "properties": {
            "instances": {"type": "array"}}},
        {"type": "object", "required": ["inputs"], "properties": {
            "inputs": {"oneOf": [{"type": "object"}, {"type": "array"}]}}},
    ],
}
_INVOCATIONS_OPENAPI = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": _SCORING_SCHEMA,
                             "example": {"dataframe_records": [{"x": 1.0}]}},
        "text/csv": {"schema": {"type": "string"}}}},
    "responses": {"200": {"description": "Predictions and the version that made them.",
                          "headers": {"x-model-version": {"schema": {"type": "string"}}}},
                  "400": {"description": "Not JSON."},
                  "401": {"description": "No or wrong inference token (when one is on)."},
                  "413": {"description": "Too large."},
                  "415": {"description": "Wrong Content-Type."},
                  "422": {"description": "A field is missing, extra or of the wrong type."}},
}


class TokenAwareAPI(FastAPI):
    """FastAPI whose OpenAPI document declares the bearer scheme when this replica asks for
    the inference token, and requires it on every route but ``open_paths``.

    Serve gives each replica its own copy of the app, made before the replica's constructor
    runs, so whether a token is on is read from the replica (its ``auth``) when the schema is
    asked for, not fixed at import time.
    """

    open_paths: frozenset[str] = frozenset()

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        auth = getattr(_servable(), "auth", None)
        if isinstance(auth, TokenCheck) and auth.enabled:
            return secure_openapi(schema, self.open_paths)
        return schema


def _servable() -> Any:
    """The deployment instance of this replica (None outside a Serve replica)."""
    try:
        return serve.get_replica_context().servable_object
    except Exception:  # noqa: BLE001 - not in a replica
        return None


def unauthorized(exc: AuthenticationError, body: dict[str, Any] | None = None) -> JSONResponse:
    """The 401 answer: our error body and ``WWW-Authenticate: Bearer``."""
    return JSONResponse(exc.to_dict() if body is None else body, status_code=exc.http_status,
                        headers=challenge_headers(exc.context.get("reason")))


class _Api(TokenAwareAPI):
    open_paths = frozenset({"/ping"})  # liveness for load balancers, reveals nothing


api = _Api(
    title="raymlops model server",
    description="Online predictions from a registered model (MLflow scoring protocol). "
    "The Open Inference Protocol (v2) is served under /v2.",
)


class InvocationsFastPath:
    """ASGI middleware that answers ``POST <prefix>/invocations`` in a replica before FastAPI
    routes the request; everything else passes through to the app.

    Why: with the model compiled, a prediction costs the replica ~0.1 ms, and FastAPI's
    routing, dependency solving and Request/Response objects were the largest part of what
    was left (about a third of the replica's samples under load). The answer is the same
    method the declared FastAPI route calls (:meth:`ModelIngress.answer_invocations`), so
    both give the same bytes; the route remains for the OpenAPI document and outside a
    replica.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or not scope["path"].endswith("/invocations")
                or scope["path"][len(scope.get("root_path", "")):] != "/invocations"):
            await self.app(scope, receive, send)
            return
        ingress = _servable()
        answer = getattr(ingress, "answer_invocations", None)
        if answer is None:
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in scope["headers"]}
        status, content, extra = await answer(
            lambda: _read_body(receive, ingress.limits.max_body_bytes), headers,
            _query_value(scope.get("query_string", b""), "probabilities"))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(content)).encode()),
                                *((k.encode("latin-1"), v.encode("latin-1"))
                                  for k, v in extra.items())]})
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Any, limit: int) -> bytes:
    """The request body, read only up to one byte past ``limit`` (the parser then answers 413
    without the rest ever being buffered)."""
    chunks, size, more = [], 0, True
    while more and size <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequestError("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _query_value(query: bytes, name: str) -> str | None:
    """The last value of ``name`` in a query string, as Starlette's QueryParams reads it."""
    if not query or name.encode() not in query:
        return None
    from urllib.parse import parse_qsl

    values = [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
              if k == name]
    return values[-1] if values else None


api.add_middleware(InvocationsFastPath)


def unwrap_error(exc: BaseException) -> BaseException:
    """The typed error a replica raised, out of Ray's RayTaskError wrapper."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of any exception: typed errors say theirs; Serve overload -> 503."""
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    exc = unwrap_error(exc)
    if isinstance(exc, RaymlopsError):
        return exc.http_status, exc.to_dict()
    if isinstance(exc, (BackPressureError, DeploymentUnavailableError)):
        return 503, ClusterError(f"the model is overloaded or restarting: {exc}").to_dict()
    logger.error("unexpected error answering a request", exc_info=exc)
    return 500, {"detail": f"internal error: {type(exc).__name__}", "error": "InternalError"}


def _replica_died(exc: BaseException) -> bool:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
    from ray.serve.exceptions import ReplicaUnavailableError

    return isinstance(unwrap_error(exc), (ActorDiedError, ActorUnavailableError, RayActorError,
                                          ReplicaUnavailableError))


class ModelIngress:
    """Serve deployment class of the HTTP ingress.

    ``model`` is the bound handle of a separate ``Model`` deployment, or None: then the model
    runs in this replica (``colocate``, the default), which saves one hop per request (about
    half the latency of a small CPU model; see benchmarks/RESULTS.md) and scales with it.
    A separate deployment is for models that need other resources than HTTP does (a GPU).

    ``settings["inference_token"]`` is the token resolved by whoever built the application
    (:func:`raymlops.serving.auth.resolve_inference_token`), None when the routes ask for
    none; the replica only compares against it.

    ``extras`` (bound Canary / Shadow deployments) only put them in the application; the
    ingress finds them by name when its routing (``user_config``) changes, so adding one
    reconfigures this replica instead of replacing it.
    """

    def __init__(self, model: Any, name: str, ref: int | str, options: dict[str, Any],
                 extras: dict[str, Any] | None = None,  # noqa: ARG002 - binds them into the app
                 settings: dict[str, Any] | None = None) -> None:
        import random

        self.model = model
        self.local: Any = None
        if model is None:
            from raymlops.serving.model import ModelServer

            self.local = ModelServer(name, ref, settings or {}, options)
        self.name = name
        self.ref = ref
        self.options = options
        self.auth = TokenCheck((settings or {}).get("inference_token"))
        opts = DeploymentOptions(**options)
        self.limits = Limits(max_body_bytes=opts.max_body_bytes, max_rows=opts.max_rows)
        self.metrics = ServingMetrics(name)
        self.routing = Routing()
        self.canary: Any = None
        self.shadow: Any = None
        self.shadow_counts = {"sent": 0, "agreed": 0, "disagreed": 0, "failed": 0}
        self._rng = random.Random()  # noqa: S311 - a traffic split, not a secret
        self._shadow_tasks: set[Any] = set()

    def reconfigure(self, config: dict[str, Any]) -> None:
        """New routing (canary / shadow): take handles to the deployments it names."""
        routing = Routing(**(config or {}))
        self.canary = (serve.get_deployment_handle("Canary", _check_exists=False)
                       if routing.canary else None)
        self.shadow = (serve.get_deployment_handle("Shadow", _check_exists=False)
                       if routing.shadow else None)
        self.routing = routing

    def deployed(self) -> dict[str, Any]:
        """What this application was deployed with (traffic commands rebuild from it)."""
        return {"ref": self.ref, "options": self.options,
                "routing": self.routing.model_dump(mode="json"),
                "shadow": dict(self.shadow_counts)}

    async def _predict(self, frame: Any, proba: bool, request_id: str,
                       sticky: str | None) -> dict[str, Any]:
        """Primary or canary answers; a shadow copy runs after, never awaited by the caller."""
        routing, target, route = self.routing, self.model, "primary"
        if routing.canary and self.canary is not None:
            header = sticky if routing.canary.sticky_header else None
            if choose_canary(routing.canary.percent, header, self._rng):
                target, route = self.canary, "canary"
        if target is None:  # the model lives in this replica: no hop
            result = await self.local.predict(frame, proba, request_id)
            if self.shadow is not None:
                self._start_shadow(frame, request_id, result)
            return {**result, "route": route}
        try:
            result = await target.predict.remote(frame, proba, request_id)
        except Exception as exc:
            # A replica that died mid-request (killed, node lost): predictions are pure, so
            # ask again once; Serve routes the retry to a live replica.
            if not _replica_died(exc):
                raise
            result = await target.predict.remote(frame, proba, request_id)
        if self.shadow is not None and route == "primary":
            self._start_shadow(frame, request_id, result)
        return {**result, "route": route}

    def _start_shadow(self, frame: Any, request_id: str, primary: dict[str, Any]) -> None:
        import asyncio

        import numpy as np

        async def run() -> None:
            self.shadow_counts["sent"] += 1
            try:
                other = await self.shadow.predict.remote(frame, False, request_id)
            except Exception:  # noqa: BLE001 - a failing shadow never reaches the caller
                self.shadow_counts["failed"] += 1
                return
            same = np.array_equal(np.asarray(other["predictions"]),
                                  np.asarray(primary["predictions"]))
            self.shadow_counts["agreed" if same else "disagreed"] += 1

        task = asyncio.get_running_loop().create_task(run())
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    def _sticky(self, headers: Any) -> str | None:
        """The sticky-canary header's value; ``headers`` has lower-case names (ASGI's, or
        Starlette's case-insensitive mapping)."""
        canary = self.routing.canary
        if not (canary and canary.sticky_header):
            return None
        return headers.get(canary.sticky_header.lower())

    def _answer(self, endpoint: str, started: float, status: int, body: dict[str, Any],
                version: int | None, request_id: str, route: str | None = None,
                ) -> tuple[int, bytes, dict[str, str]]:
        """(status, JSON bytes, headers) of an answer, counted in the metrics."""
        headers = {"content-type": "application/json", "x-request-id": request_id}
        if status == 401:
            headers.update(challenge_headers((body.get("context") or {}).get("reason")))
        if route is not None:
            headers["x-model-route"] = route
        if version is not None:
            headers["x-model-version"] = str(version)
        error = body.get("error") if status >= 400 else None
        self.metrics.request(endpoint, version, status, (time.perf_counter() - started) * 1000,
                             error)
        return status, json.dumps(body).encode(), headers

    async def answer_invocations(self, read_body: Callable[[], Awaitable[bytes]], headers: Any,
                                 probabilities: str | None,
                                 ) -> tuple[int, bytes, dict[str, str]]:
        """``POST /invocations``: (status, JSON bytes, headers), every failure a typed answer.

        The token and the declared length are checked before ``read_body`` is called, so an
        unauthorised or oversize request never has its body read. ``headers`` has lower-case
        names; ``probabilities`` is the raw query value (None when absent).
        """
        started = time.perf_counter()
        request_id = headers.get("x-request-id") or uuid.uuid4().hex
        try:
            self.auth.check(headers.get("authorization"))  # before reading the body
            check_content_length(headers.get("content-length"), self.limits)
            proba = query_flag("probabilities", probabilities)
            frame = parse_invocations(await read_body(), headers.get("content-type"),
                                      self.limits, as_columns=True)
            result = await self._predict(frame, proba, request_id, self._sticky(headers))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON answer
            status, error = error_body(exc)
            version = (error.get("context") or {}).get("version")
            return self._answer("invocations", started, status, error, version, request_id)
        answer = {"predictions": jsonable(result["predictions"]), "model": self.name,
                  "version": result["version"]}
        if proba:
            answer["probabilities"] = jsonable(result["proba"])
            answer["classes"] = result["classes"]
        return self._answer("invocations", started, 200, answer, result["version"], request_id,
                            result["route"])

    @api.post("/invocations", openapi_extra=_INVOCATIONS_OPENAPI, response_model=None,
              summary="Predict (MLflow scoring formats)")
    async def invocations(self, request: Request, probabilities: str | None = None) -> Response:
        """Declared for the OpenAPI document; in a replica :class:`InvocationsFastPath`
        answers these requests before FastAPI routes them, with the same method."""
        status, content, headers = await self.answer_invocations(
            request.body, request.headers, probabilities)
        return Response(content, status_code=status, headers=headers)

    async def _metadata(self) -> dict[str, Any]:
        if self.local is not None:
            return self.local.metadata()
        return await self.model.metadata.remote()

    @api.get("/", summary="Model metadata: version served, inputs, feature service",
             response_model=None)
    async def describe(self, request: Request) -> JSONResponse:
        try:
            self.auth.check(request.headers.get("authorization"))
        except AuthenticationError as exc:
            return unauthorized(exc)
        return JSONResponse(await self._metadata())

    @api.get("/ping", summary="Liveness (MLflow's scoring client polls it); no token needed")
    async def ping(self) -> Response:
        return Response("\n", media_type="application/json")

    @api.get("/version", summary="The model version answering now", response_model=None)
    async def version(self, request: Request) -> Response:
        try:
            self.auth.check(request.headers.get("authorization"))
        except AuthenticationError as exc:
            return unauthorized(exc)
        meta = await self._metadata()
        return Response(str(meta["version"]), media_type="text/plain",
                        headers={"x-model-version": str(meta["version"])})

    # -- Open Inference Protocol, called by the /v2 gateway through a handle ----------------

    async def v2_infer(self, body: bytes, content_type: str | None, content_length: str | None,
                       header_length: str | None = None, headers: dict[str, str] | None = None,
                       ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, headers) of ``POST /v2/models/{name}/infer``.

        ``header_length`` is ``Inference-Header-Content-Length`` (binary tensor extension).
        Answers are always JSON tensors, which clients accept whatever they asked for.
        """
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        try:
            check_content_length(content_length, self.limits)
            parsed = parse_v2_infer(body, content_type, self.limits, header_length)
            request_id = parsed.id or request_id
            unknown = [o for o in parsed.outputs if o not in ("predict", "predict_proba")]
            if unknown:
                from raymlops.exceptions import ValidationError

                raise ValidationError(f"unknown output {unknown[0]!r}: this model has "
                                      "'predict' and 'predict_proba'", field=unknown[0])
            proba = "predict_proba" in parsed.outputs
            result = await self._predict(parsed.frame, proba, request_id,
                                         self._sticky(headers or {}))
        except Exception as exc:  # noqa: BLE001
            status, err = error_body(exc)
            self.metrics.request("v2_infer", None, status,
                                 (time.perf_counter() - started) * 1000, err.get("error"))
            return status, err, {"x-request-id": request_id}
        outputs = {}
        if not parsed.outputs or "predict" in parsed.outputs:
            outputs["predict"] = result["predictions"]
        if proba:
            outputs["predict_proba"] = result["proba"]
        version = result["version"]
        self.metrics.request("v2_infer", version, 200, (time.perf_counter() - started) * 1000)
        return (200, v2_response(self.name, version, parsed.id, outputs),
                {"x-model-version": str(version), "x-request-id": request_id,
                 "x-model-route": result["route"]})

    async def v2_metadata(self) -> dict[str, Any]:
        """``GET /v2/models/{name}``: name, versions, platform, input and output tensors."""
        meta = await self._metadata()
        inputs = [{"name": c["name"], "datatype": V2_DATATYPES.get(c["type"], "BYTES"),
                   "shape": [-1]} for c in (meta["inputs"] or [])]
        outputs = [{"name": "predict", "datatype": "BYTES" if meta["task"] is None else
                    ("INT64" if meta["task"] == "classification" else "FP64"), "shape": [-1]}]
        if meta["task"] == "classification":
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
        return {"name": self.name, "versions": [str(meta["version"])],
                "platform": f"raymlops_{meta['flavor']}", "inputs": inputs, "outputs": outputs}

    async def ready(self) -> bool:
        await self._metadata()
        return True

    async def stats(self) -> dict[str, Any]:
        """The model's stats (version, swaps, counts, pid) plus HTTP counts and shadow counts."""
        model = self.local.stats() if self.local is not None else await self.model.stats.remote()
        return {**model, "http": self.metrics.snapshot(), "shadow": dict(self.shadow_counts)}

    async def flush_log(self) -> int:
        """Write the primary model's pending prediction log now; files written."""
        if self.local is not None:
            return self.local.flush_log()
        return await self.model.flush_log.remote()

    def check_health(self) -> None:
        if self.local is not None:
            self.local.check_health()

    def __del__(self) -> None:
        local = getattr(self, "local", None)
        if local is not None:
            local.__del__()


ModelIngress = serve.ingress(api)(ModelIngress)
