"""Disposition: expired records are listed, destruction is requested by one person, approved by a
second, executed (every object version deleted — the store refuses while locked), and a destruction
certificate is stored as a locked object in the archive."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from . import catalogdb as db
from .service import Archive, Conflict, NotFound, rewrap_key
from .settings import parse_duration
from .store import StoreRefused


def certificate_key(request_id: str) -> str:
    return f"certificates/{request_id}.json"


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
    """Delete every version of every record, then store the certificate (locked) and mark them destroyed."""
    req = get_request(archive, request_id)
    if req.status != "approved":
        raise Conflict(
            f"disposition request {request_id} is {req.status}; it must be approved by a second person first"
        )
    ids = json.loads(req.record_ids)
    at = db.now()
    recs = _check_destroyable(archive, ids, at)
    destroyed: list[dict[str, Any]] = []
    for rec in recs:
        with archive.engine.connect() as conn:
            vers = db.list_versions(conn, rec.record_id, ("committed",))
        for v in vers:  # the store checks the lock itself: refusal aborts before the catalog changes
            try:
                for key, vid, _latest, _marker in archive.store.list_versions(
                    archive.store.records, rewrap_key(rec.record_id, v.version)
                ):
                    archive.store.delete_version(archive.store.records, key, vid)
                archive.store.delete_version(archive.store.records, v.object_key, v.s3_version_id)
            except StoreRefused as exc:
                until = archive.store.retention(archive.store.records, v.object_key, v.s3_version_id)
                raise Conflict(f"store refused to destroy {v.object_key}: {exc}", until) from None
        destroyed.append(
            {
                "record_id": rec.record_id,
                "record_class": rec.record_class,
                "subclass": rec.subclass,
                "facility": rec.facility,
                "title": rec.title,
                "document_date": str(rec.document_date),
                "retain_until": db.utc(rec.retain_until).isoformat(),  # type: ignore[union-attr]
                "versions": [{"version": v.version, "sha256": v.sha256, "size": v.size} for v in vers],
            }
        )
        with archive.engine.begin() as conn:
            conn.execute(
                update(db.versions)
                .where(db.versions.c.record_id == rec.record_id)
                .values(state="destroyed", wrapped_dek=b"", prefix=b"")
            )
            conn.execute(
                update(db.records)
                .where(db.records.c.record_id == rec.record_id)
                .values(status="destroyed", destroyed_at=at, patient_index=None)
            )
    cert = {
        "certificate": "destruction",
        "request_id": request_id,
        "reason": req.reason,
        "requested_by": req.requested_by,
        "requested_at": db.utc(req.requested_at).isoformat(),  # type: ignore[union-attr]
        "approved_by": req.approved_by,
        "approved_at": db.utc(req.approved_at).isoformat(),  # type: ignore[union-attr]
        "executed_by": actor,
        "executed_at": at.isoformat(),
        "records": destroyed,
    }
    body = json.dumps(cert, indent=1, ensure_ascii=False).encode()
    until = datetime.now(UTC) + parse_duration(archive.settings.certificate_retention)
    archive.store.put(archive.store.records, certificate_key(request_id), body, until, "application/json")
    with archive.engine.begin() as conn:
        conn.execute(
            update(db.dispositions)
            .where(db.dispositions.c.request_id == request_id)
            .values(status="executed", executed_by=actor, executed_at=at, certificate_key=certificate_key(request_id))
        )
    return get_request(archive, request_id)


def read_certificate(archive: Archive, request_id: str) -> tuple[str, str, dict[str, Any]]:
    req = get_request(archive, request_id)
    if not req.certificate_key:
        raise NotFound(f"disposition request {request_id} has no certificate (status {req.status})")
    body = archive.store.read_all(archive.store.records, req.certificate_key)
    return req.certificate_key, hashlib.sha256(body).hexdigest(), dict(json.loads(body))
