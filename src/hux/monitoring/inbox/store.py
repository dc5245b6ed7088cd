"""Where the alert inbox keeps what it received: ``logs/alerts.log`` and an index that survives restarts.

* ``logs/alerts.log``: one JSON line per alert of every notification, written
  0600 with ``O_APPEND``; at ``log_max_bytes`` it rotates to ``alerts.log.1``
  .. ``alerts.log.<log_keep>`` (the oldest is dropped). This is the record an
  operator greps or ships elsewhere.
* ``data/inbox/index.sqlite3`` (WAL, so ``hux alerts`` reads while the inbox
  writes): the same entries, bounded by ``index_max_entries`` and
  ``index_retention``; ``hux alerts`` answers from it (what fires now, the
  history, the last Watchdog heartbeat).

An entry's ``status`` is the alert's own (firing/resolved). "Firing now" is
every fingerprint whose latest entry is firing. Names from the payload are
data only: they never become a path.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from hux.bot.metric_names import CountedError
from hux.monitoring.inbox.payload import Notification
from hux.paths import Layout, private_dir

WATCHDOG = "Watchdog"
INDEX_NAME = "index.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    receiver TEXT NOT NULL,
    status TEXT NOT NULL,
    alertname TEXT NOT NULL,
    severity TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_received ON entries (received_at);
CREATE INDEX IF NOT EXISTS entries_fingerprint ON entries (fingerprint, id);
CREATE INDEX IF NOT EXISTS entries_alertname ON entries (alertname, received_at);
"""


