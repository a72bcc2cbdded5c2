"""Legal holds: place and release with a reason, by archivists and administrators; S3 legal hold in the store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from .. import catalogdb as db
from .. import store_sync
from ..auth import Role
from ..deps import ArchiveDep, CurrentUser, audit_ctx, audit_private, check_record_access, require
from ..models import HoldEvent, HoldIn, HoldOut
from ..service import Archive
from .records import ERRORS

router = APIRouter(prefix="/records/{record_id}/hold", tags=["holds"])
Holder = Annotated[Any, require(Role.ARCHIVIST, Role.ADMINISTRATOR)]


def _out(archive: Archive, record_id: str, synced: bool = True) -> HoldOut:
    rec = archive.record(record_id)
    history = [
        HoldEvent(action=h.action, reason=h.reason, actor=h.actor, at=db.utc(h.at))
        for h in archive.hold_history(record_id)
    ]
    return HoldOut(record_id=record_id, legal_hold=bool(rec.legal_hold), history=history, store_synced=synced)


#: 202: the catalog has the change, the store stopped midway and the service finishes it (store_sync).
CHANGED = {**ERRORS, 202: {"model": HoldOut, "description": "recorded; the store takes the rest shortly"}}


@router.get("", response_model=HoldOut, responses=ERRORS, summary="Legal hold state and history")
def get_hold(record_id: str, request: Request, archive: ArchiveDep, who: CurrentUser) -> HoldOut:
    check_record_access(request, who, archive.record(record_id), content=False)
    with archive.engine.connect() as conn:
        synced = not store_sync.owed(conn, record_id)
    return _out(archive, record_id, synced)


def _change(
    record_id: str, on: bool, body: HoldIn, request: Request, response: Response, archive: Archive, who: Any
) -> HoldOut:
    audit_ctx(request)["record_id"] = record_id
    audit_private(request, hold_reason=body.reason)  # free text: may name a patient or a case
    synced = archive.set_hold(record_id, on, body.reason, who.subject)
    if not synced:
        response.status_code = 202
    return _out(archive, record_id, synced)


@router.post("", response_model=HoldOut, responses=CHANGED, summary="Place a legal hold")
def place_hold(
    record_id: str, body: HoldIn, request: Request, response: Response, archive: ArchiveDep, who: Holder
) -> HoldOut:
    return _change(record_id, True, body, request, response, archive, who)


@router.post("/release", response_model=HoldOut, responses=CHANGED, summary="Release a legal hold")
def release_hold(
    record_id: str, body: HoldIn, request: Request, response: Response, archive: ArchiveDep, who: Holder
) -> HoldOut:
    return _change(record_id, False, body, request, response, archive, who)
