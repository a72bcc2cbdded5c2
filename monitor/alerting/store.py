"""Alert state, silences, acknowledgements, notification groups and the outbox, in one SQLite file.

One file (WAL) so a restart finds exactly what was firing, what was already notified and
what is still waiting to be delivered: no re-firing, no forgotten resolve. The engine and
the outbox worker run on the monitor's event loop and share one connection; the CLI opens
its own (WAL lets both read and write with a short busy wait).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2  # 2: alerts.last_notified_at (reminders)

EVENTS_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('firing', 'reminder', 'resolved')),
    rule TEXT NOT NULL,
    region TEXT NOT NULL,
    facility TEXT NOT NULL,
    severity TEXT NOT NULL,
    created_at REAL NOT NULL,
    payload TEXT NOT NULL,
    group_id INTEGER
);"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    facility TEXT NOT NULL,
    region TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'suppressed', 'resolved')),
    active_since REAL NOT NULL,
    fired_at REAL,
    clear_since REAL,
    resolved_at REAL,
    value REAL,
    value_text TEXT NOT NULL DEFAULT '',
    notified INTEGER NOT NULL DEFAULT 0,
    suppressed_by TEXT,
    silenced_by INTEGER,
    children INTEGER NOT NULL DEFAULT 0,
    ack_by TEXT,
    ack_at REAL,
    ack_comment TEXT,
    updated_at REAL NOT NULL,
    last_notified_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (rule, facility) WHERE state != 'resolved';
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    facility TEXT,
    region TEXT,
    rule TEXT,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    expired_at REAL
);
CREATE TABLE IF NOT EXISTS flaps (
    facility TEXT PRIMARY KEY,
    last_up INTEGER NOT NULL,
    changes TEXT NOT NULL DEFAULT '[]'
);
{events}
CREATE INDEX IF NOT EXISTS events_ungrouped ON events (group_id) WHERE group_id IS NULL;
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    region TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    opened_at REAL NOT NULL,
    flush_at REAL NOT NULL,
    flushed_at REAL
);
CREATE INDEX IF NOT EXISTS groups_open ON groups (rule, region, kind) WHERE flushed_at IS NULL;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idem_key TEXT NOT NULL UNIQUE,
    group_id INTEGER NOT NULL,
    route TEXT NOT NULL,
    url_ref TEXT NOT NULL,
    language TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
"""
SCHEMA = SCHEMA.replace("{events}", EVENTS_TABLE.format(name="events"))


