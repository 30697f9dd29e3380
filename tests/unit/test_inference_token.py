"""The inference token without Ray: where it comes from, the check, and the HTTP apps' answers.

The ingress and gateway apps are exercised through FastAPI's TestClient with Serve's replica
context pointed at a plain instance of the deployment class (what Serve's class-based views
inject as ``self``); the model behind the ingress is a fake handle.
"""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from raymlops.config import Settings, load_settings
from raymlops.exceptions import AuthenticationError, ConfigError, error_from_dict
from raymlops.serving.auth import (
    SECURITY_SCHEME,
    TOKEN_FILE,
    TokenCheck,
    auth_headers,
    client_headers,
    is_loopback,
    resolve_inference_token,
    secure_openapi,
    token_hint,
    token_path,
)

TOKEN = "s3cret-T0ken_value~"


def settings_for(tmp_path: Path, **values: Any) -> Settings:
    return load_settings(storage_root=tmp_path / "root", **values)


# -- where the token comes from --------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost",
                                  "LOCALHOST", "::ffff:127.0.0.1"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "192.168.1.10", "head.example",
                                  "fe80::1"])
def test_hosts_others_may_reach_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_loopback_serving_needs_no_token_and_writes_nothing(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert settings.serve_host == "127.0.0.1"
    assert resolve_inference_token(settings) is None
    assert not token_path(settings).exists()
    assert client_headers(settings) == {}
    assert token_hint(settings) is None


def test_the_setting_wins_even_on_loopback(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, inference_token=TOKEN)
    assert resolve_inference_token(settings) == TOKEN
    assert not token_path(settings).exists()
    wide = settings_for(tmp_path, inference_token=TOKEN, serve_host="0.0.0.0")
    assert resolve_inference_token(wide) == TOKEN
    assert not token_path(wide).exists()
    assert client_headers(wide) == {"Authorization": f"Bearer {TOKEN}"}


def test_the_setting_from_env_is_shown_by_name_never_by_value(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("RAYMLOPS_INFERENCE_TOKEN", TOKEN)
    settings = load_settings(storage_root=tmp_path / "root")
    assert resolve_inference_token(settings) == TOKEN
    hint = token_hint(settings)
    assert hint is not None and "$RAYMLOPS_INFERENCE_TOKEN" in hint and TOKEN not in hint
    assert settings.public_dict()["inference_token"] == "***"


def test_an_empty_setting_means_none(tmp_path: Path) -> None:
    assert resolve_inference_token(settings_for(tmp_path, inference_token="")) is None


@pytest.mark.parametrize("bad", ["has space", "tab\there", "caf\u00e9"])
def test_a_token_that_cannot_travel_in_a_header_is_refused_without_showing_it(
        tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_inference_token(settings_for(tmp_path, inference_token=bad))
    assert info.value.context["field"] == "inference_token"
    assert bad not in info.value.message


def test_a_wide_host_gets_a_generated_token_kept_0600_and_stable(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, serve_host="0.0.0.0")
    token = resolve_inference_token(settings)
    assert token and len(token) >= 40  # secrets.token_urlsafe(32): 43 characters
    path = token_path(settings)
    assert path == settings.state_dir / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == token
    assert resolve_inference_token(settings) == token  # read back, not made again
    again = settings_for(tmp_path, serve_host="10.1.2.3")  # same root, same state dir
    assert resolve_inference_token(again) == token
    assert [p.name for p in path.parent.iterdir() if TOKEN_FILE in p.name] == [TOKEN_FILE]
    hint = token_hint(settings)
    assert hint is not None and str(path) in hint and token not in hint


def test_an_empty_token_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, serve_host="0.0.0.0")
    token_path(settings).parent.mkdir(parents=True)
    token_path(settings).write_text("\n")
    with pytest.raises(ConfigError) as info:
        resolve_inference_token(settings)
    assert str(token_path(settings)) in info.value.message


def _race(root: str, start, out) -> None:
    from raymlops.config import load_settings
    from raymlops.serving.auth import resolve_inference_token

    settings = load_settings(storage_root=root, serve_host="0.0.0.0")
    start.wait()
    out.put(resolve_inference_token(settings))


def test_racing_creators_agree_on_one_token(tmp_path: Path) -> None:
    """Processes that find no file at the same moment all make one: exactly one is kept, and
    every process returns that one (the losers read it back)."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    root = str(tmp_path / "root")
    procs = [ctx.Process(target=_race, args=(root, start, out)) for _ in range(6)]
    for p in procs:
        p.start()
    start.set()
    tokens = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    settings = load_settings(storage_root=root, serve_host="0.0.0.0")
    assert len(set(tokens)) == 1
    assert token_path(settings).read_text().strip() == tokens[0]
    leftovers = [p.name for p in token_path(settings).parent.iterdir() if p.name != TOKEN_FILE]
    assert not [n for n in leftovers if TOKEN_FILE in n]  # no temporary file stays behind


def test_a_creator_that_loses_the_race_returns_the_winners_token(tmp_path: Path) -> None:
    """The losing path forced: the file appeared after the caller found none, so ``link``
    fails and the caller returns the token already there (and leaves it as it was)."""
    from raymlops.serving import auth

    settings = settings_for(tmp_path, serve_host="0.0.0.0")
    path = token_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text("winner-token\n")
    assert auth._create_token(path) == "winner-token"
    assert path.read_text() == "winner-token\n"


# -- the check ---------------------------------------------------------------------------------


def test_without_a_token_everything_passes() -> None:
    check = TokenCheck(None)
    assert not check.enabled and check.fingerprint is None
    check.check(None)
    check.check("Bearer anything")


def _reason(check: TokenCheck, header: str | None) -> str:
    with pytest.raises(AuthenticationError) as info:
        check.check(header)
    err = info.value
    assert err.http_status == 401
    shown = str(err.to_dict())
    assert TOKEN[:-1] not in shown and "wrong" not in shown  # neither token is echoed
    return err.context["reason"]


@pytest.mark.parametrize("header, reason", [
    (None, "missing"),
    ("", "missing"),
    ("Bearer", "scheme"),
    ("Bearer    ", "scheme"),
    (f"Basic {TOKEN}", "scheme"),
    (TOKEN, "scheme"),
    ("Bearer wrong", "invalid"),
    (f"Bearer {TOKEN[:-1]}", "invalid"),  # a prefix
    (f"Bearer {TOKEN}x", "invalid"),  # longer
    (f"Bearer {TOKEN[:-1]}X", "invalid"),  # differs in the last character only
    (f"Bearer {TOKEN.upper()}", "invalid"),  # the token is case-sensitive
    ("Bearer caf\u00e9\u20ac", "invalid"),  # not even latin-1
])
def test_missing_malformed_and_wrong_tokens_get_401(header: str | None, reason: str) -> None:
    assert _reason(TokenCheck(TOKEN), header) == reason


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}",
                                    f"  Bearer   {TOKEN}  "])
def test_the_right_token_passes_whatever_the_schemes_case(header: str) -> None:
    check = TokenCheck(TOKEN)
    assert check.enabled
    check.check(header)


def test_the_check_keeps_only_a_digest_of_the_token() -> None:
    check = TokenCheck(TOKEN)
    assert TOKEN.encode() not in repr([getattr(check, s) for s in TokenCheck.__slots__]).encode()
    assert check.fingerprint == TokenCheck(TOKEN).fingerprint != TokenCheck("other").fingerprint


def test_authentication_error_round_trips_and_is_a_client_error() -> None:
    err = AuthenticationError("the inference token is not valid", reason="invalid")
    again = error_from_dict(err.to_dict())
    assert type(again) is AuthenticationError and again.context == {"reason": "invalid"}
    assert AuthenticationError.http_status == 401


def test_client_headers() -> None:
    assert auth_headers(None) == {} and auth_headers("") == {}
    assert auth_headers(TOKEN) == {"Authorization": f"Bearer {TOKEN}"}


def test_openapi_declares_the_scheme_on_every_path_but_the_open_ones() -> None:
    schema = {"openapi": "3.1.0", "paths": {
        "/invocations": {"post": {"summary": "p"}},
        "/ping": {"get": {"summary": "l"}},
        "/models/{model}": {"get": {"summary": "m"}, "parameters": [{"name": "model"}]},
    }}
    secured = secure_openapi(schema, {"/ping"})
    assert secured["components"]["securitySchemes"][SECURITY_SCHEME] == {
        "type": "http", "scheme": "bearer", "description": secured["components"]
        ["securitySchemes"][SECURITY_SCHEME]["description"]}
    assert secured["paths"]["/invocations"]["post"]["security"] == [{SECURITY_SCHEME: []}]
    assert secured["paths"]["/models/{model}"]["get"]["security"] == [{SECURITY_SCHEME: []}]
    assert secured["paths"]["/models/{model}"]["parameters"] == [{"name": "model"}]
    assert "security" not in secured["paths"]["/ping"]["get"]
    assert "security" not in schema["paths"]["/invocations"]["post"]  # the input is untouched


# -- the HTTP apps -----------------------------------------------------------------------------


class _Remote:
    def __init__(self, fn) -> None:
        self.remote = fn


class FakeModel:
    """What ModelIngress calls on a separate Model deployment's handle."""

    def __init__(self) -> None:
        self.calls = 0

        async def predict(frame, proba, request_id):
            self.calls += 1
            return {"version": 3, "predictions": np.zeros(len(frame), dtype=int), "proba": None,
                    "classes": None}

        async def metadata():
            return {"version": 3, "inputs": [{"name": "x", "type": "double"}],
                    "task": "classification", "flavor": "sklearn"}

        self.predict = _Remote(predict)
        self.metadata = _Remote(metadata)


def _as_replica(monkeypatch: pytest.MonkeyPatch, instance: Any) -> None:
    """Serve's class-based views take ``self`` from the replica context: make it ``instance``."""
    from ray import serve

    monkeypatch.setattr(serve, "get_replica_context",
                        lambda: SimpleNamespace(servable_object=instance))


def _ingress(monkeypatch: pytest.MonkeyPatch, token: str | None):
    from fastapi.testclient import TestClient

    from raymlops.serving.ingress import ModelIngress, api

    cls = ModelIngress.__mro__[1]  # the class under Serve's wrapper (whose __init__ is async)
    model = FakeModel()
    instance = cls.__new__(cls)
    cls.__init__(instance, model, "m", 3, {}, None, {"inference_token": token})
    _as_replica(monkeypatch, instance)
    return TestClient(api), instance, model


BODY = {"dataframe_records": [{"x": 1.0}, {"x": 2.0}]}


def test_ingress_asks_for_the_token_on_everything_but_ping(monkeypatch) -> None:
    client, instance, model = _ingress(monkeypatch, TOKEN)
    with client:
        r = client.post("/invocations", json=BODY)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        body = r.json()
        assert body["error"] == "AuthenticationError" and body["detail"]
        assert body["context"] == {"reason": "missing"}
        assert TOKEN not in r.text
        assert model.calls == 0  # refused before anything was parsed or predicted

        r = client.post("/invocations", json=BODY, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
        r = client.post("/invocations", json=BODY, headers={"Authorization": f"Basic {TOKEN}"})
        assert r.status_code == 401 and r.json()["context"]["reason"] == "scheme"

        ok = auth_headers(TOKEN)
        r = client.post("/invocations", json=BODY, headers=ok)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [0, 0] and r.headers["x-model-version"] == "3"
        assert model.calls == 1

        for path in ("/", "/version"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=ok).status_code == 200, path
        refused = client.get("/").json()
        assert refused["error"] == "AuthenticationError" and refused["detail"]
        assert client.get("/version", headers=ok).text == "3"
        assert client.get("/ping").status_code == 200  # liveness stays open
        assert client.get("/docs").status_code == 200  # so a browser finds "Authorize"
        schema = client.get("/openapi.json").json()
    assert SECURITY_SCHEME in schema["components"]["securitySchemes"]
    assert schema["paths"]["/invocations"]["post"]["security"] == [{SECURITY_SCHEME: []}]
    assert "security" not in schema["paths"]["/ping"]["get"]
    assert instance.metrics.snapshot()["status_401"] == 3  # refusals are counted like errors


def test_ingress_without_a_token_is_open_and_its_docs_declare_no_scheme(monkeypatch) -> None:
    client, _, _ = _ingress(monkeypatch, None)
    with client:
        assert client.post("/invocations", json=BODY).status_code == 200
        assert client.get("/").status_code == 200
        assert client.get("/version").text == "3"
        schema = client.get("/openapi.json").json()
    assert SECURITY_SCHEME not in (schema.get("components") or {}).get("securitySchemes", {})
    assert "security" not in schema["paths"]["/invocations"]["post"]


def test_gateway_asks_for_the_token_on_everything_but_the_health_probes(monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from raymlops.serving.gateway import Gateway, api

    cls = Gateway.__mro__[1]
    gateway = cls.__new__(cls)
    cls.__init__(gateway, TOKEN)
    forwarded: list[dict[str, str]] = []

    class FakeIngress:
        def __init__(self) -> None:
            async def v2_infer(body, content_type, length, header_length, headers):
                forwarded.append(headers)
                return 200, {"model_name": "m", "outputs": []}, {"x-model-version": "3"}

            async def v2_metadata():
                return {"name": "m"}

            async def ready():
                return True

            self.v2_infer, self.v2_metadata, self.ready = (
                _Remote(v2_infer), _Remote(v2_metadata), _Remote(ready))

    async def ingress(model: str) -> Any:
        return FakeIngress()

    gateway._ingress = ingress
    _as_replica(monkeypatch, gateway)
    ok = auth_headers(TOKEN)
    infer = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    with TestClient(api) as client:
        for method, path in [("get", "/"), ("get", "/models/m"), ("get", "/models/m/ready"),
                             ("post", "/models/m/infer")]:
            kwargs = {"json": infer} if method == "post" else {}
            r = client.request(method, path, **kwargs)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            body = r.json()  # the v2 shape on top of ours
            assert body["error_type"] == "AuthenticationError" and body["error"] == body["detail"]
            wrong = client.request(method, path, headers={"Authorization": "Bearer x"}, **kwargs)
            assert wrong.status_code == 401, path
            assert client.request(method, path, headers=ok, **kwargs).status_code == 200, path
        assert client.get("/health/live").json() == {"live": True}
        assert client.get("/health/ready").json() == {"ready": True}
        schema = client.get("/openapi.json").json()
    assert forwarded and all("authorization" not in h for h in forwarded)  # not passed on
    assert "security" not in schema["paths"]["/health/live"]["get"]
    assert schema["paths"]["/models/{model}/infer"]["post"]["security"] == [{SECURITY_SCHEME: []}]
    assert gateway.auth_fingerprint() == TokenCheck(TOKEN).fingerprint
