"""Grouping and persistent delivery: events → grouped messages → outbox rows → Apprise, with retries.

1. Events written by the engine (same transaction as the alert change) are gathered into a
   group per (rule, region, firing|resolved). A group is flushed `grouping.wait` after it
   opened, and not sooner than `grouping.interval` after the previous flush of the same key:
   300 facilities of a region going down within the window give one message.
2. Flushing renders one message per matching route and Apprise URL and inserts it into the
   outbox with an idempotency key (`g<group>-<route>-<url#>`) — UNIQUE, so a flush replayed
   after a crash cannot queue a message twice.
3. The worker sends due rows one by one. Before sending, the attempt is recorded and the next
   attempt scheduled (back-off); only when Apprise reports success is the row marked `sent`.
   Delivery is therefore at-least-once; a duplicate needs a crash in the instant between the
   destination accepting the message and the `sent` commit, and then carries the same
   reference (body footer, and an `X-HDC-Notification` header in e-mail) so it can be told
   apart. Outages of the destination, however long, only delay messages: each is sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inventory.model import Catalog
from inventory.secrets import SecretError, resolve
from monitor.alerting.store import Store

from .config import NotifyConfig, Route
from .integrations import DeliveryError, Integration, integration_for
from .render import render

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    idem_key: str
    route: str
    url_ref: str
    title: str
    body: str
    attempts: int
    created_at: float


class Outbox:
    def __init__(
        self,
        store: Store,
        config: NotifyConfig,
        catalog: Catalog | None,
        *,
        integration: Callable[[str], Integration] = integration_for,
    ) -> None:
        self.store = store
        self.config = config
        self.catalog = catalog
        self.integration = integration

    # --- grouping -----------------------------------------------------------------------------
    def group_events(self, now: float) -> int:
        """Attach every new event to the open group of its (rule, region, kind), opening one if needed."""
        g = self.config.grouping
        with self.store.tx() as db:
            events = db.execute("SELECT * FROM events WHERE group_id IS NULL ORDER BY id").fetchall()
            for ev in events:
                row = db.execute(
                    "SELECT id FROM groups WHERE rule = ? AND region = ? AND kind = ? AND flushed_at IS NULL",
                    (ev["rule"], ev["region"], ev["kind"]),
                ).fetchone()
                if row is None:
                    last = db.execute(
                        "SELECT MAX(flushed_at) AS t FROM groups WHERE rule = ? AND region = ? AND kind = ?",
                        (ev["rule"], ev["region"], ev["kind"]),
                    ).fetchone()["t"]
                    flush_at = max(now + g.wait, (last + g.interval) if last is not None else 0.0)
                    cur = db.execute(
                        "INSERT INTO groups (rule, region, kind, severity, opened_at, flush_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (ev["rule"], ev["region"], ev["kind"], ev["severity"], now, flush_at),
                    )
                    group_id = cur.lastrowid
                else:
                    group_id = row["id"]
                db.execute("UPDATE events SET group_id = ? WHERE id = ?", (group_id, ev["id"]))
        return len(events)

    def flush_groups(self, now: float) -> int:
        """Render due groups into outbox rows (one per route and URL), in the route's language."""
        queued = 0
        with self.store.tx() as db:
            groups = db.execute(
                "SELECT * FROM groups WHERE flushed_at IS NULL AND flush_at <= ? ORDER BY id", (now,)
            ).fetchall()
            for grp in groups:
                payloads = [
                    json.loads(r["payload"])
                    for r in db.execute("SELECT payload FROM events WHERE group_id = ? ORDER BY id", (grp["id"],))
                ]
                for route in self.config.routes_for(grp["severity"], grp["region"]):
                    queued += self._queue(db, grp["id"], f"g{grp['id']}", route, grp["kind"], payloads, now)
                db.execute("UPDATE groups SET flushed_at = ? WHERE id = ?", (now, grp["id"]))
        return queued

    def _queue(
        self,
        db: Any,
        group_id: int,
        key_prefix: str,
        route: Route,
        kind: str,
        payloads: list[dict[str, Any]],
        now: float,
    ) -> int:
        """One outbox row per URL of `route`; the UNIQUE key makes a replayed flush a no-op."""
        queued = 0
        for i, ref in enumerate(route.urls):
            key = f"{key_prefix}-{route.name}-{i}"
            title, body = render(
                kind=kind,
                payloads=payloads,
                lang=route.language,
                catalog=self.catalog,
                noc_url=self.config.noc_url,
                max_names=self.config.grouping.max_names,
                ref=key,
                short=route.short,
            )
            cur = db.execute(
                "INSERT OR IGNORE INTO outbox (idem_key, group_id, route, url_ref, language, title, body,"
                " status, attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                (key, group_id, route.name, ref, route.language, title, body, now, now),
            )
            queued += cur.rowcount
        return queued

    def enqueue_group(self, *, route: Route, kind: str, payloads: list[dict[str, Any]], key: str, now: float) -> int:
        """Queue an already-grouped notification (Alertmanager's webhook) for one route; idempotent by `key`."""
        if not payloads:
            return 0
        first = payloads[0]
        with self.store.tx() as db:
            if db.execute("SELECT 1 FROM outbox WHERE idem_key LIKE ? LIMIT 1", (f"{key}-%",)).fetchone():
                return 0  # Alertmanager retried a notification we already hold
            cur = db.execute(
                "INSERT INTO groups (rule, region, kind, severity, opened_at, flush_at, flushed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (first["rule"], first["region"], kind, first["severity"], now, now, now),
            )
            assert cur.lastrowid is not None
            return self._queue(db, cur.lastrowid, key, route, kind, payloads, now)

    def next_flush(self) -> float | None:
        with self.store._lock:
            row = self.store.db.execute("SELECT MIN(flush_at) AS t FROM groups WHERE flushed_at IS NULL").fetchone()
        return None if row["t"] is None else float(row["t"])

    # --- delivery -----------------------------------------------------------------------------
    def due(self, now: float, limit: int = 100) -> list[OutboxRow]:
        with self.store._lock:
            rows = self.store.db.execute(
                "SELECT id, idem_key, route, url_ref, title, body, attempts, created_at FROM outbox"
                " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [OutboxRow(**dict(r)) for r in rows]

    def _backoff(self, attempts: int) -> float:
        d = self.config.delivery
        return float(min(d.retry_max, d.retry_initial * (2 ** max(0, attempts - 1))))

    def begin_attempt(self, row: OutboxRow, now: float) -> None:
        """Record the attempt and schedule the retry before sending: a crash mid-send retries later."""
        attempts = row.attempts + 1
        with self.store.tx() as db:
            db.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ? WHERE id = ? AND status = 'pending'",
                (attempts, now + self._backoff(attempts), row.id),
            )

    def finish_attempt(self, row: OutboxRow, now: float, error: str | None) -> None:
        with self.store.tx() as db:
            if error is None:
                db.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?", (now, row.id)
                )
            elif now - row.created_at >= self.config.delivery.give_up_after:
                db.execute("UPDATE outbox SET status = 'dead', last_error = ? WHERE id = ?", (error, row.id))
                log.error("notification %s given up after %d attempts: %s", row.idem_key, row.attempts + 1, error)
            else:
                db.execute("UPDATE outbox SET last_error = ? WHERE id = ?", (error, row.id))

    def send(self, row: OutboxRow) -> str | None:
        """Deliver one row (blocking); the error in words, or None on success."""
        try:
            url = resolve(row.url_ref)
        except SecretError as exc:
            return str(exc)
        try:
            self.integration(url).send(url, row.title, row.body, ref=row.idem_key, timeout=self.config.delivery.timeout)
        except DeliveryError as exc:
            return str(exc)
        except Exception as exc:  # an integration bug must not stop the queue
            log.exception("notification %s: unexpected error", row.idem_key)
            return f"unexpected error: {type(exc).__name__}"
        return None

    def deliver_due_sync(self, now: float) -> int:
        """Send what is due, in order (tests and the CLI); returns how many were delivered."""
        sent = 0
        for row in self.due(now):
            self.begin_attempt(row, now)
            error = self.send(row)
            self.finish_attempt(row, now, error)
            sent += error is None
        return sent

    def pump_sync(self, now: float) -> int:
        """group → flush → deliver, once."""
        self.group_events(now)
        self.flush_groups(now)
        return self.deliver_due_sync(now)


