"""Disposition: expired records are listed, destruction is requested by one person, approved by a
second, executed (every object version deleted — the store refuses while locked), and a destruction
certificate is stored as a locked object in the archive."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select, update

from . import catalogdb as db
from . import store_sync
from .service import Archive, Conflict, NotFound, rewrap_key
from .settings import parse_duration
from .store import StoreRefused


def certificate_key(request_id: str, at: datetime) -> str:
    """One certificate per execution run (a run interrupted by an outage certifies what it destroyed)."""
    return f"certificates/{request_id}/{at.strftime('%Y%m%dT%H%M%SZ')}.json"


def get_request(archive: Archive, request_id: str) -> Any:
    with archive.engine.connect() as conn:
        row = conn.execute(select(db.dispositions).where(db.dispositions.c.request_id == request_id)).first()
    if row is None:
        raise NotFound(f"disposition request {request_id} not found")
    return row


def _check_destroyable(archive: Archive, record_ids: list[str], at: datetime) -> list[Any]:
    recs = []
    for rid in record_ids:
        rec = archive.record(rid)
        until = db.utc(rec.retain_until)
        if rec.status != "active":
            raise Conflict(f"record {rid} is {rec.status}")
        if rec.legal_hold:
            raise Conflict(f"record {rid} is under legal hold: {rec.hold_reason}", until)
        if until is not None and until > at:
            raise Conflict(f"record {rid} is retained until {until.isoformat()}", until)
        recs.append(rec)
    return recs


def request_destruction(archive: Archive, record_ids: list[str], reason: str, actor: str) -> Any:
    ids = sorted(set(record_ids))
    _check_destroyable(archive, ids, db.now())
    request_id = str(uuid.uuid4())
    with archive.engine.begin() as conn:
        conn.execute(
            db.insert(db.dispositions).values(
                request_id=request_id,
                status="requested",
                record_ids=json.dumps(ids),
                reason=reason,
                requested_by=actor,
                requested_at=db.now(),
            )
        )
    return get_request(archive, request_id)


def approve(archive: Archive, request_id: str, actor: str) -> Any:
    req = get_request(archive, request_id)
    if req.status != "requested":
        raise Conflict(f"disposition request {request_id} is {req.status}, not requested")
    if req.requested_by == actor:
        raise Conflict("destruction must be approved by a second person: the requester cannot approve")
    with archive.engine.begin() as conn:
        conn.execute(
            update(db.dispositions)
            .where(db.dispositions.c.request_id == request_id)
            .values(status="approved", approved_by=actor, approved_at=db.now())
        )
    return get_request(archive, request_id)


def execute(archive: Archive, request_id: str, actor: str) -> Any:
    """Delete every version of every record, then store the certificate (locked) and mark the request.

    If the run stops (store outage, a lock the catalog did not know), the records destroyed so far
    are still certified and the request is left `partial`; running it again finishes the rest.
    """
    req = get_request(archive, request_id)
    if req.status not in ("approved", "partial"):
        raise Conflict(
            f"disposition request {request_id} is {req.status}; it must be approved by a second person first"
        )
    ids = json.loads(req.record_ids)
    at = db.now()
    remaining = [rid for rid in ids if archive.record(rid).status != "destroyed"]
    recs = _check_destroyable(archive, remaining, at)
    failure: Exception | None = None
    try:
        for rec in recs:
            _destroy(archive, request_id, rec, at)
    except Exception as exc:
        failure = exc
    # What this run destroyed, and what an earlier run destroyed but could not certify.
    with archive.engine.connect() as conn:
        owed = list(conn.execute(select(db.uncertified).where(db.uncertified.c.request_id == request_id)))
    if owed or failure is None:
        status = "partial" if failure else "executed"
        try:
            key = _certify(archive, req, actor, at, [json.loads(r.entry) for r in owed], failure)
        except Exception:
            _mark(archive, request_id, "partial", actor, at, req.certificate_key)  # entries kept for the next run
            raise
        with archive.engine.begin() as conn:
            conn.execute(
                db.uncertified.delete().where(
                    and_(
                        db.uncertified.c.request_id == request_id,
                        db.uncertified.c.record_id.in_([r.record_id for r in owed]),
                    )
                )
            )
            _mark_in(conn, request_id, status, actor, at, key)
    elif failure is not None:
        _mark(archive, request_id, "partial", actor, at, req.certificate_key)
    if failure is not None:
        raise failure
    return get_request(archive, request_id)


def _mark(archive: Archive, request_id: str, status: str, actor: str, at: datetime, key: str | None) -> None:
    with archive.engine.begin() as conn:
        _mark_in(conn, request_id, status, actor, at, key)


def _mark_in(conn: Any, request_id: str, status: str, actor: str, at: datetime, key: str | None) -> None:
    conn.execute(
        update(db.dispositions)
        .where(db.dispositions.c.request_id == request_id)
        .values(status=status, executed_by=actor, executed_at=at, certificate_key=key)
    )


def _destroy(archive: Archive, request_id: str, rec: Any, at: datetime) -> None:
    """Delete every version of one record, each marked destroyed in the catalog as soon as its
    objects are gone (a run stopped midway leaves no catalog entry without its object); then the
    record is marked destroyed and its certificate entry kept until a certificate holds it."""
    # A hold release the store has not taken yet (an outage, store_sync.py) must reach it first.
    if not store_sync.settle(archive, rec.record_id):
        raise Conflict(f"record {rec.record_id}: its legal hold or retention is being changed; run this again")
    with archive.engine.connect() as conn:
        vers = db.list_versions(conn, rec.record_id, ("committed", "destroyed"))
    for v in vers:  # the store checks the lock itself
        try:
            if v.state == "committed":
                for key, vid, _latest, _marker in archive.store.list_versions(
                    archive.store.records, rewrap_key(rec.record_id, v.version)
                ):
                    archive.store.delete_version(archive.store.records, key, vid)
                archive.store.delete_version(archive.store.records, v.object_key, v.s3_version_id)
                with archive.engine.begin() as conn:
                    conn.execute(
                        update(db.versions)
                        .where(and_(db.versions.c.record_id == rec.record_id, db.versions.c.version == v.version))
                        .values(state="destroyed", wrapped_dek=b"", prefix=b"")
                    )
            # A PUT repeated after its answer was lost (a dropped connection, a client retry)
            # leaves a second copy under the same key that the catalog never saw: destroy it too
            # (again on a rerun: the run that deleted the catalog's copy may have stopped here).
            for key, vid, _latest, _marker in archive.store.list_versions(archive.store.records, v.object_key):
                if key == v.object_key:
                    archive.store.delete_version(archive.store.records, key, vid)
        except StoreRefused as exc:
            until = archive.store.retention(archive.store.records, v.object_key, v.s3_version_id)
            raise Conflict(f"store refused to destroy {v.object_key}: {exc}", until) from None
    entry = _entry(rec, vers)
    with archive.engine.begin() as conn:
        conn.execute(
            update(db.records)
            .where(db.records.c.record_id == rec.record_id)
            .values(status="destroyed", destroyed_at=at, patient_index=None)
        )
        conn.execute(
            db.uncertified.insert().values(request_id=request_id, record_id=rec.record_id, entry=json.dumps(entry))
        )


def _entry(rec: Any, vers: list[Any]) -> dict[str, Any]:
    """The record as its destruction certificate describes it."""
    until = db.utc(rec.retain_until)
    entry: dict[str, Any] = {
        "record_id": rec.record_id,
        "record_class": rec.record_class,
        "subclass": rec.subclass,
        "facility": rec.facility,
        "document_date": str(rec.document_date),
        "retain_until": until.isoformat() if until else None,
        # The rest lets `hdc archive catalog rebuild` restore the destroyed record's catalog entry.
        "language": rec.language,
        "content_type": rec.content_type,
        "created_at": _iso(rec.created_at),
        "created_by": rec.created_by,
        "versions": [
            {
                "version": v.version,
                "sha256": v.sha256,
                "size": v.size,
                "created_at": _iso(v.created_at),
                "created_by": v.created_by,
                "retain_until": _iso(v.retain_until),
            }
            for v in vers
        ],
    }
    if rec.record_class == "medical":
        # Certificates are plain JSON that store administrators can read, and a medical record's
        # title, author, tags and correction reasons are medical data: they go with the record.
        entry["descriptive"] = "withheld: medical record"
        return entry
    entry |= {"title": rec.title, "author": rec.author, "tags": json.loads(rec.tags)}
    for out, v in zip(entry["versions"], vers, strict=True):
        out |= {"meta": json.loads(v.meta), "correction_reason": v.correction_reason}
    return entry


def _iso(value: datetime | None) -> str | None:
    out = db.utc(value)
    return out.isoformat() if out else None


def _certify(
    archive: Archive, req: Any, actor: str, at: datetime, destroyed: list[dict[str, Any]], failure: Exception | None
) -> str:
    cert = {
        "certificate": "destruction",
        "request_id": req.request_id,
        "reason": req.reason,
        "requested_by": req.requested_by,
        "requested_at": _iso(req.requested_at),
        "approved_by": req.approved_by,
        "approved_at": _iso(req.approved_at),
        "executed_by": actor,
        "executed_at": at.isoformat(),
        "complete": failure is None,
        "interrupted_by": str(failure) if failure else None,
        "records": destroyed,
    }
    body = json.dumps(cert, indent=1, ensure_ascii=False).encode()
    until = datetime.now(UTC) + parse_duration(archive.settings.certificate_retention)
    key = certificate_key(req.request_id, at)
    archive.store.put(archive.store.records, key, body, until, "application/json")
    return key


def read_certificate(archive: Archive, request_id: str) -> tuple[str, str, dict[str, Any]]:
    req = get_request(archive, request_id)
    if not req.certificate_key:
        raise NotFound(f"disposition request {request_id} has no certificate (status {req.status})")
    body = archive.store.read_all(archive.store.records, req.certificate_key)
    return req.certificate_key, hashlib.sha256(body).hexdigest(), dict(json.loads(body))
