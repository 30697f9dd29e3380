"""The replica's fast path for ``POST /invocations`` (an ASGI middleware in front of FastAPI):
the same answers as the declared route, query flags read as pydantic reads a bool, bodies
read only up to the limit. No Ray: Serve's replica context is faked, as in the token tests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from raymlops.exceptions import ValidationError
from raymlops.serving.ingress import InvocationsFastPath, _read_body
from raymlops.serving.protocol import query_flag
from tests.unit.test_inference_token import BODY, _ingress


@pytest.mark.parametrize("value,expected", [
    (None, False), ("true", True), ("True", True), ("1", True), ("yes", True), ("on", True),
    ("false", False), ("0", False), ("off", False), ("n", False),
])
def test_query_flag_reads_what_pydantic_reads(value: str | None, expected: bool) -> None:
    assert query_flag("probabilities", value) is expected


@pytest.mark.parametrize("value", ["", "maybe", "2", "truee", "x" * 500])
def test_a_bad_query_flag_is_a_422_naming_it(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        query_flag("probabilities", value)
    assert caught.value.http_status == 422 and caught.value.context["field"] == "probabilities"
    assert len(str(caught.value)) < 200


def test_fast_path_answers_what_the_route_answers(monkeypatch) -> None:
    """The middleware and FastAPI's route call the same method: same status, body, headers."""
    client, instance, model = _ingress(monkeypatch, None)
    called: list[str] = []
    original = InvocationsFastPath.__call__

    async def spying(self: Any, scope: Any, receive: Any, send: Any) -> None:
        called.append(scope.get("path", scope["type"]))
        await original(self, scope, receive, send)

    monkeypatch.setattr(InvocationsFastPath, "__call__", spying)
    from starlette.routing import Router

    routed: list[str] = []
    route_original = Router.__call__

    async def routing(self: Any, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope.get("path", scope["type"]))
        await route_original(self, scope, receive, send)

    monkeypatch.setattr(Router, "__call__", routing)
    with client:
        fast = client.post("/invocations?probabilities=true", json=BODY)
        bad = client.post("/invocations?probabilities=perhaps", json=BODY)
        as_text = client.post("/invocations", content=b"x,y\n", headers={"content-type": "text/plain"})
    assert called.count("/invocations") == 3  # every request went through the middleware
    assert "/invocations" not in routed  # and none of them reached FastAPI's router
    assert fast.status_code == 200 and fast.json()["predictions"] == [0, 0]
    assert fast.headers["x-model-version"] == "3" and fast.headers["x-model-route"] == "primary"
    assert fast.headers["content-type"] == "application/json"
    assert bad.status_code == 422 and bad.json()["error"] == "ValidationError"
    assert bad.json()["context"] == {"field": "probabilities"}
    assert as_text.status_code == 415
    assert model.calls == 1
    assert client.get("/version").text == "3" and "/version" in routed  # others pass through

    route = asyncio.run(instance.answer_invocations(
        _async_bytes(b'{"dataframe_records": [{"x": 1.0}, {"x": 2.0}]}'),
        {"content-type": "application/json", "x-request-id": fast.headers["x-request-id"]},
        "true"))
    assert route[0] == 200 and route[1] == fast.content


def _async_bytes(data: bytes):
    async def read() -> bytes:
        return data
    return read


def test_the_body_is_read_only_up_to_the_limit() -> None:
    """A chunked upload without Content-Length stops being read one byte past the limit."""
    sent = [{"type": "http.request", "body": b"x" * 100, "more_body": True} for _ in range(50)]
    taken: list[dict] = []

    async def receive() -> dict:
        taken.append(sent[len(taken)])
        return taken[-1]

    body = asyncio.run(_read_body(receive, limit=250))
    assert len(body) == 300 and len(taken) == 3
