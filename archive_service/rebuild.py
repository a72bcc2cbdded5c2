"""Rebuild the record catalog from the store alone (plus the keyring) when its database is lost.

Why: the store is the archive; the catalog is an index of it. Every record version carries its
metadata sealed in its own header (see `rebuild_scan`), destroyed records live on in their
destruction certificates, and holds, corrections and break-glass flags are in the audit trail.

Safety: the target must be empty (or hold an unfinished rebuild of the same store, which is then
resumed); rows are written in batches, each batch one transaction, records in their original
ingest order, so a killed run leaves whole records only and a rerun completes it. The last
transaction (holds, disposition requests, flags) also marks the rebuild finished.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from minio.error import S3Error
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, Table, Text, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from hdc.errors import UserError

from . import catalogdb as db
from . import store_sync
from .audit import AuditLog
from .catalogdb import safe_url
from .crypto import audit_text_key, patient_index
from .ingest import plaintext_size
from .rebuild_scan import (
    AuditFacts,
    Certificate,
    Found,
    Skip,
    audit_time,
    read_audit,
    read_certificates,
    scan_records,
)
from .service import _instance_id, load_keys, object_key
from .settings import ArchiveSettings
from .store import ObjectStore, StoreRefused, StoreUnavailable, _mapped

_meta = MetaData()
#: One row per rebuild into this database; an unfinished row lets a rerun resume.
rebuild_runs = Table(
    "catalog_rebuild",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("summary", Text),
)

CATALOG_TABLES = (db.records, db.versions, db.dispositions, db.holds, db.flags)
PUBLIC_FIELDS = ("record_class", "subclass", "facility", "document_date", "title", "author", "language", "tags")
UNKNOWN_HOLD_REASON = "legal hold found on the objects in the store; its reason is not in the audit trail"


@dataclass
class RebuildReport:
    """What was found, written, skipped, and what disagrees with the audit trail."""

    target: str
    dry_run: bool
    objects: int = 0
    records: int = 0
    versions: int = 0
    destroyed_records: int = 0
    dispositions: int = 0
    holds: int = 0
    flags: int = 0
    resumed_records: int = 0
    audit_entries: int = 0
    skipped: list[Skip] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the audit names a record the store lacks, …
    unaudited: list[str] = field(default_factory=list)  # records in the store with no ingest entry
    approximated: list[str] = field(default_factory=list)  # values taken from the audit trail or the store
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.skipped

    def summary(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            "objects": self.objects,
            "records": self.records,
            "versions": self.versions,
            "destroyed_records": self.destroyed_records,
            "dispositions": self.dispositions,
            "holds": self.holds,
            "flags": self.flags,
            "resumed_records": self.resumed_records,
            "audit_entries": self.audit_entries,
            "skipped": len(self.skipped),
            "errors": len(self.errors),
            "unaudited": len(self.unaudited),
            "approximated": len(self.approximated),
        }


@dataclass
class Planned:
    """One catalog record and its versions, ready to insert; the rows are kept pickled (a third of
    the memory of the dicts: a national catalog holds millions of them until they are written)."""

    record_id: str
    order: tuple[datetime, str, str]
    destroyed: bool
    n_versions: int
    blob: bytes
    owed: bool = False  # the store holds only some versions: the service's store sync finishes the hold

    @classmethod
    def of(
        cls,
        record_id: str,
        order: tuple[datetime, str, str],
        record: dict[str, Any],
        rows: list[Any],
        owed: bool = False,
    ) -> Planned:
        blob = pickle.dumps((record, rows), protocol=pickle.HIGHEST_PROTOCOL)
        return cls(record_id, order, record["status"] == "destroyed", len(rows), blob, owed)

    def rows(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        record, versions = pickle.loads(self.blob)  # our own bytes, made a moment ago
        return record, versions


def _iso_dt(value: Any) -> datetime | None:
    if not value:
        return None
    out = datetime.fromisoformat(str(value))
    return (out if out.tzinfo else out.replace(tzinfo=UTC)).astimezone(UTC)


# --- planning: store facts → catalog rows
def _public_meta(sealed: dict[str, Any]) -> dict[str, Any]:
    out = {k: sealed[k] for k in PUBLIC_FIELDS if k in sealed}
    out["content_type"] = sealed.get("content_type", "application/octet-stream")
    return out


def _plan_active(
    record_id: str, found: dict[int, Found], facts: AuditFacts, index_key: bytes, instance: str, report: RebuildReport
) -> Planned:
    nums = sorted(found)
    if nums != list(range(1, nums[-1] + 1)):
        missing = sorted(set(range(1, nums[-1] + 1)) - set(nums))
        report.errors.append(f"record {record_id}: version(s) {missing} missing from the store (or skipped above)")
    ingest = facts.ingests.get(record_id)
    corrections = facts.corrections.get(record_id, [])
    rows: list[dict[str, Any]] = []
    for n in nums:
        f = found[n]
        sealed = f.sealed
        created_at = _iso_dt(sealed.get("created_at"))
        reason = sealed.get("correction_reason")
        if created_at is None:  # sealed before created_at was kept in the header: audit trail, then the store
            audit_ts = (
                ingest[0] if n == 1 and ingest else corrections[n - 2][0] if 2 <= n <= len(corrections) + 1 else None
            )
            candidates = [t for t in (audit_time(audit_ts) if audit_ts else None, f.last_modified) if t is not None]
            created_at = min(candidates).astimezone(UTC).replace(microsecond=0) if candidates else datetime.now(UTC)
            report.approximated.append(f"{f.key}: created_at from the audit trail / object date ({created_at})")
            if n >= 2 and "correction_reason" not in sealed:
                reason = corrections[n - 2][1] if n - 2 < len(corrections) else None
                report.approximated.append(f"{f.key}: correction reason from the audit trail")
        retain = f.retain_until
        if retain is None:
            report.errors.append(f"{f.key}: the store reports no retain-until date (object lock missing?)")
            retain = datetime.now(UTC)
        rows.append(
            {
                "record_id": record_id,
                "version": n,
                "state": "committed",
                "object_key": object_key(record_id, n),
                "owner": instance,
                "upload_id": None,
                "s3_version_id": f.s3_version_id,
                "etag": f.etag,
                "size": plaintext_size(f.object_size, f.header_len, f.chunk_size),
                "sha256": sealed["sha256"],
                "header_len": f.header_len,
                "key_id": f.key_id,
                "wrapped_dek": f.wrapped_dek,
                "prefix": f.prefix,
                "chunk_size": f.chunk_size,
                "meta": json.dumps(_public_meta(sealed)),
                "retain_until": retain.astimezone(UTC),
                "created_at": created_at,
                "created_by": str(sealed.get("created_by") or (ingest[1] if ingest else "")),
                "correction_reason": reason,
                "rewrap_version_id": f.rewrap_version_id,
            }
        )
    first, last = found[nums[0]].sealed, found[nums[-1]].sealed
    if any(found[n].sealed.get("record_class") != first.get("record_class") for n in nums) or any(
        found[n].sealed.get("facility") != first.get("facility") for n in nums
    ):
        report.errors.append(f"record {record_id}: versions disagree on class or facility (kept version 1's)")
    held = any(found[n].legal_hold for n in nums)
    partly_held = held and not all(found[n].legal_hold for n in nums)
    events = facts.holds.get(record_id, [])
    if partly_held:  # a hold or release the store stopped midway, its catalog lost before the sync
        if events and events[-1][1] == "release":
            report.notes.append(
                f"record {record_id}: legal hold on some versions only in the store, and the audit trail's last "
                "event is a release: rebuilt as held (the safe side); release it again once the legal officer confirms"
            )
        else:
            report.notes.append(
                f"record {record_id}: legal hold on some versions only in the store; the catalog says held and "
                "the service's store sync holds the rest"
            )
    places = [e for e in events if e[1] == "place"]
    audit_held = bool(events) and events[-1][1] == "place"
    if held != audit_held:
        report.notes.append(
            f"record {record_id}: legal hold is {'on' if held else 'off'} in the store, "
            f"{'on' if audit_held else 'off'} per the audit trail (the store's state is kept)"
        )
    pid = first.get("patient_id")
    record = {
        "record_id": record_id,
        "status": "active",
        "record_class": first["record_class"],
        "subclass": last["subclass"],
        "facility": first["facility"],
        "patient_index": patient_index(index_key, str(pid)) if pid else None,
        "document_date": date.fromisoformat(str(last["document_date"])),
        "title": last["title"],
        "author": last["author"],
        "language": last["language"],
        "tags": json.dumps(last.get("tags", [])),
        "content_type": last.get("content_type", "application/octet-stream"),
        "current_version": nums[-1],
        "retain_until": max(r["retain_until"] for r in rows),
        "legal_hold": held,
        "hold_reason": (places[-1][2] if places else UNKNOWN_HOLD_REASON) if held else None,
        "created_at": rows[0]["created_at"],
        "created_by": rows[0]["created_by"],
        "destroyed_at": None,
    }
    order = (rows[0]["created_at"], ingest[0] if ingest else "~", record_id)
    return Planned.of(record_id, order, record, rows, partly_held)


def _plan_destroyed(
    record_id: str,
    entry: dict[str, Any],
    executed_at: datetime,
    facts: AuditFacts,
    instance: str,
    report: RebuildReport,
) -> Planned:
    """A destroyed record from its certificate (fields older certificates lack: from the audit trail)."""
    ingest = facts.ingests.get(record_id)
    corrections = facts.corrections.get(record_id, [])
    retain = _iso_dt(entry.get("retain_until")) or executed_at
    created_at = _iso_dt(entry.get("created_at")) or (audit_time(ingest[0]) if ingest else executed_at)
    created_by = str(entry.get("created_by") or (ingest[1] if ingest else ""))
    if entry.get("descriptive", "").startswith("withheld"):
        report.notes.append(
            f"destroyed record {record_id}: a medical record's title, author and tags are not kept in its "
            "certificate (by design); its catalog entry comes back without them"
        )
    elif "author" not in entry:
        report.approximated.append(
            f"destroyed record {record_id}: author, language, tags and content type are not in its certificate"
        )
    base = {
        "record_class": entry["record_class"],
        "subclass": entry["subclass"],
        "facility": entry["facility"],
        "document_date": entry["document_date"],
        "title": entry.get("title", ""),
        "author": entry.get("author", ""),
        "language": entry.get("language", ""),
        "tags": entry.get("tags", []),
        "content_type": entry.get("content_type", ""),
    }
    rows = []
    for v in sorted(entry["versions"], key=lambda v: int(v["version"])):
        n = int(v["version"])
        meta = dict(v["meta"]) if isinstance(v.get("meta"), dict) else base
        v_created = _iso_dt(v.get("created_at"))
        if v_created is None:
            audit_ts = (
                ingest[0] if n == 1 and ingest else corrections[n - 2][0] if 2 <= n <= len(corrections) + 1 else None
            )
            v_created = audit_time(audit_ts) if audit_ts else created_at
        rows.append(
            {
                "record_id": record_id,
                "version": n,
                "state": "destroyed",
                "object_key": object_key(record_id, n),
                "owner": instance,
                "upload_id": None,
                "s3_version_id": None,
                "etag": None,
                "size": int(v.get("size") or 0),
                "sha256": str(v["sha256"]),
                "header_len": 0,
                "key_id": "",
                "wrapped_dek": b"",
                "prefix": b"",
                "chunk_size": 0,
                "meta": json.dumps({k: meta.get(k, base.get(k)) for k in (*PUBLIC_FIELDS, "content_type")}),
                "retain_until": _iso_dt(v.get("retain_until")) or retain,
                "created_at": v_created,
                "created_by": str(v.get("created_by") or created_by),
                "correction_reason": v.get("correction_reason")
                if "correction_reason" in v
                else (corrections[n - 2][1] if 2 <= n <= len(corrections) + 1 else None),
                "rewrap_version_id": None,
            }
        )
    record = {
        "record_id": record_id,
        "status": "destroyed",
        "record_class": base["record_class"],
        "subclass": base["subclass"],
        "facility": base["facility"],
        "patient_index": None,
        "document_date": date.fromisoformat(str(base["document_date"])),
        "title": base["title"],
        "author": base["author"],
        "language": base["language"],
        "tags": json.dumps(base["tags"]),
        "content_type": base["content_type"],
        "current_version": max((int(v["version"]) for v in entry["versions"]), default=1),
        "retain_until": retain,
        "legal_hold": False,
        "hold_reason": None,
        "created_at": created_at,
        "created_by": created_by,
        "destroyed_at": executed_at,
    }
    return Planned.of(record_id, (created_at, ingest[0] if ingest else "~", record_id), record, rows)


def _plan_dispositions(certs: list[Certificate], report: RebuildReport) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Executed (or partially executed) disposition requests, and destroyed records → (entry, time)."""
    by_request: dict[str, list[Certificate]] = {}
    for c in certs:
        by_request.setdefault(c.request_id, []).append(c)
    rows = []
    destroyed: dict[str, Any] = {}
    for request_id, group in sorted(by_request.items()):
        group.sort(key=lambda c: str(c.doc.get("executed_at", "")))
        last = group[-1].doc
        ids: set[str] = set()
        for c in group:
            at = _iso_dt(c.doc["executed_at"]) or datetime.now(UTC)
            for r in c.doc["records"]:
                ids.add(str(r["record_id"]))
                destroyed[str(r["record_id"])] = (r, at)
        if not last.get("complete", True):
            report.notes.append(
                f"disposition request {request_id} is partial: its record list holds only the records certified so far"
            )
        rows.append(
            {
                "request_id": request_id,
                "status": "executed" if last.get("complete", True) else "partial",
                "record_ids": json.dumps(sorted(ids)),
                "reason": str(last.get("reason", "")),
                "requested_by": str(last.get("requested_by", "")),
                "requested_at": _iso_dt(last.get("requested_at")) or datetime.now(UTC),
                "approved_by": last.get("approved_by"),
                "approved_at": _iso_dt(last.get("approved_at")),
                "executed_by": last.get("executed_by"),
                "executed_at": _iso_dt(last.get("executed_at")),
                "certificate_key": group[-1].key,
            }
        )
    return rows, destroyed


