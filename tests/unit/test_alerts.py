"""Alert rules, evaluation (for-duration, dedup, resolve), durable history, signed webhooks
(verified by a local receiver) and secrets that never show -- all without Ray."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from pathlib import Path

import pytest

from raymlops.config import load_settings
from raymlops.exceptions import ConfigError
from raymlops.monitoring.alert_actions import SIGNATURE_HEADER, sign, verify
from raymlops.monitoring.alert_eval import Evaluator
from raymlops.monitoring.alert_rules import load_rules
from raymlops.monitoring.alert_store import AlertStore
from raymlops.monitoring.alerts import AlertService
from raymlops.monitoring.scrape import Sample, parse, targets_from_sd_file
from tests.conftest import REPO

SECRET = "s3cr3t-hmac-key-never-shown"


def errors(value: float, model: str = "m", status: str = "500") -> Sample:
    return Sample("ray_raymlops_errors_total",
                  (("model", model), ("status", status), ("error", "x")), value)


def rules(for_s: str = "30s", **expr: object) -> dict:
    cond = {"metric": "raymlops_errors_total", "op": ">", "threshold": 5, "by": ["model"], **expr}
    return {"rules": [{"name": "errs", "expr": cond, "for": for_s, "severity": "critical"}]}


def test_example_rules_file_loads() -> None:
    loaded = load_rules(REPO / "cluster" / "alerts.yaml")
    assert [r.name for r in loaded.rules] == ["serving-errors", "dataset-drift", "live-auc-low",
                                              "stale-weather"]
    assert loaded.rules[0].for_s == 60 and loaded.interval_s == 15
    assert {a.type for r in loaded.rules for a in r.actions} == {"log", "webhook", "trigger_ct"}


@pytest.mark.parametrize(("change", "field"), [
    ({"bogus": 1}, "rules.0.bogus"),
    ({"for": "soon"}, "rules.0.for"),
    ({"expr": {"metric": "requests_total", "op": ">", "threshold": 1}}, "rules.0.expr.metric"),
    ({"expr": {"metric": "raymlops_x", "op": "=~", "threshold": 1}}, "rules.0.expr.op"),
    ({"actions": [{"type": "webhook", "url": "http://h/x"}]}, "rules.0.actions.0.webhook"),
    ({"actions": [{"type": "webhook", "url": "ftp://h", "secret_env": "E"}]}, "rules.0.actions.0.webhook"),
    ({"actions": [{"type": "page"}]}, "rules.0.actions.0"),
])
def test_bad_rules_are_a_config_error_naming_the_field(change: dict, field: str) -> None:
    data = rules()
    data["rules"][0].update(change)
    with pytest.raises(ConfigError) as err:
        load_rules(data)
    assert err.value.context["field"].startswith(field), err.value.message


def test_duplicate_rule_names_are_refused() -> None:
    data = rules()
    data["rules"].append(dict(data["rules"][0]))
    with pytest.raises(ConfigError, match="unique"):
        load_rules(data)


def test_for_duration_then_one_firing_then_resolved() -> None:
    ev = Evaluator(load_rules(rules("30s")))
    assert ev.step([errors(9)], now=0) == []  # pending
    assert ev.active(now=0)[0]["state"] == "pending"
    assert ev.step([errors(9)], now=29) == []
    fired = ev.step([errors(9)], now=30)
    assert [(t.status, dict(t.labels), t.value) for t in fired] == [("firing", {"model": "m"}, 9)]
    assert ev.step([errors(12)], now=45) == []  # still firing: deduplicated
    assert ev.active(now=45)[0]["state"] == "firing"
    resolved = ev.step([errors(3)], now=60)
    assert [(t.status, t.value, t.started_at) for t in resolved] == [("resolved", 3, 30)]
    assert ev.active(now=60) == []


def test_a_pending_alert_that_clears_never_fires() -> None:
    ev = Evaluator(load_rules(rules("30s")))
    ev.step([errors(9)], now=0)
    assert ev.step([errors(1)], now=10) == []
    assert ev.step([errors(9)], now=20) == []  # pending again from 20, not from 0
    assert ev.step([errors(9)], now=45) == []
    assert [t.status for t in ev.step([errors(9)], now=50)] == ["firing"]


def test_labels_filters_and_aggregation() -> None:
    ev = Evaluator(load_rules(rules("0s", where={"status": "500"})))
    samples = [errors(3, "a"), errors(3, "a"), errors(9, "b"), errors(99, "c", status="422")]
    fired = ev.step(samples, now=0)  # a: 3+3 > 5 (two replicas summed), b: 9, c: filtered out
    assert sorted(dict(t.labels)["model"] for t in fired) == ["a", "b"]
    # the series disappearing resolves it
    assert [(t.status, dict(t.labels)["model"]) for t in ev.step([errors(9, "b")], now=1)] == [
        ("resolved", "a")]


def test_rate_of_a_counter() -> None:
    ev = Evaluator(load_rules(rules("0s", fn="rate", threshold=1, by=[])))
    assert ev.step([errors(100)], now=0) == []  # no rate from one point
    assert ev.step([errors(105)], now=10) == []  # 0.5/s
    assert [(t.status, t.value) for t in ev.step([errors(135)], now=20)] == [("firing", 3.0)]
    assert [t.status for t in ev.step([errors(2)], now=30)] == ["resolved"]  # a reset: no increase


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict, bool]] = []
    secret = SECRET.encode()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = verify(body, self.headers.get(SIGNATURE_HEADER, ""), self.secret)
        type(self).received.append((json.loads(body), ok))
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def _service(tmp_path: Path, actions: list, feed: list, ct_calls: list | None = None,
             store: AlertStore | None = None) -> AlertService:
    data = rules("0s")
    data["rules"][0]["actions"] = actions
    store = store or AlertStore(tmp_path / "alerts.db")
    return AlertService(load_rules(data), store, lambda: feed[-1],
                        (lambda model, t: ct_calls.append((model, t.rule.name)) or "run-1")
                        if ct_calls is not None else None)


def test_signed_webhook_dedup_resolve_history_and_ct(tmp_path: Path, receiver: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    feed, ct_calls = [[errors(9)]], []
    actions = [{"type": "log"}, {"type": "webhook", "url": receiver, "secret_env": "HOOK_SECRET"},
               {"type": "trigger_ct", "model": "flights-delay"}]
    service = _service(tmp_path, actions, feed, ct_calls)
    fired = service.tick(now=100)
    assert [a["ok"] for a in fired[0]["actions"]] == [True, True, True]
    assert service.tick(now=115) == []  # deduplicated: nothing sent again
    feed.append([errors(1)])
    resolved = service.tick(now=130)
    assert resolved[0]["status"] == "resolved"
    assert [(b["alert"], b["status"], b["labels"], ok) for b, ok in _Receiver.received] == [
        ("errs", "firing", {"model": "m"}, True), ("errs", "resolved", {"model": "m"}, True)]
    assert ct_calls == [("flights-delay", "errs")]  # on firing only
    (row,) = service.store.history()
    assert (row["status"], row["started_at"], row["resolved_at"], row["value"]) == (
        "resolved", 100, 130, 9)
    assert [a["action"] for a in row["actions"]] == ["log", "webhook", "trigger_ct", "log", "webhook"]
    # the secret is nowhere a person or a log can see
    shown = json.dumps([row, service.status(), fired, resolved]) + caplog.text
    assert "errs firing" in caplog.text and SECRET not in shown


def test_a_wrong_or_missing_secret_is_reported_not_leaked(tmp_path: Path, receiver: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not-the-key\n")
    feed = [[errors(9)]]
    actions = [{"type": "webhook", "url": receiver, "secret_file": str(wrong)},
               {"type": "webhook", "url": receiver, "secret_env": "UNSET_SECRET_VAR"}]
    fired = _service(tmp_path, actions, feed).tick(now=1)
    bad_sig, missing = fired[0]["actions"]
    assert (bad_sig["ok"], bad_sig["status"]) == (False, 401)
    assert [ok for _, ok in _Receiver.received] == [False]  # receiver refused the signature
    assert missing["ok"] is False and "UNSET_SECRET_VAR is not set" in missing["error"]
    assert "not-the-key" not in json.dumps(fired) + caplog.text


def test_signature_is_hmac_sha256_of_the_body() -> None:
    import hashlib
    import hmac

    body = b'{"alert": "x"}'
    assert sign(body, b"k") == hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert verify(body, sign(body, b"k"), b"k") and not verify(body + b" ", sign(body, b"k"), b"k")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_restarted_service_does_not_notify_again(tmp_path: Path, backend: str,
                                                   request: pytest.FixtureRequest) -> None:
    url = (str(tmp_path / "alerts.db") if backend == "sqlite"
           else request.getfixturevalue("fresh_pg_url"))
    feed, ct_calls = [[errors(9)]], []
    actions = [{"type": "trigger_ct", "model": "m"}]
    store = AlertStore(url)
    assert len(_service(tmp_path, actions, feed, ct_calls, store).tick(now=1)) == 1
    again = _service(tmp_path, actions, feed, ct_calls, AlertStore(url))
    assert again.tick(now=2) == [] and ct_calls == [("m", "errs")]
    feed.append([])
    assert [t["status"] for t in again.tick(now=3)] == ["resolved"]
    assert store.history()[0]["status"] == "resolved" and store.open_alerts() == {}


def test_ct_requests_are_pending_until_a_real_cycle(tmp_path: Path) -> None:
    from raymlops.training.ct import Event, log_event, pending_requests, request_cycle

    settings = load_settings(storage_root=tmp_path / "root")
    assert pending_requests(settings, "m") == []
    log_event(settings, "m", Event(1, "2013-03", None, "none", "calm", 1, 1))
    request_cycle(settings, "m", "alert errs")
    request_cycle(settings, "m", "alert drift")
    assert [r["reason"] for r in pending_requests(settings, "m")] == ["alert drift", "alert errs"]
    assert pending_requests(settings, "other") == []
    log_event(settings, "m", Event(2, "2013-04", "manual", "rejected", "requested", 1, 1))
    assert pending_requests(settings, "m") == []


def test_scrape_parsing_and_service_discovery_file(tmp_path: Path) -> None:
    text = ('# TYPE ray_raymlops_errors_total counter\n'
            'ray_raymlops_errors_total{model="m",status="500"} 4.0\n'
            'ray_serve_num_http_requests_total{route="/"} 9.0\n')
    assert parse(text) == [Sample("ray_raymlops_errors_total",
                                  (("model", "m"), ("status", "500")), 4.0)]
    sd = tmp_path / "sd.json"
    sd.write_text(json.dumps([{"labels": {"job": "ray"}, "targets": ["10.0.0.2:8080", "10.0.0.1:9"]}]))
    assert targets_from_sd_file(sd) == ["10.0.0.1:9", "10.0.0.2:8080"]
