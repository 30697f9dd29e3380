"""Online store: the latest row per entity key per view, durable, newest-wins.

Two backends behind one small interface (and one contract test suite):

- ``LogBackend`` (default): a dict in memory plus an append-only log on disk. Each write
  batch is appended and fsync'ed *before* it is applied and acknowledged, so an actor killed
  at any point restarts with every acknowledged write (it replays the log; a torn last line
  from a crash mid-append is ignored because it was never acknowledged). The log is compacted
  into a snapshot when it grows.
- ``RedisBackend``: a Redis hash per (view, key) under a key prefix; newest-wins is enforced
  inside Redis by a Lua script, so concurrent writers from many processes stay correct.

Rules both obey: a row whose event time is older than the stored one never overwrites it
(equal event times: the later created time wins, then the later write). TTL is not applied
here but on read by the caller, which knows the view's TTL (an expired value comes back null
and flagged, which Feast does not do).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Protocol

__all__ = ["LogBackend", "OnlineBackend", "OnlineRow", "RedisBackend", "make_backend"]

# A stored row: (event_ts_us, created_ts_us, values). Times are integer microseconds (UTC).
OnlineRow = tuple[int, int, dict[str, Any]]
Key = tuple[Any, ...]


def _newer(candidate: OnlineRow, current: OnlineRow | None) -> bool:
    if current is None:
        return True
    return (candidate[0], candidate[1]) >= (current[0], current[1])


class OnlineBackend(Protocol):
    def write(self, view: str, rows: list[tuple[Key, OnlineRow]]) -> int:
        """Apply rows newest-wins; return how many changed the stored state."""

    def read(self, view: str, keys: list[Key]) -> list[OnlineRow | None]: ...

    def count(self, view: str) -> int: ...

    def scan(self, view: str) -> dict[Key, OnlineRow]:
        """Every stored row of a view (to seed replica-local caches)."""

    def clear(self, view: str) -> None: ...


class LogBackend:
    """In-memory latest rows + fsync'ed append-only log (+ snapshot) under ``path``."""

    def __init__(self, path: Path, compact_every: int = 50_000) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._log_path = self.path / "online.log"
        self._snapshot_path = self.path / "online.snapshot.json"
        self._data: dict[str, dict[Key, OnlineRow]] = {}
        self._lock = threading.Lock()
        self._compact_every = compact_every
        self._log_lines = 0
        self._recover()
        self._log = open(self._log_path, "a", encoding="utf-8")

    def _apply(self, view: str, rows: list[tuple[Key, OnlineRow]]) -> int:
        table = self._data.setdefault(view, {})
        changed = 0
        for key, row in rows:
            if _newer(row, table.get(key)):
                table[key] = row
                changed += 1
        return changed

    def _recover(self) -> None:
        if self._snapshot_path.is_file():
            raw = json.loads(self._snapshot_path.read_text())
            for view, entries in raw.items():
                self._data[view] = {tuple(k): (e, c, v) for k, e, c, v in entries}
        if self._log_path.is_file():
            good_bytes = 0
            with open(self._log_path, "rb") as log:
                for raw in log:
                    try:
                        if not raw.endswith(b"\n"):
                            raise ValueError("torn line")
                        record = json.loads(raw)
                    except ValueError:  # torn tail of a crashed append: never acknowledged
                        break
                    good_bytes += len(raw)
                    if record.get("op") == "clear":
                        self._data.pop(record["view"], None)
                        continue
                    rows = [(tuple(k), (e, c, v)) for k, e, c, v in record["rows"]]
                    self._apply(record["view"], rows)
                    self._log_lines += 1
            # Cut the torn tail off, or the next append would be glued onto it and lost.
            with open(self._log_path, "r+b") as log:
                log.truncate(good_bytes)

    def _append(self, record: dict[str, Any]) -> None:
        self._log.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self._log.flush()
        os.fsync(self._log.fileno())  # durable before acknowledged
        self._log_lines += 1

    def write(self, view: str, rows: list[tuple[Key, OnlineRow]]) -> int:
        if not rows:
            return 0
        with self._lock:
            self._append({"view": view, "rows": [[list(k), r[0], r[1], r[2]] for k, r in rows]})
            changed = self._apply(view, rows)
            if self._log_lines >= self._compact_every:
                self._compact()
            return changed

    def _compact(self) -> None:
        """Snapshot the state atomically, then start an empty log."""
        snapshot = {
            view: [[list(k), r[0], r[1], r[2]] for k, r in table.items()]
            for view, table in self._data.items()
        }
        tmp = self._snapshot_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(snapshot, handle, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._snapshot_path)
        self._log.close()
        self._log = open(self._log_path, "w", encoding="utf-8")
        self._log_lines = 0

    def read(self, view: str, keys: list[Key]) -> list[OnlineRow | None]:
        table = self._data.get(view, {})
        return [table.get(k) for k in keys]

    def count(self, view: str) -> int:
        return len(self._data.get(view, {}))

    def scan(self, view: str) -> dict[Key, OnlineRow]:
        return dict(self._data.get(view, {}))

    def clear(self, view: str) -> None:
        with self._lock:
            self._append({"op": "clear", "view": view})
            self._data.pop(view, None)