class Planner:
    """Turns what the store and the audit trail say into catalog rows, record by record (so the
    scan's per-version data is dropped as soon as a record is planned), then cross-checks."""

    def __init__(
        self, certs: list[Certificate], facts: AuditFacts, index_key: bytes, instance: str, report: RebuildReport
    ) -> None:
        self.facts, self.index_key, self.instance, self.report = facts, index_key, instance, report
        self.dispositions, self.destroyed = _plan_dispositions(certs, report)
        self.planned: list[Planned] = []
        self.active: set[str] = set()

    def add_active(self, record_id: str, found: dict[int, Found]) -> None:
        if record_id in self.destroyed:
            self.report.errors.append(
                f"record {record_id}: a destruction certificate says it was destroyed, yet objects remain in the store"
            )
        self.active.add(record_id)
        self.planned.append(_plan_active(record_id, found, self.facts, self.index_key, self.instance, self.report))

    def finish(self) -> tuple[list[Planned], list[dict[str, Any]]]:
        """Catalog rows in original ingest order, plus disposition rows; fills the report's cross-checks."""
        report, facts = self.report, self.facts
        for record_id, (entry, at) in self.destroyed.items():
            if record_id not in self.active:
                self.planned.append(_plan_destroyed(record_id, entry, at, facts, self.instance, report))
        known = self.active | set(self.destroyed)
        for record_id, (ts, actor, where) in sorted(facts.ingests.items(), key=lambda kv: kv[1][0]):
            if record_id not in known:
                report.errors.append(
                    f"record {record_id}: the audit trail ({where}, {ts}, by {actor}) says it was ingested, "
                    "but the store holds no readable object and no destruction certificate for it"
                )
        report.unaudited.extend(sorted(r for r in self.active if r not in facts.ingests))
        certified = {r["request_id"] for r in self.dispositions}
        for request_id in sorted(set(facts.approved_requests) - certified):
            report.notes.append(
                f"disposition request {request_id} was approved ({facts.approved_requests[request_id]}) but never "
                "executed: requests not executed are not in the store; request and approve it again"
            )
        self.planned.sort(key=lambda p: p.order)
        report.destroyed_records = sum(1 for p in self.planned if p.destroyed)
        report.records = len(self.planned) - report.destroyed_records
        report.versions = sum(p.n_versions for p in self.planned)
        report.dispositions = len(self.dispositions)
        return self.planned, self.dispositions


