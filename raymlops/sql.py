"""One way to open the platform's SQL database (SQLite by default, PostgreSQL on clusters)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

__all__ = ["sql_engine"]


def sql_engine(url: str | Path) -> sa.Engine:
    """An engine for a SQLAlchemy URL, or a file path taken as SQLite.

    A SQLite file's folder is created first: SQLite makes the file but not its folder, and
    on a fresh storage root the folder does not exist yet."""
    text = str(url)
    if "://" not in text:
        text = f"sqlite:///{text}"
    parsed = sa.engine.make_url(text)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(text, future=True)