_NEWEST_WINS = """
local cur = redis.call('HMGET', KEYS[1], 'e', 'c')
local e, c = tonumber(ARGV[1]), tonumber(ARGV[2])
if cur[1] then
  local ce, cc = tonumber(cur[1]), tonumber(cur[2])
  if e < ce or (e == ce and c < cc) then return 0 end
end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'c', ARGV[2], 'v', ARGV[3])
redis.call('SADD', KEYS[2], KEYS[1])
return 1
"""


class RedisBackend:
    """Latest rows in Redis under ``prefix``; newest-wins checked atomically by a Lua script."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", prefix: str = "raymlops") -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self._script = self.client.register_script(_NEWEST_WINS)

    def _key(self, view: str, key: Key) -> str:
        return f"{self.prefix}:fv:{view}:" + json.dumps(list(key), default=str, separators=(",", ":"))

    def _index(self, view: str) -> str:
        return f"{self.prefix}:fvkeys:{view}"

    def write(self, view: str, rows: list[tuple[Key, OnlineRow]]) -> int:
        if not rows:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for key, (event, created, values) in rows:
            self._script(
                keys=[self._key(view, key), self._index(view)],
                args=[event, created, json.dumps(values, default=str)],
                client=pipe,
            )
        return int(sum(pipe.execute()))

    def read(self, view: str, keys: list[Key]) -> list[OnlineRow | None]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self._key(view, key), "e", "c", "v")
        out: list[OnlineRow | None] = []
        for event, created, values in pipe.execute():
            out.append(None if event is None else (int(event), int(created), json.loads(values)))
        return out

    def count(self, view: str) -> int:
        return int(self.client.scard(self._index(view)))

    def scan(self, view: str) -> dict[Key, OnlineRow]:
        names = sorted(self.client.smembers(self._index(view)))
        head = f"{self.prefix}:fv:{view}:".encode()
        keys = [tuple(json.loads(n[len(head):])) for n in names]
        return {k: r for k, r in zip(keys, self.read(view, keys), strict=True) if r is not None}

    def clear(self, view: str) -> None:
        members = list(self.client.smembers(self._index(view)))
        if members:
            self.client.delete(*members)
        self.client.delete(self._index(view))


def make_backend(kind: str, *, path: Path, redis_url: str, prefix: str) -> OnlineBackend:
    """Resolve a backend from its type string (Feast-style plugin map)."""
    if kind == "log":
        return LogBackend(path)
    if kind == "redis":
        return RedisBackend(redis_url, prefix)
    from raymlops.exceptions import ConfigError

    raise ConfigError(f"unknown online store backend {kind!r}; use 'log' or 'redis'", field="online_store")