# --- the target database
def open_target(url: str) -> Engine:
    """Engine on the target with the catalog schema; a corrupt or unreachable database is a UserError."""
    hint = "; move a damaged file aside, or rebuild into a fresh database with --into URL"
    engine = db.open_catalog(url, "database URL (--into, or HDC_ARCHIVE_DATABASE_URL)", hint)
    try:
        _meta.create_all(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        detail = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise UserError(f"catalog database {safe_url(url)} cannot be opened or created ({detail}){hint}") from None
    return engine


def begin_run(engine: Engine, source: str, url: str, into_given: bool) -> tuple[int, bool]:
    """(run id, resumed): refuse a non-empty catalog unless it holds our unfinished run."""
    with engine.begin() as conn:
        counts = {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar() or 0) for t in CATALOG_TABLES}
        open_run = conn.execute(
            select(rebuild_runs).where(rebuild_runs.c.finished_at.is_(None)).order_by(rebuild_runs.c.id.desc())
        ).first()
        if open_run is not None:
            if open_run.source != source:
                raise UserError(
                    f"catalog {safe_url(url)} holds an unfinished rebuild of another store ({open_run.source}); "
                    "use a fresh database"
                )
            return int(open_run.id), True
        if any(counts.values()):
            what = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
            hint = (
                "give --into a fresh (empty) database"
                if into_given
                else "rebuild into a fresh database with --into URL, or move the damaged database aside first"
            )
            raise UserError(f"catalog {safe_url(url)} is not empty ({what}): {hint}")
        run_id = conn.execute(db.insert(rebuild_runs).values(source=source, started_at=db.now())).inserted_primary_key
        assert run_id is not None
        return int(run_id[0]), False