class StoreError(CountedError):
    """The inbox's files cannot be written or read; ``target`` (INBOX_WRITE_TARGETS) is the file counted, the
    message names it and what to do."""

    @property
    def target(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Entry:
    received_at: float
    receiver: str
    status: str
    alertname: str
    severity: str
    fingerprint: str
    starts_at: str
    ends_at: str
    labels: dict[str, str]
    annotations: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["received_at_iso"] = iso(self.received_at)
        return data


@dataclass(frozen=True)
class Limits:
    log_max_bytes: int = 10 * 1024 * 1024
    log_keep: int = 5
    index_max_entries: int = 100_000
    index_retention_seconds: float = 30 * 86400.0


DEFAULT_LIMITS = Limits()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def index_file(layout: Layout) -> Path:
    return layout.inbox_dir / INDEX_NAME


def entries_of(notification: Notification, received_at: float) -> list[Entry]:
    return [Entry(received_at, notification.receiver, a.status, a.alertname, a.severity, a.fingerprint,
                  a.starts_at, a.ends_at, dict(a.labels), dict(a.annotations)) for a in notification.alerts]


class RotatingJsonLines:
    """An append-only JSON-lines file (0600) rotated by size: ``name``, ``name.1`` .. ``name.<keep>``."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        oldest.unlink(missing_ok=True)
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def write(self, records: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records).encode()
        private_dir(self.path.parent)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(data) > self.max_bytes:
            self._rotate()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def files(self) -> list[Path]:
        """The current file and its rotated ones, newest first."""
        found = [self.path] if self.path.exists() else []
        return found + [p for i in range(1, self.keep + 1)
                        if (p := self.path.with_name(f"{self.path.name}.{i}")).exists()]


class InboxStore:
    """The writer (the inbox process) and reader (``hux alerts``) of the inbox's files."""

    def __init__(self, log_file: Path, index: Path, limits: Limits = DEFAULT_LIMITS, *,
                 readonly: bool = False) -> None:
        self.log = RotatingJsonLines(log_file, limits.log_max_bytes, limits.log_keep)
        self.index = Path(index)
        self.limits = limits
        self.readonly = readonly
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    @classmethod
    def for_layout(cls, layout: Layout, limits: Limits = DEFAULT_LIMITS, *, readonly: bool = False) -> "InboxStore":
        return cls(layout.alerts_log, index_file(layout), limits, readonly=readonly)

    # --- the index ---------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            if self.readonly:
                db = sqlite3.connect(f"file:{self.index}?mode=ro", uri=True, timeout=5, check_same_thread=False)
            else:
                private_dir(self.index.parent)
                db = sqlite3.connect(self.index, timeout=5, check_same_thread=False)
                os.chmod(self.index, 0o600)
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError("index", f"cannot open the inbox index {self.index}: {exc}; check the disk and the "
                                      "directory's owner, or remove the file to start an empty index") from None
        self._db = db
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def record(self, notification: Notification, received_at: float | None = None) -> list[Entry]:
        """Keep one notification: the log line(s) first, then the index. StoreError names what failed."""
        received_at = time.time() if received_at is None else received_at
        entries = entries_of(notification, received_at)
        errors: list[StoreError] = []
        with self._lock:
            try:
                self.log.write([e.to_dict() for e in entries])
            except OSError as exc:
                errors.append(StoreError("log", f"cannot write {self.log.path}: {exc.strerror or exc}"))
            try:
                self._index(entries)
            except StoreError as exc:
                errors.append(exc)
            except sqlite3.Error as exc:
                errors.append(StoreError("index", f"cannot write the inbox index {self.index}: {exc}"))
        if errors:
            raise errors[0] if len(errors) == 1 else StoreError("log", "; ".join(str(e) for e in errors))
        return entries

    def _index(self, entries: list[Entry]) -> None:
        db = self._connect()
        with db:
            db.executemany(
                "INSERT INTO entries (received_at, receiver, status, alertname, severity, fingerprint, starts_at, "
                "ends_at, labels, annotations) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(e.received_at, e.receiver, e.status, e.alertname, e.severity, e.fingerprint, e.starts_at,
                  e.ends_at, json.dumps(e.labels), json.dumps(e.annotations)) for e in entries])
            self._prune(db, entries[-1].received_at if entries else time.time())

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        db.execute("DELETE FROM entries WHERE received_at < ?", (now - self.limits.index_retention_seconds,))
        row = db.execute("SELECT MAX(id) FROM entries").fetchone()
        if row and row[0] is not None:
            db.execute("DELETE FROM entries WHERE id <= ?", (row[0] - self.limits.index_max_entries,))

    # --- reading -----------------------------------------------------------------------------------

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[Entry]:
        if self.readonly and not self.index.exists():
            return iter(())
        try:
            rows = self._connect().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError("index", f"cannot read the inbox index {self.index}: {exc}") from None
        return (Entry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _json_map(r[8]), _json_map(r[9]))
                for r in rows)

    _COLUMNS = "received_at, receiver, status, alertname, severity, fingerprint, starts_at, ends_at, labels, annotations"

    def history(self, since: float, *, include_watchdog: bool = False, limit: int = 10_000) -> list[Entry]:
        """Entries received at or after ``since``, oldest first (the Watchdog's only when asked)."""
        where = "" if include_watchdog else "AND alertname != ?"
        params: tuple[Any, ...] = (since,) if include_watchdog else (since, WATCHDOG)
        return list(self._rows(f"SELECT {self._COLUMNS} FROM (SELECT id, {self._COLUMNS} FROM entries "
                               f"WHERE received_at >= ? {where} ORDER BY id DESC LIMIT {int(limit)}) ORDER BY id",
                               params))

    def firing(self) -> list[Entry]:
        """Every alert (but the Watchdog) whose latest entry is firing, oldest first."""
        return list(self._rows(
            f"SELECT {self._COLUMNS} FROM entries WHERE id IN (SELECT MAX(id) FROM entries GROUP BY fingerprint) "
            "AND status = 'firing' AND alertname != ? ORDER BY id", (WATCHDOG,)))

    def last_heartbeat(self) -> float | None:
        """When the last Watchdog notification arrived (Unix time), None when none did."""
        rows = list(self._rows(f"SELECT {self._COLUMNS} FROM entries WHERE alertname = ? "
                               "ORDER BY received_at DESC LIMIT 1", (WATCHDOG,)))
        return rows[0].received_at if rows else None

    def count(self) -> int:
        if self.readonly and not self.index.exists():
            return 0
        return int(self._connect().execute("SELECT COUNT(*) FROM entries").fetchone()[0])


def _json_map(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
