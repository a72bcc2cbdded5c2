"""Versions: history of a record, and corrections (a new version; nothing is overwritten)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from starlette.concurrency import run_in_threadpool

from .. import catalogdb as db
from ..auth import Role
from ..deps import ArchiveDep, CurrentUser, audit_ctx, audit_private, check_record_access, header_text, require
from ..ingest import ingest
from ..models import IngestOut, VersionOut
from .convert import current_record, version_out
from .records import BINARY_BODY, ERRORS, check_sha, parse_metadata, stream_in

router = APIRouter(prefix="/records/{record_id}/versions", tags=["versions"])


@router.get("", response_model=list[VersionOut], responses=ERRORS, summary="Version history of a record")
def list_versions(record_id: str, request: Request, archive: ArchiveDep, who: CurrentUser) -> list[VersionOut]:
    rec = archive.record(record_id)
    check_record_access(request, who, rec, content=False)
    with archive.engine.connect() as conn:
        return [version_out(v) for v in db.list_versions(conn, record_id)]


@router.get("/{version}", response_model=VersionOut, responses=ERRORS, summary="Metadata of one version")
def get_version(
    record_id: str,
    version: Annotated[int, Path(ge=1, le=db.MAX_INT, description="version number, from 1")],
    request: Request,
    archive: ArchiveDep,
    who: CurrentUser,
) -> VersionOut:
    rec = archive.record(record_id)
    check_record_access(request, who, rec, content=False)
    return version_out(archive.version(record_id, version))


@router.post(
    "",
    status_code=201,
    response_model=IngestOut,
    responses=ERRORS,
    openapi_extra=BINARY_BODY,
    summary="Correct a record: store a new version",
    description="Same headers as ingest, plus `X-Correction-Reason`. Class, facility and patient must not change.",
)
async def correct_record(
    record_id: str,
    request: Request,
    archive: ArchiveDep,
    who: Annotated[Any, require(Role.ARCHIVIST)],
    x_archive_metadata: Annotated[str, Header()],
    x_content_sha256: Annotated[str, Header()],
    x_correction_reason: Annotated[str, Header(min_length=3, max_length=1000)],
    content_type: Annotated[str, Header()] = "application/octet-stream",
    content_length: Annotated[int | None, Header()] = None,
) -> IngestOut:
    audit_ctx(request)["record_id"] = record_id
    x_correction_reason = header_text(x_correction_reason, "X-Correction-Reason")
    audit_private(request, correction_reason=x_correction_reason)
    meta = parse_metadata(x_archive_metadata, archive)
    sha = check_sha(x_content_sha256)
    body = await stream_in(request, archive, content_length)
    stored = await ingest(archive, meta, who.subject, sha, content_type[:200], body, record_id, x_correction_reason)
    out = await run_in_threadpool(current_record, archive, record_id)
    request.app.state.metrics.ingest_bytes.inc(stored.size)
    return IngestOut(**out.model_dump(), version=stored.version)
