"""The inference token over real HTTP: a model deployed with ``inference_token`` set answers
401 without ``Authorization: Bearer <token>`` and 200 with it, on its own routes and on the
``/v2`` gateway, while the health probes stay open.
"""

from __future__ import annotations

import httpx
import pytest

from tests.integration.serving_helpers import PAYLOAD, register_classifier, serve_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]

NAME = "serve-token"
TOKEN = "it-test-token-0123456789"


def test_token_is_required_on_invocations_and_v2_but_not_on_probes(platform) -> None:
    from ray import serve

    from raymlops import serving
    from raymlops.serving.api import build_gateway
    from raymlops.serving.auth import auth_headers
    from raymlops.serving.gateway import GATEWAY_APP

    base = serve_settings(platform)
    settings = base.model_copy(update={"inference_token": TOKEN})
    version = register_classifier(settings, NAME)
    serving.deploy(NAME, settings=settings)
    ok = auth_headers(TOKEN)
    v2_body = {"inputs": [{"name": "temp", "shape": [2], "datatype": "FP64", "data": [30.0, 70.0]},
                          {"name": "hour", "shape": [2], "datatype": "INT64", "data": [2, 22]}]}
    try:
        with httpx.Client(base_url=settings.serve_url, timeout=60) as http:
            # the model's own routes
            r = http.post(f"/models/{NAME}/invocations", json=PAYLOAD)
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["error"] == "AuthenticationError" and TOKEN not in r.text
            r = http.post(f"/models/{NAME}/invocations", json=PAYLOAD,
                          headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401, r.text
            r = http.post(f"/models/{NAME}/invocations", json=PAYLOAD, headers=ok)
            assert r.status_code == 200, r.text
            assert r.json()["version"] == version
            assert http.get(f"/models/{NAME}/").status_code == 401
            assert http.get(f"/models/{NAME}/", headers=ok).status_code == 200
            assert http.get(f"/models/{NAME}/ping").status_code == 200  # liveness stays open

            # the /v2 gateway (redeployed by deploy to ask for this token)
            r = http.post(f"/v2/models/{NAME}/infer", json=v2_body)
            assert r.status_code == 401, r.text
            assert r.json()["error_type"] == "AuthenticationError"
            r = http.post(f"/v2/models/{NAME}/infer", json=v2_body, headers=ok)
            assert r.status_code == 200, r.text
            assert r.headers["x-model-version"] == str(version)
            assert http.get(f"/v2/models/{NAME}").status_code == 401
            assert http.get(f"/v2/models/{NAME}", headers=ok).status_code == 200
            assert http.get("/v2/health/live").status_code == 200  # probes stay open
            assert http.get("/v2/health/ready").status_code == 200
    finally:
        serving.undeploy(NAME, settings=settings)
        # Other modules share this Serve instance: leave no token on a gateway that stays.
        if GATEWAY_APP in serve.status().applications:
            serve.run(build_gateway(base), name=GATEWAY_APP, route_prefix="/v2")
