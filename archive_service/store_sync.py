"""Legal holds and retention locks: the catalog first, then the store, finished by whoever comes next.

A hold or a retention extension touches one object per version, and its key sidecar (a data key
re-wrapped after a key rotation, needed to read the version once the old KEK is retired), and the
store can stop after some of them. A COMPLIANCE lock cannot be shortened, so such a change cannot
be rolled back: it is rolled forward. The catalog change is committed together with a `store_sync`
row naming the record; `settle` then brings every committed version's object to what the catalog
says and deletes the row. A row left by a store outage or a crash is settled by the next caller:
`Archive.reconcile` (service start, `POST /admin/reconcile`, `hdc archive reconcile`), a
disposition of the record, a repeated retention extension, and the service's background
`sync_round`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from minio.error import S3Error
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Connection

from . import catalogdb as db
from .store import StoreRefused, StoreUnavailable

if TYPE_CHECKING:
    from .service import Archive

log = logging.getLogger("hdc.archive")

#: How many times `settle` re-applies a record whose catalog state changed while it wrote the store.
ATTEMPTS = 3


@dataclass(frozen=True)
class Change:
    """What a caller has just committed, so that only that is sent to the store."""

    hold: bool = False  # set every version's legal hold to the catalog's
    locks: frozenset[int] = field(default_factory=frozenset)  # versions whose lock moved to their catalog date


@dataclass(frozen=True)
class Owed:
    """A record whose objects must follow a committed change (`mark`'s row id, `change` when known)."""

    record_id: str
    row: int
    change: Change | None = None


def mark(conn: Connection, record_id: str, change: Change | None = None) -> Owed:
    """Call inside the transaction that changes the record's hold or retention in the catalog."""
    row = conn.execute(db.store_sync.insert().values(record_id=record_id, at=db.now())).inserted_primary_key
    assert row is not None
    return Owed(record_id, int(row[0]), change)


def owed(conn: Connection, record_id: str) -> bool:
    """Whether an earlier change to the record may not have reached the store yet."""
    return (
        conn.execute(select(db.store_sync.c.id).where(db.store_sync.c.record_id == record_id).limit(1)).first()
        is not None
    )


def extend_in(conn: Connection, record_ids: list[str], until: datetime) -> dict[str, frozenset[int]]:
    """Raise the records' and their committed versions' catalog dates to `until`; returns, per
    record that changed, the versions whose lock must move.

    The records are updated first: that waits for a correction being committed to one of them
    (which holds its record row), so the versions read next include it.
    """
    conn.execute(
        update(db.records)
        .where(and_(db.records.c.record_id.in_(record_ids), db.records.c.retain_until < until))
        .values(retain_until=until)
    )
    v = db.versions.c
    low = and_(v.record_id.in_(record_ids), v.state == "committed", v.retain_until < until)
    moved: dict[str, set[int]] = {}
    for rid, version in conn.execute(select(v.record_id, v.version).where(low)):
        moved.setdefault(rid, set()).add(version)
    if moved:
        conn.execute(update(db.versions).where(low).values(retain_until=until))
    return {rid: frozenset(vs) for rid, vs in moved.items()}


def pending(archive: Archive, limit: int = 1000) -> list[str]:
    """Records owed a store update, oldest change first."""
    first = func.min(db.store_sync.c.id)
    with archive.engine.connect() as conn:
        rows = conn.execute(
            select(db.store_sync.c.record_id).group_by(db.store_sync.c.record_id).order_by(first).limit(limit)
        )
        return [r[0] for r in rows]


def count_pending(archive: Archive) -> int:
    with archive.engine.connect() as conn:
        return int(conn.execute(select(func.count(func.distinct(db.store_sync.c.record_id)))).scalar() or 0)


def _state(conn: Connection, record_id: str) -> tuple[Any, ...]:
    """What the store must show for the record: its hold and each committed version's lock."""
    rec = db.get_record(conn, record_id)
    hold = bool(rec is not None and rec.legal_hold)
    vers = db.list_versions(conn, record_id, ("committed",))
    return hold, tuple(
        (v.version, v.object_key, v.s3_version_id, db.utc(v.retain_until), v.rewrap_version_id) for v in vers
    )


def _lock(archive: Archive, key: str, version_id: str | None, until: datetime, known: bool) -> None:
    """Lock the object until `until`; unless `known` short, read the lock first (never shorten)."""
    store = archive.store
    if not known:
        current = store.retention(store.records, key, version_id)
        if current is not None and current >= until:
            if current > until:
                log.warning("store locks %s until %s, after the catalog's %s: left as is", key, current, until)
            return
    store.set_retention(store.records, key, version_id, until)


def _apply(archive: Archive, record_id: str, state: tuple[Any, ...], change: Change | None) -> None:
    """Send the state to every object; a refused object does not keep the others from it (the
    first refusal is raised at the end, so the record stays owed). An outage stops at once."""
    from .service import rewrap_key

    hold, vers = state
    known = change is not None
    steps: list[Callable[[], None]] = []
    for version, key, version_id, until, rewrap_id in vers:
        objects = [(key, version_id)] + ([(rewrap_key(record_id, version), rewrap_id)] if rewrap_id else [])
        for k, vid in objects:
            if change is None or version in change.locks:
                steps.append(partial(_lock, archive, k, vid, until, known))
            if change is None or change.hold:
                steps.append(partial(archive.store.set_legal_hold, archive.store.records, k, vid, hold))
    refused: StoreRefused | None = None
    for step in steps:
        try:
            step()
        except StoreRefused as exc:
            refused = refused or exc
    if refused is not None:
        raise refused


def settle(archive: Archive, record_id: str, mine: Owed | None = None) -> bool:
    """Bring the record's objects to the catalog's hold and locks; True once nothing is owed.

    With `mine` (the caller's own change, just committed) and no other change owed, only that
    change is sent; otherwise every lock is read and raised where short and every hold set. Store
    errors propagate and leave the rows for the next settle.

    Every settle reads the catalog again after its own writes: if the record changed meanwhile, a
    newer change's settle may have finished before this one's older writes landed, so it writes the
    current state again (even with no row left). The last writer of each object always checks.
    """
    sync = db.store_sync.c
    recheck = False
    for _ in range(ATTEMPTS):
        with archive.engine.connect() as conn:
            rows = [r[0] for r in conn.execute(select(sync.id).where(sync.record_id == record_id))]
            if not rows and not recheck:
                return True
            state = _state(conn, record_id)
        change = mine.change if mine is not None and rows == [mine.row] else None
        try:
            _apply(archive, record_id, state, change)
        except StoreRefused:
            if change is None:
                raise
            mine, recheck = None, True  # the store is not where the catalog said: compare it all
            continue
        with archive.engine.begin() as conn:
            if _state(conn, record_id) == state:
                if rows:
                    conn.execute(delete(db.store_sync).where(and_(sync.record_id == record_id, sync.id <= max(rows))))
                return True
        mine, recheck = None, True
    with archive.engine.begin() as conn:  # still changing under us: owed, for the next settle
        mark(conn, record_id)
    return False


def settle_all(archive: Archive, stop: threading.Event | None = None) -> tuple[int, int]:
    """Settle every record owed a store update: (settled, still owed). A store that is down stops
    the round (StoreUnavailable propagates); a refusal or an S3 error is logged and the record left
    for later, so one bad object never holds up the others. `stop` ends the round early."""
    done = left = 0
    for record_id in pending(archive):
        if stop is not None and stop.is_set():
            break
        try:
            ok = settle(archive, record_id)
        except (StoreRefused, S3Error) as exc:
            log.warning("store sync of record %s: %s", record_id, exc)
            ok = False
        done += ok
        left += not ok
    return done, left


def settle_after_commit(archive: Archive, owed_list: Iterable[Owed]) -> None:
    """A committed change's store update, when the caller's answer must not depend on it (the
    patient's earlier records after an ingest): failures are logged and left to `sync_round`."""
    for item in owed_list:
        try:
            settle(archive, item.record_id, item)
        except (StoreUnavailable, StoreRefused) as exc:
            log.warning("record %s: store update left for the background sync: %s", item.record_id, exc)
            if isinstance(exc, StoreUnavailable):
                return  # the rest would fail the same way


def settle_for_client(archive: Archive, item: Owed | None, record_id: str) -> bool:
    """Settle a change a client waits for: True when the store has it all, False when it is left
    owed to the background sync (the store went away midway, or the record kept changing under
    this settle); the client then gets 202. A refusal is raised, saying what the catalog holds."""
    note = "the change is recorded in the catalog; the store sync retries it every HDC_ARCHIVE_STORE_SYNC_SECONDS"
    try:
        return settle(archive, record_id, item)
    except StoreUnavailable as exc:
        log.warning("record %s: store update left for the background sync: %s", record_id, exc)
        return False
    except StoreRefused as exc:
        raise type(exc)(f"{exc}; {note}", exc.code) from exc
    except S3Error as exc:
        raise StoreRefused(f"store error {exc.code}: {exc.message}; {note}", exc.code or "") from exc


def sync_round(archive: Archive, stopping: threading.Event) -> None:
    """One round of the background sync (`Periodic`, every `store_sync_seconds`): settle what store
    outages left owed; a store still down just waits for the next round."""
    try:
        done, left = settle_all(archive, stopping)
    except StoreUnavailable as exc:
        log.info("store sync waits for the store: %s", exc)
        return
    if done or left:
        log.info("store sync: %d record(s) settled, %d still owed", done, left)
