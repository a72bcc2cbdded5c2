"""Catalog rows → response models."""

from __future__ import annotations

import json
from typing import Any

from .. import catalogdb as db
from ..ingest import Stored
from ..models import IngestOut, RecordMetadata, RecordOut, VersionOut
from ..service import Archive


def _utc(value: Any) -> Any:
    return db.utc(value)


def record_out(row: Any, size: int, sha256: str) -> RecordOut:
    return RecordOut(
        record_id=row.record_id,
        record_class=row.record_class,
        subclass=row.subclass,
        facility=row.facility,
        has_patient=row.patient_index is not None,
        document_date=row.document_date,
        title=row.title,
        author=row.author,
        language=row.language,
        tags=json.loads(row.tags),
        content_type=row.content_type,
        current_version=row.current_version,
        size=size,
        sha256=sha256,
        retain_until=_utc(row.retain_until),
        legal_hold=bool(row.legal_hold),
        status=row.status,
        created_at=_utc(row.created_at),
    )


def new_record_out(meta: RecordMetadata, stored: Stored, sha256: str, content_type: str) -> IngestOut:
    """The answer to a new record's ingest, from what the ingest wrote (no read-back).

    Only for version 1: a correction's record keeps its own creation time, hold and retention,
    so corrections read the record back (`current_record`).
    """
    return IngestOut(
        record_id=stored.record_id,
        record_class=meta.record_class,
        subclass=meta.subclass,
        facility=meta.facility,
        has_patient=meta.patient_id is not None,
        document_date=meta.document_date,
        title=meta.title,
        author=meta.author,
        language=meta.language,
        tags=meta.tags,
        content_type=content_type,
        current_version=stored.version,
        size=stored.size,
        sha256=sha256,
        retain_until=stored.retain_until,
        legal_hold=False,
        status="active",
        created_at=stored.created_at,
        version=stored.version,
    )


def current_record(archive: Archive, record_id: str) -> RecordOut:
    """A record and its current version's size and digest, in one query."""
    from sqlalchemy import and_, select

    with archive.engine.connect() as conn:
        row = conn.execute(
            select(db.records, db.versions.c.size, db.versions.c.sha256)
            .join(
                db.versions,
                and_(
                    db.versions.c.record_id == db.records.c.record_id,
                    db.versions.c.version == db.records.c.current_version,
                ),
            )
            .where(db.records.c.record_id == record_id)
        ).one()
    return record_out(row, int(row.size or 0), row.sha256)


def record_with_version(archive: Archive, row: Any) -> RecordOut:
    with archive.engine.connect() as conn:
        v = db.get_version(conn, row.record_id, row.current_version)
    return record_out(row, int(v.size or 0) if v else 0, v.sha256 if v else "")


def version_out(v: Any) -> VersionOut:
    meta = json.loads(v.meta)
    return VersionOut(
        version=v.version,
        size=int(v.size or 0),
        sha256=v.sha256,
        content_type=meta["content_type"],
        title=meta["title"],
        author=meta["author"],
        language=meta["language"],
        tags=meta["tags"],
        document_date=meta["document_date"],
        subclass=meta["subclass"],
        created_at=_utc(v.created_at),
        created_by=v.created_by,
        correction_reason=v.correction_reason,
        retain_until=_utc(v.retain_until),
        state=v.state,
    )
