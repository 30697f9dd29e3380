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
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from raymlops.exceptions import AuthenticationError, ClusterError, RaymlopsError
from raymlops.serving.auth import TokenCheck, challenge_headers, secure_openapi
from raymlops.serving.metrics import ServingMetrics
from raymlops.serving.options import DeploymentOptions
from raymlops.serving.protocol import (
    Limits,
    check_content_length,
    jsonable,
    parse_invocations,
    parse_v2_infer,
    v2_response,
)
from raymlops.serving.schema import V2_DATATYPES

__all__ = ["ModelIngress", "TokenAwareAPI", "error_body", "unauthorized", "unwrap_error"]

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
                 extras: dict[str, Any] | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        import random

        from raymlops.serving.traffic import Routing

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
        self._rng = random.Random()
        self._shadow_tasks: set[Any] = set()

    def reconfigure(self, config: dict[str, Any]) -> None:
        """New routing (canary / shadow): take handles to the deployments it names."""
        from raymlops.serving.traffic import Routing

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
        from raymlops.serving.traffic import choose_canary

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
        except Exception as exc:  # noqa: BLE001
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
        canary = self.routing.canary
        return headers.get(canary.sticky_header) if canary and canary.sticky_header else None

    def _answer(self, endpoint: str, started: float, status: int, body: dict[str, Any],
                version: int | None, request_id: str, route: str | None = None) -> Response:
        headers = {"x-request-id": request_id}
        if status == 401:
            headers.update(challenge_headers((body.get("context") or {}).get("reason")))
        if route is not None:
            headers["x-model-route"] = route
        if version is not None:
            headers["x-model-version"] = str(version)
        error = body.get("error") if status >= 400 else None
        self.metrics.request(endpoint, version, status, (time.perf_counter() - started) * 1000,
                             error)
        return Response(json.dumps(body), status_code=status, headers=headers,
                        media_type="application/json")

    @api.post("/invocations", openapi_extra=_INVOCATIONS_OPENAPI, response_model=None,
              summary="Predict (MLflow scoring formats)")
    async def invocations(self, request: Request, probabilities: bool = False) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        try:
            self.auth.check(request.headers.get("authorization"))  # before reading the body
            check_content_length(request.headers.get("content-length"), self.limits)
            frame = parse_invocations(await request.body(), request.headers.get("content-type"),
                                      self.limits, as_columns=True)
            result = await self._predict(frame, probabilities, request_id,
                                         self._sticky(request.headers))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON answer
            status, body = error_body(exc)
            version = (body.get("context") or {}).get("version")
            return self._answer("invocations", started, status, body, version, request_id)
        body = {"predictions": jsonable(result["predictions"]), "model": self.name,
                "version": result["version"]}
        if probabilities:
            body["probabilities"] = jsonable(result["proba"])
            body["classes"] = result["classes"]
        return self._answer("invocations", started, 200, body, result["version"], request_id,
                            result["route"])

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
