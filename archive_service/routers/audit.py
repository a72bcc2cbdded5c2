"""Audit: flagged (break-glass) accesses for auditors, and chain verification."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from .. import catalogdb as db
from ..audit import verify_chain
from ..auth import Role
from ..deps import ArchiveDep, require
from ..models import AuditEntryOut, AuditVerifyOut, FlaggedOut
from .records import ERRORS

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get(
    "/flagged", response_model=FlaggedOut, responses=ERRORS, summary="Accesses to other facilities' medical records"
)
def flagged(
    archive: ArchiveDep,
    who: Annotated[Any, require(Role.AUDITOR)],
    since_seq: Annotated[int, Query(ge=0, le=db.MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> FlaggedOut:
    with archive.engine.connect() as conn:
        rows = conn.execute(select(db.flags).where(db.flags.c.seq > since_seq).order_by(db.flags.c.seq).limit(limit))
        return FlaggedOut(
            entries=[
                AuditEntryOut(
                    seq=r.seq,
                    ts=r.ts,
                    actor=r.actor,
                    facility=r.facility,
                    method="GET",
                    path=r.path,
                    status=200,
                    outcome="allowed",
                    record_id=r.record_id,
                    justification=r.justification,
                    flagged=True,
                )
                for r in rows
            ]
        )


@router.post(
    "/verify", response_model=AuditVerifyOut, responses=ERRORS, summary="Flush and verify the hash chain in the store"
)
async def verify(archive: ArchiveDep, who: Annotated[Any, require(Role.AUDITOR, Role.ADMINISTRATOR)]) -> AuditVerifyOut:
    await run_in_threadpool(archive.audit.flush)
    heads = {archive.audit.writer: (archive.audit.flushed_seq, archive.audit.flushed_hash)}
    report = await run_in_threadpool(verify_chain, archive.store, None, heads)
    return AuditVerifyOut(ok=report.ok, entries=report.entries, objects=report.objects, problems=report.problems)
