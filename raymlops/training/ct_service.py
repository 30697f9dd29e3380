"""The CT service: a platform actor that closes the loop without a person.

``raymlops ct start --spec SPEC --every 1h`` hands a spec to this actor. For each model it
holds, the actor checks for newly labelled periods on the model's schedule, and at once when
an alert asks for a cycle (``trigger_ct`` records a request; the actor notices it on its next
poll, or is told directly). A check is one Ray task that runs
:func:`~raymlops.training.workflow.run_pending` -- every closed, undecided period, in order --
so the actor itself only schedules: its ``status`` answers while a cycle trains, and one model
never has two checks at once.

Durability: the schedules are files under ``ct/schedules`` under the storage root (written before
``start`` returns), so a restarted actor (``max_restarts=-1``) reloads them; what was decided
lives in the CT log (MLflow), so a check after a restart decides only what has no decision
yet -- a period interrupted mid-cycle is redone, a decided one never twice. When the actor
dies, Ray ends the check tasks it owned.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from raymlops.exceptions import NotFoundError, ValidationError

__all__ = ["CT_SERVICE_ACTOR", "CTService", "parse_duration"]

CT_SERVICE_ACTOR = "raymlops-ct"
POLL_S = 2.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``30s``, ``10m``, ``1h``, ``1d``, ``1w`` (or a bare number of seconds)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text))
        if not match:
            raise ValidationError(f"--every {text!r}: use a number with s, m, h, d or w (e.g. 10m, 1h)",
                                  field="every")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 1:
        raise ValidationError(f"--every {text!r}: at least one second", field="every")
    return seconds


def _check(spec_data: dict[str, Any], settings_data: dict[str, Any], manual: bool) -> dict[str, Any]:
    """One check of one model (runs as a Ray task): decide every pending period."""
    from raymlops.config import Settings
    from raymlops.training.spec import TrainingSpec
    from raymlops.training.workflow import run_pending

    spec = TrainingSpec.model_validate(spec_data)
    settings = Settings(**settings_data)
    plan, events = run_pending(spec, settings, manual=manual)
    return {"plan": plan.to_dict(), "events": [e.to_dict() for e in events]}


class CTService:
    """Schedules continuous-training checks per model (see the module docstring)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from raymlops.config import Settings

        self._settings_data = dict(settings)
        self.settings = Settings(**settings)
        self.schedules = self.settings.storage.child("ct", "schedules")
        self.models: dict[str, dict[str, Any]] = {}
        self._loop_task: asyncio.Task | None = None
        self._check: Any = None  # the remote function of a check, built once
        for key in self.schedules.list(suffix=".json"):
            entry = json.loads(self.schedules.read_text(key))
            self.models[entry["model"]] = self._state(entry, next_at=time.time())
        if self.models:  # restarted: resume the schedules without waiting for a caller
            import threading

            import ray

            me = ray.get_runtime_context().current_actor
            threading.Thread(target=lambda: (time.sleep(0.5), me.ping.remote()), daemon=True).start()

    @staticmethod
    def _state(entry: dict[str, Any], next_at: float) -> dict[str, Any]:
        return {**entry, "next_at": next_at, "running": None, "running_since": None, "manual": False,
                "last": None, "checks": 0, "seen_requests": set()}

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def ping(self) -> str:
        self._ensure_loop()
        return "ok"

    # -- commands -------------------------------------------------------------------------------

    async def start(self, spec: dict[str, Any], every_s: float) -> dict[str, Any]:
        """Hold ``spec``'s model and check it every ``every_s`` seconds (first check now).
        Starting a model already held replaces its spec and schedule."""
        from raymlops.training.spec import TrainingSpec

        model = TrainingSpec.model_validate(spec).name
        entry = {"model": model, "spec": spec, "every_s": float(every_s), "started_at": time.time()}
        self.schedules.write_text(f"{model}.json", json.dumps(entry))  # durable before acknowledged
        old = self.models.get(model)
        state = self._state(entry, next_at=time.time())
        if old is not None:  # a running check goes on; the new schedule applies after it
            state.update(running=old["running"], running_since=old["running_since"], last=old["last"],
                         checks=old["checks"])
        self.models[model] = state
        self._ensure_loop()
        return self._row(state)

    async def stop(self, model: str | None = None) -> list[str]:
        """Stop checking ``model`` (every model when None); a running check is cancelled."""
        import ray

        names = [model] if model is not None else list(self.models)
        if model is not None and model not in self.models:
            raise NotFoundError(f"the CT service does not hold model {model!r}", model=model)
        for name in names:
            state = self.models.pop(name)
            self.schedules.delete(f"{name}.json")
            if state["running"] is not None:
                ray.cancel(state["running"], force=True)
        return names

    async def trigger(self, model: str) -> dict[str, Any]:
        """Check ``model`` now (an alert's request), as a manual cycle."""
        state = self.models.get(model)
        if state is None:
            raise NotFoundError(f"the CT service does not hold model {model!r}", model=model)
        state["next_at"], state["manual"] = 0.0, True
        self._ensure_loop()
        return self._row(state)

    async def status(self) -> list[dict[str, Any]]:
        self._ensure_loop()
        return [self._row(s) for s in sorted(self.models.values(), key=lambda s: s["model"])]

    # -- the schedule ---------------------------------------------------------------------------

    def _row(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"model": state["model"], "every_s": state["every_s"], "next_at": state["next_at"],
                "running": state["running"] is not None, "running_since": state["running_since"],
                "checks": state["checks"], "last": state["last"]}

    async def _loop(self) -> None:
        while True:
            for state in list(self.models.values()):
                try:
                    await self._tend(state)
                except Exception as exc:  # noqa: BLE001 - one model's trouble must not stop the rest
                    state["last"] = {"at": time.time(), "error": f"{type(exc).__name__}: {exc}"}
            await asyncio.sleep(POLL_S)

    async def _tend(self, state: dict[str, Any]) -> None:
        import ray

        if state["running"] is not None:
            ready, _ = ray.wait([state["running"]], timeout=0)
            if not ready:
                return
            ref, state["running"] = state["running"], None
            try:
                result = await ref
                state["last"] = {"at": time.time(), "seconds": time.time() - state["running_since"],
                                 "pending": result["plan"]["pending"], "late": result["plan"]["late"],
                                 "decisions": [(e["period"], e["decision"]) for e in result["events"]]}
            except Exception as exc:  # noqa: BLE001 - recorded; the next check retries
                state["last"] = {"at": time.time(), "error": f"{type(exc).__name__}: {exc}"[:2000]}
            return
        # MLflow is synchronous (and its first import takes seconds): off the event loop, so
        # status keeps answering.
        if not state["manual"] and await asyncio.to_thread(self._new_requests, state):
            state["manual"], state["next_at"] = True, 0.0
        if time.time() < state["next_at"]:
            return
        state["next_at"] = time.time() + state["every_s"]
        manual, state["manual"] = state["manual"], False
        if self._check is None:
            self._check = ray.remote(num_cpus=0, max_retries=0)(_check)
        state["running"] = self._check.remote(state["spec"], self._settings_data, manual)
        state["running_since"] = time.time()
        state["checks"] += 1

    def _new_requests(self, state: dict[str, Any]) -> bool:
        """An alert asked for a cycle of this model since the service last looked."""
        from raymlops.training.ct import pending_requests

        ids = {r["run_id"] for r in pending_requests(self.settings, state["model"])}
        new = ids - state["seen_requests"]
        state["seen_requests"] |= ids
        return bool(new)