def _existing(conn: Connection, ids: list[str]) -> set[str]:
    return {r[0] for r in conn.execute(select(db.records.c.record_id).where(db.records.c.record_id.in_(ids)))}


def write_records(
    engine: Engine, planned: list[Planned], batch: int, report: RebuildReport, progress: Callable[[int], None] | None
) -> None:
    """Insert records (and their versions) in order, one transaction per batch; skip those already there."""
    done = 0
    for start in range(0, len(planned), batch):
        chunk = planned[start : start + batch]
        with engine.begin() as conn:
            have = _existing(conn, [p.record_id for p in chunk])
            fresh = [p for p in chunk if p.record_id not in have]
            report.resumed_records += len(chunk) - len(fresh)
            if fresh:  # executemany keeps the order: sequence numbers follow the original ingest order
                rows = [p.rows() for p in fresh]
                conn.execute(db.insert(db.records), [record for record, _ in rows])
                conn.execute(db.insert(db.versions), [v for _, versions in rows for v in versions])
                for p in fresh:
                    if p.owed:
                        store_sync.mark(conn, p.record_id)
        done += len(chunk)
        if progress is not None:
            progress(done)


def plan_events(planned: list[Planned], facts: AuditFacts, report: RebuildReport) -> tuple[list[Any], list[Any]]:
    """Hold history rows (audit order, so each record's history keeps its order) and break-glass flags."""
    known = {p.record_id for p in planned}
    events = sorted(
        (ts, rid, action, reason, actor) for rid in known for ts, action, reason, actor in facts.holds.get(rid, [])
    )
    holds = [
        {"record_id": rid, "action": action, "reason": reason, "actor": actor, "at": audit_time(ts)}
        for ts, rid, action, reason, actor in events
    ]
    flags: dict[int, dict[str, Any]] = {}
    for e in facts.flags:
        seq = int(e.get("seq", 0))
        if seq in flags:
            report.notes.append(f"break-glass entry {seq} of a second audit writer not kept (same sequence number)")
            continue
        flags[seq] = {
            "seq": seq,
            "ts": str(e.get("ts", "")),
            "actor": str(e.get("actor") or ""),
            "facility": e.get("facility"),
            "record_id": e.get("record_id"),
            "path": str(e.get("path", "")),
            "justification": str(e.get("justification") or ""),
        }
    report.holds, report.flags = len(holds), len(flags)
    return holds, list(flags.values())


