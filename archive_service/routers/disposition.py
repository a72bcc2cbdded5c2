"""Disposition: due list, request, second-person approval, execution, certificates."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from .. import catalogdb as db
from .. import disposition as disp
from ..auth import Role
from ..deps import ArchiveDep, audit_ctx, require
from ..models import CertificateOut, DispositionIn, DispositionOut, DueOut, DueRecord
from .records import ERRORS

router = APIRouter(prefix="/disposition", tags=["disposition"])


def _out(row: Any) -> DispositionOut:
    return DispositionOut(
        request_id=row.request_id,
        status=row.status,
        record_ids=json.loads(row.record_ids),
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=db.utc(row.requested_at),
        approved_by=row.approved_by,
        approved_at=db.utc(row.approved_at),
        executed_by=row.executed_by,
        executed_at=db.utc(row.executed_at),
        certificate_key=row.certificate_key,
    )


@router.get(
    "/due", response_model=DueOut, responses=ERRORS, summary="Records whose retention has expired (not on hold)"
)
def due(
    archive: ArchiveDep,
    who: Annotated[Any, require(Role.ARCHIVIST, Role.ADMINISTRATOR, Role.AUDITOR)],
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> DueOut:
    with archive.engine.connect() as conn:
        rows = db.due_for_disposition(conn, db.now(), limit)
    return DueOut(
        records=[
            DueRecord(
                record_id=r.record_id,
                record_class=r.record_class,
                subclass=r.subclass,
                facility=r.facility,
                retain_until=db.utc(r.retain_until),
                title=r.title,
            )
            for r in rows
        ]
    )


@router.post(
    "/requests", status_code=201, response_model=DispositionOut, responses=ERRORS, summary="Request destruction"
)
def request_destruction(
    body: DispositionIn, request: Request, archive: ArchiveDep, who: Annotated[Any, require(Role.ARCHIVIST)]
) -> DispositionOut:
    audit_ctx(request).update(record_id=",".join(body.record_ids)[:300], reason=body.reason)
    return _out(disp.request_destruction(archive, body.record_ids, body.reason, who.subject))


@router.get("/requests/{request_id}", response_model=DispositionOut, responses=ERRORS, summary="A disposition request")
def get_request(
    request_id: str, archive: ArchiveDep, who: Annotated[Any, require(Role.ARCHIVIST, Role.ADMINISTRATOR, Role.AUDITOR)]
) -> DispositionOut:
    return _out(disp.get_request(archive, request_id))


@router.post(
    "/requests/{request_id}/approve",
    response_model=DispositionOut,
    responses=ERRORS,
    summary="Approve (a second person)",
)
def approve(
    request_id: str, request: Request, archive: ArchiveDep, who: Annotated[Any, require(Role.ADMINISTRATOR)]
) -> DispositionOut:
    audit_ctx(request)["reason"] = f"approve disposition {request_id}"
    return _out(disp.approve(archive, request_id, who.subject))


@router.post(
    "/requests/{request_id}/execute", response_model=DispositionOut, responses=ERRORS, summary="Destroy and certify"
)
def execute(
    request_id: str,
    request: Request,
    archive: ArchiveDep,
    who: Annotated[Any, require(Role.ARCHIVIST, Role.ADMINISTRATOR)],
) -> DispositionOut:
    audit_ctx(request)["reason"] = f"execute disposition {request_id}"
    return _out(disp.execute(archive, request_id, who.subject))


@router.get(
    "/certificates/{request_id}",
    response_model=CertificateOut,
    responses=ERRORS,
    summary="Destruction certificate (read from the store)",
)
def certificate(
    request_id: str, archive: ArchiveDep, who: Annotated[Any, require(Role.ARCHIVIST, Role.ADMINISTRATOR, Role.AUDITOR)]
) -> CertificateOut:
    key, sha, doc = disp.read_certificate(archive, request_id)
    return CertificateOut(certificate_id=request_id, object_key=key, sha256=sha, document=doc)
