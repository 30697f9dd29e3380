"""Durable alert history: a table in the platform's SQL database (``raymlops_alerts``).

Why durable: an alert that fired must still be in ``raymlops alerts history`` after the
evaluator actor (or the whole cluster) restarted, and a restarted evaluator must know which
alerts are already firing, so it does not notify them twice. One row per alert occurrence:
``resolved_at`` is null while it fires. Writes commit before the actions run.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from raymlops.monitoring.alert_eval import AlertKey, Transition
from raymlops.sql import sql_engine

__all__ = ["AlertStore"]

_metadata = sa.MetaData()
_alerts = sa.Table(
    "raymlops_alerts",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(256), nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("severity", sa.String(32), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("condition", sa.Text, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
    sa.Column("resolved_value", sa.Float),
    sa.Column("actions", sa.Text, nullable=False, server_default="[]"),
    sa.Index("raymlops_alerts_open", "rule", "labels", "resolved_at"),
)


class AlertStore:
    """Append and close alert occurrences; read the open ones and the history.

    ``url`` is a SQLAlchemy URL (the platform's SQL database, PostgreSQL on a cluster) or a
    file path, taken as SQLite."""

    def __init__(self, url: str | Path) -> None:
        self.engine = sql_engine(url)
        _metadata.create_all(self.engine)
        self._lock = threading.Lock()

    def record(self, t: Transition) -> int:
        """Store a transition; returns the occurrence's id."""
        labels = json.dumps(dict(t.labels), sort_keys=True)
        with self._lock, self.engine.begin() as db:
            if t.status == "firing":
                result = db.execute(sa.insert(_alerts).values(
                    rule=t.rule.name, labels=labels, severity=t.rule.severity, summary=t.summary(),
                    condition=t.rule.expr.describe(), value=t.value, started_at=t.started_at,
                    actions="[]"))
                return int(result.inserted_primary_key[0] or 0)
            row = db.execute(sa.select(_alerts.c.id).where(
                _alerts.c.rule == t.rule.name, _alerts.c.labels == labels,
                _alerts.c.resolved_at.is_(None)).order_by(_alerts.c.id.desc())).first()
            if row is None:
                return 0
            db.execute(sa.update(_alerts).where(_alerts.c.id == row.id).values(
                resolved_at=t.at, resolved_value=t.value))
            return int(row.id)

    def add_action_results(self, alert_id: int, results: list[dict[str, Any]]) -> None:
        with self._lock, self.engine.begin() as db:
            row = db.execute(sa.select(_alerts.c.actions).where(_alerts.c.id == alert_id)).first()
            if row is not None:
                db.execute(sa.update(_alerts).where(_alerts.c.id == alert_id).values(
                    actions=json.dumps(json.loads(row.actions) + results)))

    def open_alerts(self) -> dict[AlertKey, float]:
        """Firing alerts: (rule, labels) -> started_at (seeds the evaluator after a restart)."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(_alerts.c.rule, _alerts.c.labels, _alerts.c.started_at)
                              .where(_alerts.c.resolved_at.is_(None))).all()
        return {(rule, tuple(sorted(json.loads(labels).items()))): started
                for rule, labels, started in rows}

    def history(self, limit: int = 100, rule: str | None = None) -> list[dict[str, Any]]:
        """Occurrences, newest first."""
        query = sa.select(_alerts)
        if rule:
            query = query.where(_alerts.c.rule == rule)
        query = query.order_by(_alerts.c.started_at.desc(), _alerts.c.id.desc()).limit(limit)
        with self.engine.connect() as db:
            rows = db.execute(query).mappings().all()
        out = []
        for row in rows:
            item = dict(row)
            item["labels"] = json.loads(item["labels"])
            item["actions"] = json.loads(item["actions"])
            item["status"] = "firing" if item["resolved_at"] is None else "resolved"
            out.append(item)
        return out
