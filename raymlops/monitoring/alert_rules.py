"""Alert rules: what to watch, when it counts as a problem, and who hears about it.

A rules file (``cluster/alerts.yaml`` is the example) is validated against this schema as a
whole before anything runs, so a typo is a :class:`ConfigError` naming the field, never a
rule that silently never fires. Secrets are never in the file: a webhook names the
environment variable or the file holding its HMAC key, and that name is all any output shows.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from raymlops.exceptions import ConfigError

__all__ = ["Condition", "LogAction", "Rule", "RuleSet", "TriggerCTAction", "WebhookAction",
           "load_rules", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``30``, ``"30s"``, ``"2m"``, ``"1h"``, ``"500ms"`` -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (like 30s, 2m, 1h)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """``agg(fn(metric{where})) by (by) op threshold`` over the series Ray's agents export."""

    metric: str = Field(description="A raymlops_* metric (Ray's ray_ prefix optional); a "
                        "histogram's _count/_sum/_bucket series by that suffix.")
    where: dict[str, str] = Field(default_factory=dict,
                                  description="Label filter: every label must equal its value.")
    by: list[str] = Field(default_factory=list,
                          description="Labels that split it into one alert per value set.")
    agg: Literal["sum", "max", "min", "avg", "count"] = Field(
        "sum", description="How the matching series (across nodes, replicas) combine.")
    fn: Literal["value", "rate"] = Field(
        "value", description="value: the current value; rate: per-second increase since the "
        "previous evaluation (for counters; a reset counts as no increase).")
    op: Literal[">", ">=", "<", "<=", "==", "!="] = Field(description="Comparison.")
    threshold: float = Field(description="Right-hand side of the comparison.")

    @field_validator("metric")
    @classmethod
    def _name(cls, value: str) -> str:
        name = value.removeprefix("ray_")
        if not re.fullmatch(r"raymlops_[a-z0-9_]+", name):
            raise ValueError(f"{value!r} is not a raymlops_* metric name")
        return name

    @property
    def series_name(self) -> str:
        """The name Prometheus (and Ray's agent) uses: ``ray_`` + metric."""
        return "ray_" + self.metric

    def describe(self) -> str:
        where = ",".join(f'{k}="{v}"' for k, v in sorted(self.where.items()))
        inner = f"{self.metric}{{{where}}}" if where else self.metric
        inner = f"rate({inner})" if self.fn == "rate" else inner
        by = f" by ({', '.join(self.by)})" if self.by else ""
        return f"{self.agg}({inner}){by} {self.op} {self.threshold:g}"


class LogAction(_Strict):
    """Write the alert to the evaluator's log (always safe: no secret is ever in an alert)."""

    type: Literal["log"] = "log"


class WebhookAction(_Strict):
    """HTTP POST of the alert as JSON, signed: ``X-Raymlops-Signature`` is the hex
    HMAC-SHA256 of the exact body bytes with the secret from ``secret_env`` or ``secret_file``."""

    type: Literal["webhook"] = "webhook"
    url: str = Field(description="http(s) URL that receives the POST.")
    secret_env: str | None = Field(None, description="Environment variable holding the key.")
    secret_file: Path | None = Field(None, description="File whose content (stripped) is the key.")
    timeout_s: float = Field(5.0, gt=0, description="Per-attempt HTTP timeout.")
    send_resolved: bool = Field(True, description="Also POST when the alert resolves.")

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookAction:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s), got {self.url!r}")
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("a webhook needs exactly one of secret_env or secret_file")
        return self

    def secret(self) -> bytes:
        """The key, read now (rotating it needs no restart). Raises ConfigError naming the
        variable or file -- never showing a value."""
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env)
            if not value:
                raise ConfigError(f"webhook secret env var {self.secret_env} is not set",
                                  field="secret_env")
            return value.encode()
        try:
            value = Path(self.secret_file).read_text().strip()  # type: ignore[arg-type]
        except OSError as exc:
            raise ConfigError(f"webhook secret file {self.secret_file} cannot be read: "
                              f"{exc.strerror}", field="secret_file") from None
        if not value:
            raise ConfigError(f"webhook secret file {self.secret_file} is empty",
                              field="secret_file")
        return value.encode()


class TriggerCTAction(_Strict):
    """Ask continuous training for a manual cycle: recorded as a ``requested`` event of the
    model in MLflow experiment ``raymlops-ct``; the next CT cycle of that model runs as manual
    (retrains whatever the signals say) and names the alert in its reason."""

    type: Literal["trigger_ct"] = "trigger_ct"
    model: str = Field(description="Registered model whose CT loop is asked to retrain.")


Action = Annotated[LogAction | WebhookAction | TriggerCTAction, Field(discriminator="type")]


class Rule(_Strict):
    """One alert: a condition that must hold ``for`` seconds before it fires."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Unique rule name.")
    expr: Condition = Field(description="The condition.")
    for_s: float = Field(0.0, alias="for", description="How long the condition must hold "
                         "(30s, 2m...) before firing; 0 fires on the first evaluation.")
    severity: Literal["info", "warning", "critical"] = Field("warning", description="Severity.")
    summary: str = Field("", description="One line for people; {value} and labels expand.")
    actions: list[Action] = Field(default_factory=lambda: [LogAction()],
                                  description="What happens on firing (and resolving).")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("for_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class RuleSet(_Strict):
    """A whole rules file."""

    interval_s: float = Field(15.0, gt=0, description="Seconds between evaluations.")
    rules: list[Rule] = Field(description="The rules.")

    @field_validator("interval_s", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {dupes}")
        return self


def load_rules(source: str | Path | dict[str, Any]) -> RuleSet:
    """Validate a rules file (path) or mapping; a ConfigError names the first bad field."""
    if isinstance(source, dict):
        data: Any = source
    else:
        try:
            data = yaml.safe_load(Path(source).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read alert rules {source}: {exc.strerror}",
                              field="rules") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"alert rules {source} are not YAML: {exc}", field="rules") from None
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"alert rules: {where}: {err['msg']}", field=where) from None
