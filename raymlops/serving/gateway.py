"""The ``/v2`` application: the Open Inference Protocol (KServe v2) for every served model.

Serve routes by path prefix, one prefix per application, so the per-model applications own
``/models/{name}`` and this one owns ``/v2``. It parses nothing itself: it finds the model's
ingress by application name and forwards the raw body, so v2 and MLflow requests share the
same validation, batching, metrics and version reporting. Created by the first ``deploy``,
deleted with the last ``undeploy``.

With an inference token (:mod:`raymlops.serving.auth`) every route but KServe's health probes
(``/v2/health/live``, ``/v2/health/ready``: what Kubernetes and load balancers call, without
credentials, and they say nothing about any model) answers 401 without
``Authorization: Bearer <token>``. The token is checked here, before anything is forwarded,
and the ``Authorization`` header is not forwarded to the model's replicas.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from raymlops._version import __version__
from raymlops.exceptions import AuthenticationError, ModelNotFoundError
from raymlops.serving.auth import TokenCheck
from raymlops.serving.ingress import TokenAwareAPI, error_body, unauthorized

__all__ = ["GATEWAY_APP", "Gateway", "app_name"]

GATEWAY_APP = "raymlops-v2"
APP_PREFIX = "model-"
HANDLE_TTL_S = 10.0


class _Api(TokenAwareAPI):
    open_paths = frozenset({"/health/live", "/health/ready"})  # probes: no model, no token


api = _Api(
    title="raymlops inference (Open Inference Protocol v2)",
    description="KServe v2 / Triton HTTP protocol over every model raymlops serves.",
)


def v2_error(body: dict[str, Any]) -> dict[str, Any]:
    """The v2 protocol's error shape (``{"error": message}``, what tritonclient shows) on top of
    ours (``detail``, ``context``; the class moves to ``error_type``)."""
    return {**body, "error": body.get("detail", ""), "error_type": body.get("error")}


def app_name(model: str) -> str:
    """The Serve application serving ``model`` (one per model)."""
    return f"{APP_PREFIX}{model}"


class Gateway:
    """Serve deployment class of the ``/v2`` application.

    ``inference_token``: the token resolved by whoever built the application (None: no
    token), compared on every request but the health probes.
    """

    def __init__(self, inference_token: str | None = None) -> None:
        self._handles: dict[str, tuple[Any, float]] = {}
        self.auth = TokenCheck(inference_token)

    def _denied(self, request: Request) -> JSONResponse | None:
        """The 401 answer (v2 error shape) when the request lacks the token, else None."""
        try:
            self.auth.check(request.headers.get("authorization"))
        except AuthenticationError as exc:
            return unauthorized(exc, v2_error(exc.to_dict()))
        return None

    def auth_fingerprint(self) -> str | None:
        """Which token this replica asks for, one-way (``deploy`` redeploys on a change)."""
        return self.auth.fingerprint

    async def _ingress(self, model: str) -> Any:
        cached = self._handles.get(model)
        if cached and time.monotonic() - cached[1] < HANDLE_TTL_S:
            return cached[0]
        from ray.serve.exceptions import RayServeException

        try:
            handle = await asyncio.to_thread(serve.get_app_handle, app_name(model))
        except RayServeException:
            self._handles.pop(model, None)
            raise ModelNotFoundError(f"model {model!r} is not deployed", name=model) from None
        self._handles[model] = (handle, time.monotonic())
        return handle

    @api.get("/", summary="Server metadata")
    async def server_metadata(self, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        return JSONResponse({"name": "raymlops", "version": __version__, "extensions": []})

    @api.get("/health/live", summary="Server liveness")
    async def live(self) -> JSONResponse:
        return JSONResponse({"live": True})

    @api.get("/health/ready", summary="Server readiness")
    async def ready(self) -> JSONResponse:
        return JSONResponse({"ready": True})

    @api.get("/models/{model}", summary="Model metadata: versions, input and output tensors")
    async def model_metadata(self, model: str, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            ingress = await self._ingress(model)
            return JSONResponse(await ingress.v2_metadata.remote())
        except Exception as exc:  # noqa: BLE001
            status, body = error_body(exc)
            return JSONResponse(v2_error(body), status_code=status)

    @api.get("/models/{model}/ready", summary="Model readiness")
    async def model_ready(self, model: str, request: Request) -> JSONResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            ingress = await self._ingress(model)
            await ingress.ready.remote()
        except Exception as exc:  # noqa: BLE001
            status, body = error_body(exc)
            return JSONResponse(v2_error(body), status_code=status)
        return JSONResponse({"name": model, "ready": True})

    @api.post("/models/{model}/infer", summary="Inference (JSON tensors)", response_model=None)
    async def infer(self, model: str, request: Request) -> Response:
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            ingress = await self._ingress(model)
            status, body, headers = await ingress.v2_infer.remote(
                await request.body(), request.headers.get("content-type"),
                request.headers.get("content-length"),
                request.headers.get("inference-header-content-length"),
                {k: v for k, v in request.headers.items() if k != "authorization"})
        except Exception as exc:  # noqa: BLE001
            status, body = error_body(exc)
            headers = {}
        if status >= 400:
            body = v2_error(body)
        return Response(json.dumps(body), status_code=status, headers=headers,
                        media_type="application/json")


Gateway = serve.ingress(api)(Gateway)