@dataclass
class Alert:
    id: int
    rule: str
    facility: str
    region: str
    severity: str
    state: str
    active_since: float
    fired_at: float | None
    clear_since: float | None
    resolved_at: float | None
    value: float | None
    value_text: str
    notified: bool
    suppressed_by: str | None
    silenced_by: int | None
    children: int
    ack_by: str | None
    ack_at: float | None
    ack_comment: str | None
    updated_at: float
    last_notified_at: float | None = None  # the last firing or reminder message (reminders count from it)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Silence:
    id: int
    facility: str | None
    region: str | None
    rule: str | None
    starts_at: float
    ends_at: float
    reason: str
    created_by: str
    created_at: float
    expired_at: float | None

    def active(self, now: float) -> bool:
        return self.expired_at is None and self.starts_at <= now < self.ends_at

    def matches(self, rule: str, facility: str, region: str) -> bool:
        return (
            (self.facility is None or self.facility == facility)
            and (self.region is None or self.region == region)
            and (self.rule is None or self.rule == rule)
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_ALERT_COLS = [f for f in Alert.__dataclass_fields__]
_SILENCE_COLS = [f for f in Silence.__dataclass_fields__]


def _alert(row: sqlite3.Row) -> Alert:
    data = dict(row)
    data["notified"] = bool(data["notified"])
    return Alert(**{k: data[k] for k in _ALERT_COLS})


def _silence(row: sqlite3.Row) -> Silence:
    return Silence(**{k: row[k] for k in _SILENCE_COLS})


class Store:
    """Thin typed access to the SQLite file; every multi-row change is one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        with self.tx():
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row["value"]) > SCHEMA_VERSION:
                raise RuntimeError(f"{path}: alert store schema {row['value']} is newer than this hdc")
            elif int(row["value"]) < SCHEMA_VERSION:
                self._migrate(int(row["value"]))

    def _migrate(self, version: int) -> None:
        """Bring a state file from an older hdc up to date in place (inside the opening transaction)."""
        if version < 2:
            cols = {r["name"] for r in self.db.execute("PRAGMA table_info(alerts)")}
            if "last_notified_at" not in cols:
                self.db.execute("ALTER TABLE alerts ADD COLUMN last_notified_at REAL")
            # an alert notified before the upgrade was last told when it fired
            self.db.execute(
                "UPDATE alerts SET last_notified_at = fired_at WHERE notified = 1 AND last_notified_at IS NULL"
            )
            # events.kind gains 'reminder': SQLite cannot alter a CHECK, so the table is copied
            self.db.execute(EVENTS_TABLE.format(name="events_v2"))
            self.db.execute("INSERT INTO events_v2 SELECT * FROM events")
            self.db.execute("DROP TABLE events")
            self.db.execute("ALTER TABLE events_v2 RENAME TO events")
            self.db.execute("CREATE INDEX IF NOT EXISTS events_ungrouped ON events (group_id) WHERE group_id IS NULL")
        self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: the CLI and the monitor never interleave half-changes)."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # --- alerts -------------------------------------------------------------------------------
    def open_alerts(self) -> list[Alert]:
        with self._lock:
            rows = self.db.execute("SELECT * FROM alerts WHERE state != 'resolved' ORDER BY id").fetchall()
        return [_alert(r) for r in rows]

    def alerts(self, *, include_resolved: bool = False, limit: int = 1000) -> list[Alert]:
        where = "" if include_resolved else "WHERE state != 'resolved'"
        with self._lock:
            rows = self.db.execute(f"SELECT * FROM alerts {where} ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_alert(r) for r in rows]

    def alert(self, alert_id: int) -> Alert | None:
        with self._lock:
            row = self.db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return _alert(row) if row else None

    def insert_alert(self, db: sqlite3.Connection, alert: Alert) -> int:
        cols = [c for c in _ALERT_COLS if c != "id"]
        cur = db.execute(
            f"INSERT INTO alerts ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [getattr(alert, c) for c in cols],
        )
        assert cur.lastrowid is not None
        alert.id = cur.lastrowid
        return alert.id

    # the engine writes only its own columns: an acknowledgement made meanwhile by the CLI is kept
    _ENGINE_COLS = (
        "state",
        "severity",
        "region",
        "fired_at",
        "clear_since",
        "resolved_at",
        "value",
        "value_text",
        "notified",
        "suppressed_by",
        "silenced_by",
        "children",
        "updated_at",
        "last_notified_at",
    )

    def update_alert(self, db: sqlite3.Connection, alert: Alert) -> None:
        db.execute(
            f"UPDATE alerts SET {', '.join(f'{c} = ?' for c in self._ENGINE_COLS)} WHERE id = ?",
            [*(getattr(alert, c) for c in self._ENGINE_COLS), alert.id],
        )

    def delete_alert(self, db: sqlite3.Connection, alert_id: int) -> None:
        db.execute("DELETE FROM alerts WHERE id = ? AND notified = 0", (alert_id,))

    def acknowledge(self, alert_id: int, by: str, comment: str, now: float) -> Alert | None:
        with self.tx() as db:
            cur = db.execute(
                "UPDATE alerts SET ack_by = ?, ack_at = ?, ack_comment = ? WHERE id = ? AND state != 'resolved'",
                (by, now, comment, alert_id),
            )
            if cur.rowcount == 0:
                return None
        return self.alert(alert_id)

    # --- silences -----------------------------------------------------------------------------
    def add_silence(
        self,
        *,
        facility: str | None,
        region: str | None,
        rule: str | None,
        starts_at: float,
        ends_at: float,
        reason: str,
        created_by: str,
        now: float,
    ) -> Silence:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO silences (facility, region, rule, starts_at, ends_at, reason, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (facility, region, rule, starts_at, ends_at, reason, created_by, now),
            )
            sid = cur.lastrowid
        silence = self.silence(int(sid or 0))
        assert silence is not None
        return silence

    def silence(self, silence_id: int) -> Silence | None:
        with self._lock:
            row = self.db.execute("SELECT * FROM silences WHERE id = ?", (silence_id,)).fetchone()
        return _silence(row) if row else None

    def silences(self, now: float, *, include_expired: bool = False) -> list[Silence]:
        with self._lock:
            rows = self.db.execute("SELECT * FROM silences ORDER BY id").fetchall()
        out = [_silence(r) for r in rows]
        if not include_expired:
            out = [s for s in out if s.expired_at is None and s.ends_at > now]
        return out

    def expire_silence(self, silence_id: int, now: float) -> Silence | None:
        with self.tx() as db:
            cur = db.execute(
                "UPDATE silences SET expired_at = ? WHERE id = ? AND expired_at IS NULL", (now, silence_id)
            )
            if cur.rowcount == 0:
                return None
        return self.silence(silence_id)

    # --- flapping history ---------------------------------------------------------------------
    def flaps(self) -> dict[str, tuple[bool, list[float]]]:
        with self._lock:
            rows = self.db.execute("SELECT facility, last_up, changes FROM flaps").fetchall()
        return {r["facility"]: (bool(r["last_up"]), list(json.loads(r["changes"]))) for r in rows}

    def save_flap(self, db: sqlite3.Connection, facility: str, last_up: bool, changes: list[float]) -> None:
        db.execute(
            "INSERT INTO flaps (facility, last_up, changes) VALUES (?, ?, ?)"
            " ON CONFLICT (facility) DO UPDATE SET last_up = excluded.last_up, changes = excluded.changes",
            (facility, int(last_up), json.dumps(changes)),
        )

    # --- notification events ------------------------------------------------------------------
    def add_event(self, db: sqlite3.Connection, alert: Alert, kind: str, now: float, payload: dict[str, Any]) -> None:
        db.execute(
            "INSERT INTO events (alert_id, kind, rule, region, facility, severity, created_at, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (alert.id, kind, alert.rule, alert.region, alert.facility, alert.severity, now, json.dumps(payload)),
        )

    def version(self) -> str:
        """Changes whenever anything the NOC page shows from this file changes (cheap: three aggregates)."""
        with self._lock:
            a = self.db.execute(
                "SELECT COUNT(*), MAX(updated_at), MAX(ack_at), MAX(id) FROM alerts WHERE state != 'resolved'"
            ).fetchone()
            s = self.db.execute("SELECT COUNT(*), MAX(id), MAX(expired_at) FROM silences").fetchone()
            o = self.db.execute("SELECT status, COUNT(*) FROM outbox WHERE status != 'sent' GROUP BY status").fetchall()
        return repr((tuple(a), tuple(s), [tuple(r) for r in o]))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self.db.execute("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status").fetchall()
        return {r["status"]: int(r["n"]) for r in rows}
