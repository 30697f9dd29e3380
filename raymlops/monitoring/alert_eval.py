"""Alert evaluation as a pure state machine: samples in, transitions out (no I/O here).

Why pure: for-durations, deduplication and resolution are the parts that go wrong in
alerting, and here they are tested with made-up samples and clocks. The evaluator actor
(:mod:`raymlops.monitoring.alerts`) feeds it scraped samples and acts on what it returns.

Per rule and label set (the rule's ``by`` labels) an alert is *pending* from the first
evaluation where the condition holds, *firing* once it has held ``for`` seconds (one
``firing`` transition, however long it then lasts: that is the dedup), and *resolved* (one
``resolved`` transition) at the first evaluation where it no longer holds or its series is
gone. A pending alert whose condition clears just disappears.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from raymlops.monitoring.alert_rules import Condition, Rule, RuleSet
from raymlops.monitoring.scrape import Sample

__all__ = ["AlertKey", "Evaluator", "Transition", "aggregate"]

Labels = tuple[tuple[str, str], ...]
AlertKey = tuple[str, Labels]
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
        "==": operator.eq, "!=": operator.ne}


def aggregate(cond: Condition, samples: Iterable[Sample]) -> dict[Labels, float]:
    """The condition's left-hand side per ``by`` label set, before ``fn`` and comparison."""
    groups: dict[Labels, list[float]] = {}
    for s in samples:
        if s.name != cond.series_name:
            continue
        labels = dict(s.labels)
        if any(labels.get(k) != v for k, v in cond.where.items()):
            continue
        key = tuple((k, labels.get(k, "")) for k in cond.by)
        groups.setdefault(key, []).append(s.value)
    reduce = {"sum": sum, "max": max, "min": min, "count": len,
              "avg": lambda v: sum(v) / len(v)}[cond.agg]
    return {key: float(reduce(values)) for key, values in groups.items()}


@dataclass(frozen=True)
class Transition:
    """An alert started firing or resolved: what actions and history record."""

    rule: Rule
    labels: Labels
    status: Literal["firing", "resolved"]
    value: float | None
    at: float
    started_at: float

    def to_dict(self) -> dict[str, object]:
        return {"alert": self.rule.name, "status": self.status, "severity": self.rule.severity,
                "labels": dict(self.labels), "value": self.value,
                "condition": self.rule.expr.describe(), "summary": self.summary(),
                "started_at": self.started_at, "at": self.at}

    def summary(self) -> str:
        text = self.rule.summary or f"{self.rule.name}: {self.rule.expr.describe()}"
        try:
            return text.format(value=self.value, **dict(self.labels))
        except (KeyError, IndexError, ValueError):
            return text


@dataclass
class _State:
    since: float
    value: float
    firing_since: float | None = None


@dataclass
class Evaluator:
    """Holds pending/firing alerts between evaluations; ``firing`` seeds it after a restart
    (from the durable history) so an alert already notified is not notified again."""

    rules: RuleSet
    firing: dict[AlertKey, float] = field(default_factory=dict)
    _states: dict[AlertKey, _State] = field(default_factory=dict, init=False)
    _last: dict[AlertKey, tuple[float, float]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        names = {r.name for r in self.rules.rules}
        for key, started in self.firing.items():
            if key[0] in names:
                self._states[key] = _State(started, float("nan"), started)

    def _values(self, rule: Rule, samples: list[Sample], now: float) -> dict[Labels, float]:
        raw = aggregate(rule.expr, samples)
        if rule.expr.fn == "value":
            return raw
        out = {}
        for labels, value in raw.items():
            previous = self._last.get((rule.name, labels))
            self._last[(rule.name, labels)] = (now, value)
            if previous is not None and now > previous[0]:
                out[labels] = max(0.0, value - previous[1]) / (now - previous[0])
        return out

    def step(self, samples: Iterable[Sample], now: float) -> list[Transition]:
        """One evaluation at time ``now`` over every rule."""
        samples = list(samples)
        out: list[Transition] = []
        for rule in self.rules.rules:
            holding = {labels: v for labels, v in self._values(rule, samples, now).items()
                       if _OPS[rule.expr.op](v, rule.expr.threshold)}
            for labels, value in holding.items():
                state = self._states.setdefault((rule.name, labels), _State(now, value))
                state.value = value
                if state.firing_since is None and now - state.since >= rule.for_s:
                    state.firing_since = now
                    out.append(Transition(rule, labels, "firing", value, now, now))
            for key in [k for k in self._states if k[0] == rule.name and k[1] not in holding]:
                state = self._states.pop(key)
                if state.firing_since is not None:
                    value = _current(rule, samples, key[1])
                    out.append(Transition(rule, key[1], "resolved", value, now, state.firing_since))
        return out

    def active(self, now: float) -> list[dict[str, object]]:
        """Pending and firing alerts now (what ``raymlops alerts list`` shows)."""
        rules = {r.name: r for r in self.rules.rules}
        return [{"alert": name, "labels": dict(labels),
                 "state": "firing" if s.firing_since is not None else "pending",
                 "severity": rules[name].severity, "value": s.value,
                 "since": s.firing_since or s.since, "for_s": rules[name].for_s,
                 "pending_s": now - s.since}
                for (name, labels), s in sorted(self._states.items())]


def _current(rule: Rule, samples: list[Sample], labels: Labels) -> float | None:
    if rule.expr.fn == "rate":
        return None
    return aggregate(rule.expr, samples).get(labels)
