"""Legal holds: place and release with a reason, by archivists and administrators; S3 legal hold in the store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from .. import catalogdb as db
from ..auth import Role
from ..deps import ArchiveDep, CurrentUser, audit_ctx, audit_private, check_record_access, require
from ..models import HoldEvent, HoldIn, HoldOut
from ..service import Archive
from .records import ERRORS

router = APIRouter(prefix="/records/{record_id}/hold", tags=["holds"])
Holder = Annotated[Any, require(Role.ARCHIVIST, Role.ADMINISTRATOR)]


def _out(archive: Archive, record_id: str) -> HoldOut:
    rec = archive.record(record_id)
    history = [
        HoldEvent(action=h.action, reason=h.reason, actor=h.actor, at=db.utc(h.at))
        for h in archive.hold_history(record_id)
    ]
    return HoldOut(record_id=record_id, legal_hold=bool(rec.legal_hold), history=history)


@router.get("", response_model=HoldOut, responses=ERRORS, summary="Legal hold state and history")
def get_hold(record_id: str, request: Request, archive: ArchiveDep, who: CurrentUser) -> HoldOut:
    check_record_access(request, who, archive.record(record_id), content=False)
    return _out(archive, record_id)


@router.post("", response_model=HoldOut, responses=ERRORS, summary="Place a legal hold")
def place_hold(record_id: str, body: HoldIn, request: Request, archive: ArchiveDep, who: Holder) -> HoldOut:
    audit_ctx(request)["record_id"] = record_id
    audit_private(request, hold_reason=body.reason)  # free text: may name a patient or a case
    archive.set_hold(record_id, True, body.reason, who.subject)
    return _out(archive, record_id)


@router.post("/release", response_model=HoldOut, responses=ERRORS, summary="Release a legal hold")
def release_hold(record_id: str, body: HoldIn, request: Request, archive: ArchiveDep, who: Holder) -> HoldOut:
    audit_ctx(request)["record_id"] = record_id
    audit_private(request, hold_reason=body.reason)
    archive.set_hold(record_id, False, body.reason, who.subject)
    return _out(archive, record_id)