class OutboxWorker:
    """Runs the outbox on the monitor's event loop; sending happens in a thread (Apprise blocks).

    Stopping is graceful: a message being sent is finished and recorded before the worker
    exits, so a restart does not send it again (only a crash can, see the module docstring).
    """

    def __init__(self, outbox: Outbox, *, clock: Callable[[], float] = time.time, tick: float = 0.25) -> None:
        self.outbox = outbox
        self.clock = clock
        self.tick = tick
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.delivered = 0
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self.run(), name="hdc-outbox")

    async def stop(self, timeout: float = 60.0) -> None:
        """Let the message in flight finish (up to `timeout`), then end the worker."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the queue alive; the rows stay in SQLite
                log.exception("outbox step failed")
            if self._stopping:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick)

    async def step(self) -> None:
        now = self.clock()
        self.outbox.group_events(now)
        self.outbox.flush_groups(now)
        for row in self.outbox.due(now):
            if self._stopping:
                return
            self.outbox.begin_attempt(row, self.clock())
            sending = asyncio.ensure_future(asyncio.to_thread(self.outbox.send, row))
            try:
                error = await asyncio.shield(sending)
            except asyncio.CancelledError:
                # cancelled mid-send: the destination may accept it; record the outcome before leaving
                error = await sending
                self.outbox.finish_attempt(row, self.clock(), error)
                raise
            self.outbox.finish_attempt(row, self.clock(), error)
            if error is None:
                self.delivered += 1
            else:
                self.failures += 1
                log.warning("notification %s not delivered (attempt %d): %s", row.idem_key, row.attempts + 1, error)