def finish(
    engine: Engine,
    run_id: int,
    dispositions: list[dict[str, Any]],
    holds: list[dict[str, Any]],
    flags: list[dict[str, Any]],
    report: RebuildReport,
) -> None:
    """Disposition requests, holds and break-glass flags, and the run marked finished: one transaction."""
    with engine.begin() as conn:
        for rows, table in ((dispositions, db.dispositions), (holds, db.holds), (flags, db.flags)):
            if rows:
                conn.execute(db.insert(table), rows)
        conn.execute(
            db.update(rebuild_runs)
            .where(rebuild_runs.c.id == run_id)
            .values(finished_at=db.now(), summary=json.dumps(report.summary()))
        )


# --- the whole procedure
def rebuild_catalog(
    settings: ArchiveSettings,
    *,
    into: str | None = None,
    dry_run: bool = False,
    workers: int = 8,
    batch: int = 200,
    progress: Callable[[str, int, int], None] | None = None,
) -> RebuildReport:
    """Rebuild the catalog at `into` (default: the configured database) from the store and the audit trail."""
    if workers < 1 or workers > 64:
        raise UserError(f"--workers {workers}: must be between 1 and 64")
    if batch < 1:
        raise UserError(f"--batch {batch}: must be at least 1")
    if not settings.kek and not settings.keyring_path.exists():
        raise UserError(
            f"keyring {settings.keyring_path} not found: without the key-encryption keys nothing in the store can be "
            "read; restore keyring.json from its offline backup first (runbooks/archive/key-rotation.md)"
        )
    url = into or settings.db_url
    report = RebuildReport(target=safe_url(url), dry_run=dry_run)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    keys = load_keys(settings)
    store = ObjectStore(settings)
    source = f"{settings.s3_endpoint}/{settings.bucket_records}"
    engine = None
    run_id, resumed = 0, False
    try:
        try:  # before touching the target: an unreachable store leaves it as it was
            for bucket, setting in ((store.records, "RECORDS"), (store.audit, "AUDIT")):
                with _mapped(f"bucket {bucket}"):
                    if not store.client.bucket_exists(bucket):
                        raise UserError(f"bucket {bucket} does not exist (check HDC_ARCHIVE_BUCKET_{setting})")
        except StoreUnavailable as exc:
            raise UserError(f"{exc} (check HDC_ARCHIVE_S3_ENDPOINT); nothing was written") from None
        except (StoreRefused, S3Error) as exc:
            raise UserError(f"store refused to list buckets: {exc} (check the S3 credentials)") from None
        if not dry_run:
            engine = open_target(url)
            run_id, resumed = begin_run(engine, source, url, into is not None)
            if resumed:
                report.notes.append("resuming an unfinished rebuild of this store")
        try:
            facts = read_audit(store, audit_text_key(keys.index_key))
            certs, cert_skips = read_certificates(store)
            instance = _instance_id(settings)
            planner = Planner(certs, facts, keys.index_key, instance, report)
            scan = scan_records(
                store,
                keys,
                workers,
                (lambda n: progress("scanned", n, 0)) if progress is not None else None,
                planner.add_active,
            )
        except StoreUnavailable as exc:
            raise UserError(f"{exc} (check HDC_ARCHIVE_S3_ENDPOINT); nothing more was written") from None
        except (StoreRefused, S3Error) as exc:
            raise UserError(f"store refused a read: {exc} (check the credentials and the buckets)") from None
        report.objects, report.audit_entries = scan.objects, facts.entries
        report.skipped = scan.skipped + cert_skips
        report.notes.extend(scan.notes)
        report.errors.extend(facts.problems)
        planned, dispositions = planner.finish()
        holds, flags = plan_events(planned, facts, report)
        if engine is not None:
            total = len(planned)
            write_records(
                engine, planned, batch, report, (lambda n: progress("written", n, total)) if progress else None
            )
            finish(engine, run_id, dispositions, holds, flags, report)
        _audit_self(settings, store, instance, report)
    finally:
        if engine is not None:
            engine.dispose()
    return report


def _audit_self(settings: ArchiveSettings, store: ObjectStore, instance: str, report: RebuildReport) -> None:
    """The rebuild read every record's sealed metadata: it is an operator action, so it is audited."""
    try:
        log = AuditLog(settings, store, f"{instance}-cli")
    except (RuntimeError, OSError) as exc:
        report.errors.append(f"the rebuild could not be written to the audit trail: {exc}")
        return
    try:
        log.append(
            request_id="catalog-rebuild",
            actor=getpass.getuser(),
            roles=["operator"],
            facility=None,
            method="CLI",
            path="hdc archive catalog rebuild" + (" --dry-run" if report.dry_run else ""),
            status=0 if report.ok else 1,
            outcome="allowed",
            record_id=None,
            reason=json.dumps(report.summary()),
            justification=None,
            flagged=False,
            client="",
        )
    finally:
        with contextlib.suppress(StoreUnavailable, StoreRefused):
            log.close()


__all__ = ["RebuildReport", "rebuild_catalog"]
