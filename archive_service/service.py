"""The archive itself, independent of HTTP: wiring of settings, store, catalog, keys and audit."""

from __future__ import annotations

import json
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, delete, select, update
from sqlalchemy.engine import Connection, Row

from inventory.loader import CatalogError, load_catalog

from . import catalogdb as db
from . import store_sync
from .audit import AuditLog
from .crypto import KeyProvider, LocalKeyring, audit_text_key
from .settings import ArchiveSettings, add_duration, parse_duration
from .store import ObjectStore

log = logging.getLogger("hdc.archive")


class NotFound(Exception):
    pass


class Conflict(Exception):
    """HTTP 409; `retain_until` is reported when a retention forbids the operation."""

    def __init__(self, message: str, retain_until: datetime | None = None) -> None:
        super().__init__(message)
        self.retain_until = retain_until


class BadInput(Exception):
    """HTTP 400 (e.g. checksum mismatch)."""


class TooLarge(Exception):
    """HTTP 413."""


def object_key(record_id: str, version: int) -> str:
    return f"records/{record_id}/v{version:06d}"


def rewrap_key(record_id: str, version: int) -> str:
    return f"keys/{record_id}/v{version:06d}.json"


def load_keys(settings: ArchiveSettings, engine: Engine | None = None) -> LocalKeyring:
    """The keyring; with the catalog's `engine`, refuse to create a new one over records that an
    existing keyring wraps (a typo in HDC_ARCHIVE_KEK_FILE must not start a second key set)."""
    from hdc.errors import UserError

    if settings.kek:
        return LocalKeyring.from_env(settings.kek, settings.index_key)
    path = settings.keyring_path
    if engine is not None and not path.exists():
        with engine.connect() as conn:
            wrapped = conn.execute(
                select(db.versions.c.record_id).where(db.versions.c.state == "committed").limit(1)
            ).first()
        if wrapped is not None:
            raise UserError(
                f"keyring {path} not found, but the catalog holds records wrapped by a keyring: restore it from its "
                "backup (runbooks/archive/key-rotation.md) or check HDC_ARCHIVE_KEK_FILE"
            )
    return LocalKeyring.load_or_create(path)


def facility_ids(catalog_ref: str) -> frozenset[str]:
    from hdc.errors import UserError

    try:
        cat = load_catalog(catalog_ref)
    except CatalogError:
        raise
    except (OSError, ValueError) as exc:
        raise UserError(f"HDC_ARCHIVE_CATALOG={catalog_ref}: cannot load the catalog: {exc}") from None
    return frozenset(f.id for f in cat.facilities)


def _instance_id(settings: ArchiveSettings) -> str:
    if settings.instance_id:
        return settings.instance_id
    path = settings.state_dir / "instance-id"
    if not path.exists():
        path.write_text(secrets.token_hex(8))
    return path.read_text().strip()


