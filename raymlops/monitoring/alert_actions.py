"""What an alert does when it fires or resolves: log, signed webhook, continuous training.

Every action returns a small result dict (kept in the alert's history) and never raises: a
webhook that is down must not stop the log line or the CT request. No result, log line or
exception message ever contains a webhook secret -- only the name of its variable or file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from raymlops.exceptions import RaymlopsError
from raymlops.monitoring.alert_eval import Transition
from raymlops.monitoring.alert_rules import LogAction, TriggerCTAction, WebhookAction

__all__ = ["SIGNATURE_HEADER", "run_actions", "sign", "verify"]

SIGNATURE_HEADER = "X-Raymlops-Signature"
log = logging.getLogger("raymlops.alerts")


def sign(body: bytes, secret: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` -- what ``X-Raymlops-Signature`` carries."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str, secret: bytes) -> bool:
    """For receivers: constant-time check of a signature against the exact body bytes."""
    return hmac.compare_digest(sign(body, secret), signature)


def _log(t: Transition) -> dict[str, Any]:
    level = logging.WARNING if t.rule.severity != "info" else logging.INFO
    log.log(level, "alert %s %s [%s] %s labels=%s value=%s", t.rule.name, t.status,
            t.rule.severity, t.summary(), dict(t.labels), t.value)
    return {"action": "log", "ok": True}


def _webhook(t: Transition, action: WebhookAction) -> dict[str, Any]:
    result: dict[str, Any] = {"action": "webhook", "url": action.url, "ok": False}
    try:
        secret = action.secret()
    except RaymlopsError as exc:  # its message names the variable/file, not a value
        result["error"] = exc.message
        log.error("alert %s: webhook not sent: %s", t.rule.name, exc.message)
        return result
    body = json.dumps(t.to_dict(), sort_keys=True, default=str).encode()
    # The URL is http(s): WebhookAction refuses any other scheme when the rules are loaded.
    request = urllib.request.Request(action.url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json", SIGNATURE_HEADER: sign(body, secret)})
    for attempt in (1, 2):
        try:
            with urllib.request.urlopen(request, timeout=action.timeout_s) as resp:  # noqa: S310
                result.update(ok=200 <= resp.status < 300, status=resp.status, attempts=attempt)
                return result
        except urllib.error.HTTPError as exc:
            result.update(status=exc.code, error=f"HTTP {exc.code}", attempts=attempt)
            if exc.code < 500:
                break
        except OSError as exc:
            result.update(error=f"{type(exc).__name__}: {exc}", attempts=attempt)
    log.error("alert %s: webhook %s failed: %s", t.rule.name, action.url, result.get("error"))
    return result


CTRequester = Callable[[str, Transition], str]


def run_actions(t: Transition, request_ct: CTRequester | None) -> list[dict[str, Any]]:
    """Run a transition's actions; ``request_ct(model, transition)`` records a CT request
    (injected: the actor passes one that writes to MLflow)."""
    results = []
    for action in t.rule.actions:
        if isinstance(action, LogAction):
            results.append(_log(t))
        elif isinstance(action, WebhookAction):
            if t.status == "firing" or action.send_resolved:
                results.append(_webhook(t, action))
        elif isinstance(action, TriggerCTAction) and t.status == "firing":
            try:
                if request_ct is None:
                    raise RuntimeError("no CT requester configured")
                results.append({"action": "trigger_ct", "model": action.model, "ok": True,
                                "run_id": request_ct(action.model, t)})
            except Exception as exc:  # noqa: BLE001 - recorded in the alert's history
                log.error("alert %s: CT request for %s failed: %s", t.rule.name, action.model, exc)
                results.append({"action": "trigger_ct", "model": action.model, "ok": False,
                                "error": f"{type(exc).__name__}: {exc}"})
    return results
