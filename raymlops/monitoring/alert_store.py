"""Durable alert history: one SQLite file under the storage root (``alerts/alerts.db``).

Why durable: an alert that fired must still be in ``raymlops alerts history`` after the
evaluator actor (or the whole cluster) restarted, and a restarted evaluator must know which
alerts are already firing, so it does not notify them twice. One row per alert occurrence:
``resolved_at`` is null while it fires. Writes commit before the actions run.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from raymlops.monitoring.alert_eval import AlertKey, Transition

__all__ = ["AlertStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    labels TEXT NOT NULL,
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    condition TEXT NOT NULL,
    value REAL,
    started_at REAL NOT NULL,
    resolved_at REAL,
    resolved_value REAL,
    actions TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (rule, labels, resolved_at);
"""


class AlertStore:
    """Append and close alert occurrences; read the open ones and the history."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def record(self, t: Transition) -> int:
        """Store a transition; returns the occurrence's id."""
        labels = json.dumps(dict(t.labels), sort_keys=True)
        with self._lock, self._connect() as db:
            if t.status == "firing":
                cur = db.execute(
                    "INSERT INTO alerts (rule, labels, severity, summary, condition, value, "
                    "started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (t.rule.name, labels, t.rule.severity, t.summary(), t.rule.expr.describe(),
                     t.value, t.started_at))
                return int(cur.lastrowid or 0)
            row = db.execute("SELECT id FROM alerts WHERE rule = ? AND labels = ? AND "
                             "resolved_at IS NULL ORDER BY id DESC", (t.rule.name, labels)).fetchone()
            if row is None:
                return 0
            db.execute("UPDATE alerts SET resolved_at = ?, resolved_value = ? WHERE id = ?",
                       (t.at, t.value, row[0]))
            return int(row[0])

    def add_action_results(self, alert_id: int, results: list[dict[str, Any]]) -> None:
        with self._lock, self._connect() as db:
            row = db.execute("SELECT actions FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is not None:
                db.execute("UPDATE alerts SET actions = ? WHERE id = ?",
                           (json.dumps(json.loads(row[0]) + results), alert_id))

    def open_alerts(self) -> dict[AlertKey, float]:
        """Firing alerts: (rule, labels) -> started_at (seeds the evaluator after a restart)."""
        with self._connect() as db:
            rows = db.execute("SELECT rule, labels, started_at FROM alerts "
                              "WHERE resolved_at IS NULL").fetchall()
        return {(rule, tuple(sorted(json.loads(labels).items()))): started
                for rule, labels, started in rows}

    def history(self, limit: int = 100, rule: str | None = None) -> list[dict[str, Any]]:
        """Occurrences, newest first."""
        query = "SELECT * FROM alerts" + (" WHERE rule = ?" if rule else "") + \
            " ORDER BY started_at DESC, id DESC LIMIT ?"
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(query, (rule, limit) if rule else (limit,)).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["labels"] = json.loads(item["labels"])
            item["actions"] = json.loads(item["actions"])
            item["status"] = "firing" if item["resolved_at"] is None else "resolved"
            out.append(item)
        return out