@dataclass
class Archive:
    """Everything a request handler or a CLI command needs."""

    settings: ArchiveSettings
    store: ObjectStore
    engine: Engine
    keys: LocalKeyring
    audit: AuditLog
    facilities: frozenset[str]
    instance: str
    pool: ThreadPoolExecutor

    @classmethod
    def open(
        cls, settings: ArchiveSettings, *, setup_store: bool = True, cli: bool = False, writer: str = "cli"
    ) -> Archive:
        """`cli=True`: an operator command, auditing into its own chain (`<instance>-<writer>`) next
        to the service's."""
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        facilities = facility_ids(settings.catalog)
        store = ObjectStore(settings)
        if setup_store:
            for note in store.ensure_buckets():
                log.info(note)
        engine = db.open_catalog(settings.db_url)
        keys = load_keys(settings, engine)
        instance = _instance_id(settings)
        audit = AuditLog(settings, store, f"{instance}-{writer}" if cli else instance)
        pool = ThreadPoolExecutor(max_workers=settings.upload_concurrency * 2, thread_name_prefix="archive-io")
        return cls(settings, store, engine, keys, audit, facilities, instance, pool)

    def close(self) -> None:
        self.audit.close()
        self.pool.shutdown(wait=True)
        self.store.fast.close()
        self.engine.dispose()

    @property
    def provider(self) -> KeyProvider:
        return self.keys

    @property
    def audit_text_key(self) -> bytes:
        """Seals the free text of audit entries (crypto.seal_text)."""
        return audit_text_key(self.keys.index_key)

    # --- retention arithmetic
    def retain_until_for(self, record_class: str, subclass: str, document_date: date) -> datetime:
        """Schedule from the document date; never less than the minimum after ingest."""
        start = datetime.combine(document_date, time(0), tzinfo=UTC)
        by_law = add_duration(start, self.settings.retention_for(record_class, subclass))
        floor = datetime.now(UTC) + parse_duration(self.settings.min_retention)
        return max(by_law, floor).replace(microsecond=0) + timedelta(seconds=1)

    def record(self, record_id: str) -> Row[Any]:
        with self.engine.connect() as conn:
            row = db.get_record(conn, record_id)
        if row is None or row.status == "pending":
            raise NotFound(f"record {record_id} not found")
        return row

    def version(self, record_id: str, version: int | None = None) -> Row[Any]:
        rec = self.record(record_id)
        with self.engine.connect() as conn:
            row = db.get_version(conn, record_id, rec.current_version if version is None else version)
        if row is None or row.state == "pending":
            raise NotFound(f"record {record_id} has no version {version}")
        return row

    # --- retention and holds: catalog first, then the store (store_sync.py)
    def extend_retention(self, record_id: str, until: datetime, actor: str) -> tuple[datetime, int, bool]:
        """Extend every version's lock to `until`; shortening is a Conflict. Returns the date, the
        number of versions and whether the store has it all yet (else the sync finishes it)."""
        self.record(record_id)  # an unknown record is a 404 even while the store is down
        self.store.ping()  # a store that is down from the start: 503, nothing recorded
        with self.engine.begin() as conn:
            rec = self._active(conn, record_id)
            current = db.utc(rec.retain_until)
            assert current is not None
            if until < current:
                raise Conflict(
                    f"retention can be extended, never shortened: record is retained until {current.isoformat()}",
                    current,
                )
            until = max(until.replace(microsecond=0), current)
            moved = store_sync.extend_in(conn, [record_id], until)
            mine = (
                store_sync.mark(conn, record_id, store_sync.Change(locks=moved[record_id]))
                if record_id in moved
                else None
            )
            n = len(db.list_versions(conn, record_id, ("committed",)))
            owed = mine is not None or store_sync.owed(conn, record_id)
            # at least `until` after extend_in; later if a concurrent extension went further
            until = db.utc(self._active(conn, record_id).retain_until) or until
        synced = store_sync.settle_for_client(self, mine, record_id) if owed else True
        return until, n, synced

    def set_hold(self, record_id: str, on: bool, reason: str, actor: str) -> bool:
        """Place or release a legal hold. Returns whether the store has it on every version yet
        (else the sync finishes it: the catalog, which the service decides by, has it)."""
        self.record(record_id)  # an unknown record is a 404 even while the store is down
        self.store.ping()  # a store that is down from the start: 503, nothing recorded
        with self.engine.begin() as conn:
            rec = self._active(conn, record_id)
            if bool(rec.legal_hold) == on:
                pending = " (recorded; the store is being brought in line)" if store_sync.owed(conn, record_id) else ""
                raise Conflict(f"record {record_id} is {'already' if on else 'not'} under legal hold{pending}")
            changed = conn.execute(
                update(db.records)
                .where(and_(db.records.c.record_id == record_id, db.records.c.legal_hold.is_(not on)))
                .values(legal_hold=on, hold_reason=reason if on else None)
            )
            if changed.rowcount != 1:
                raise Conflict(f"record {record_id}: its legal hold changed meanwhile; check it and retry")
            conn.execute(
                db.insert(db.holds).values(
                    record_id=record_id, action="place" if on else "release", reason=reason, actor=actor, at=db.now()
                )
            )
            mine = store_sync.mark(conn, record_id, store_sync.Change(hold=True))
        return store_sync.settle_for_client(self, mine, record_id)

    @staticmethod
    def _active(conn: Connection, record_id: str) -> Row[Any]:
        rec = db.get_record(conn, record_id)
        if rec is None or rec.status == "pending":
            raise NotFound(f"record {record_id} not found")
        if rec.status != "active":
            raise Conflict(f"record {record_id} is {rec.status}")
        return rec

    def hold_history(self, record_id: str) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(db.holds).where(db.holds.c.record_id == record_id).order_by(db.holds.c.id)))

    # --- reconciliation after a crash
    def reconcile(self, grace_seconds: float | None = None, *, at_start: bool = False) -> dict[str, int]:
        """Settle ingests interrupted by a crash: finish those whose object is complete, drop the rest;
        then apply the holds and locks a store outage left owed (store_sync.py).

        Pending rows count as dead once older than the grace period, except this instance's own at
        its start (`at_start`: nothing of this instance is uploading yet). Any other time, a young
        row may be an upload in progress, here or in another instance (`POST /admin/reconcile`, the
        CLI, which shares the service's instance id), and is left alone. Incomplete multipart
        uploads nobody owns are aborted.
        """
        grace = timedelta(seconds=self.settings.reconcile_grace_seconds if grace_seconds is None else grace_seconds)
        cutoff = datetime.now(UTC) - grace
        done = {"committed": 0, "dropped": 0, "uploads_aborted": 0}
        with self.engine.connect() as conn:
            pending = list(conn.execute(select(db.versions).where(db.versions.c.state == "pending")))
        live_keys: set[str] = set()
        dead_keys: set[str] = set()
        for v in pending:
            created = db.utc(v.created_at)
            assert created is not None
            if not (at_start and v.owner == self.instance) and created > cutoff:
                live_keys.add(v.object_key)
                continue
            dead_keys.add(v.object_key)
            head = self.store.head(self.store.records, v.object_key)
            if head is not None:
                from .ingest import commit_version, plaintext_size

                version_id, obj_size, etag = head
                owed = commit_version(
                    self,
                    v.record_id,
                    v.version,
                    version_id,
                    etag,
                    plaintext_size(obj_size, v.header_len, v.chunk_size),
                    v.upload_id,
                    self._extension_of(v.record_id, db.utc(v.retain_until)),
                    held=False if v.version == 1 else None,
                )
                store_sync.settle_after_commit(self, owed)
                done["committed"] += 1
            else:
                if v.upload_id:
                    self.store.abort_upload(v.object_key, v.upload_id)
                drop_pending(self, v.record_id, v.version)
                done["dropped"] += 1
        for key, upload_id, initiated in self.store.list_uploads("records/"):
            if key in live_keys:
                continue
            if key not in dead_keys and initiated is not None and initiated.astimezone(UTC) > cutoff:
                continue
            self.store.abort_upload(key, upload_id)
            done["uploads_aborted"] += 1
        done["store_synced"], done["store_sync_owed"] = store_sync.settle_all(self)
        return done

    def _extension_of(self, record_id: str, retain: datetime | None) -> tuple[str, datetime] | None:
        """(patient index, date) the patient's earlier records must be locked until once this
        record's version commits: medical retention runs from the patient's last document."""
        with self.engine.connect() as conn:
            rec = db.get_record(conn, record_id)
        if (
            rec is None
            or retain is None
            or rec.record_class != "medical"
            or not rec.patient_index
            or not self.settings.medical_retention_from_last_document
        ):
            return None
        return rec.patient_index, retain


def drop_pending(archive: Archive, record_id: str, version: int) -> None:
    with archive.engine.begin() as conn:
        conn.execute(
            delete(db.versions).where(
                and_(
                    db.versions.c.record_id == record_id,
                    db.versions.c.version == version,
                    db.versions.c.state == "pending",
                )
            )
        )
        conn.execute(
            delete(db.records).where(and_(db.records.c.record_id == record_id, db.records.c.status == "pending"))
        )


def meta_of(row: Row[Any]) -> dict[str, Any]:
    return dict(json.loads(row.meta))


def save_json(path: Path, doc: object) -> None:
    path.write_text(json.dumps(doc, indent=1, default=str))
