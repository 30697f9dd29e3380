"""The ``/v2`` application: the Open Inference Protocol (KServe v2) for every served model.

Serve routes by path prefix, one prefix per application, so the per-model applications own
``/models/{name}`` and this one owns ``/v2``. It parses nothing itself: it finds the model's
ingress by application name and forwards the raw body, so v2 and MLflow requests share the
same validation, batching, metrics and version reporting. Created by the first ``deploy``,
deleted with the last ``undeploy``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from raymlops import __version__
from raymlops.exceptions import ModelNotFoundError
from raymlops.serving.ingress import error_body

__all__ = ["GATEWAY_APP", "Gateway", "app_name"]

GATEWAY_APP = "raymlops-v2"
APP_PREFIX = "model-"
HANDLE_TTL_S = 10.0

api = FastAPI(
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
    """Serve deployment class of the ``/v2`` application."""

    def __init__(self) -> None:
        self._handles: dict[str, tuple[Any, float]] = {}

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
    async def server_metadata(self) -> JSONResponse:
        return JSONResponse({"name": "raymlops", "version": __version__, "extensions": []})

    @api.get("/health/live", summary="Server liveness")
    async def live(self) -> JSONResponse:
        return JSONResponse({"live": True})

    @api.get("/health/ready", summary="Server readiness")
    async def ready(self) -> JSONResponse:
        return JSONResponse({"ready": True})

    @api.get("/models/{model}", summary="Model metadata: versions, input and output tensors")
    async def model_metadata(self, model: str) -> JSONResponse:
        try:
            ingress = await self._ingress(model)
            return JSONResponse(await ingress.v2_metadata.remote())
        except Exception as exc:  # noqa: BLE001
            status, body = error_body(exc)
            return JSONResponse(v2_error(body), status_code=status)

    @api.get("/models/{model}/ready", summary="Model readiness")
    async def model_ready(self, model: str) -> JSONResponse:
        try:
            ingress = await self._ingress(model)
            await ingress.ready.remote()
        except Exception as exc:  # noqa: BLE001
            status, body = error_body(exc)
            return JSONResponse(v2_error(body), status_code=status)
        return JSONResponse({"name": model, "ready": True})

    @api.post("/models/{model}/infer", summary="Inference (JSON tensors)", response_model=None)
    async def infer(self, model: str, request: Request) -> Response:
        try:
            ingress = await self._ingress(model)
            status, body, headers = await ingress.v2_infer.remote(
                await request.body(), request.headers.get("content-type"),
                request.headers.get("content-length"),
                request.headers.get("inference-header-content-length"),
                dict(request.headers))
        except Exception as exc:  # noqa: BLE001
            status, body = error_body(exc)
            headers = {}
        if status >= 400:
            body = v2_error(body)
        return Response(json.dumps(body), status_code=status, headers=headers,
                        media_type="application/json")


Gateway = serve.ingress(api)(Gateway)
