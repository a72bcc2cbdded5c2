"""Records: ingest (streamed), metadata, content with HTTP Range, retention, deletion attempts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from .. import catalogdb as db
from ..auth import Role
from ..deps import ArchiveDep, CurrentUser, audit_ctx, check_record_access, header_text, require
from ..ingest import ingest, open_content, parse_range
from ..models import ErrorOut, IngestOut, RecordMetadata, RecordOut, RetentionIn, RetentionOut
from ..service import Archive, Conflict
from .convert import new_record_out, record_with_version

router = APIRouter(prefix="/records", tags=["records"])
METADATA_HEADER = "X-Archive-Metadata"
SHA_HEADER = "X-Content-SHA256"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

BINARY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the record's bytes, streamed (any size up to the configured limit)",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "SHA-256 mismatch: nothing stored"},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    413: {"model": ErrorOut},
    500: {"model": ErrorOut, "description": "the store has no object for a version the catalog lists (incident)"},
    503: {"model": ErrorOut, "description": "store unreachable"},
}


def parse_metadata(raw: str, archive: Archive) -> RecordMetadata:
    """The metadata header → RecordMetadata; errors become 422 naming the field."""
    loc = ("header", METADATA_HEADER)
    raw = header_text(raw, METADATA_HEADER)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise RequestValidationError([{"loc": loc, "msg": f"not valid JSON: {exc}", "type": "json_invalid"}]) from None
    except RecursionError:
        raise RequestValidationError([{"loc": loc, "msg": "JSON nested too deeply", "type": "json_invalid"}]) from None
    try:
        meta = RecordMetadata.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": (*loc, *err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None
    if meta.facility not in archive.facilities:
        raise RequestValidationError(
            [
                {
                    "loc": (*loc, "facility"),
                    "msg": f"unknown facility '{meta.facility}' (not in the catalog)",
                    "type": "value_error",
                }
            ]
        )
    return meta


def check_sha(value: str) -> str:
    value = value.strip().lower()
    if not _HEX64.match(value):
        raise RequestValidationError(
            [
                {
                    "loc": ("header", SHA_HEADER),
                    "msg": "must be the 64 hex digits of the content's SHA-256",
                    "type": "value_error",
                }
            ]
        )
    return value


async def stream_in(request: Request, archive: Archive, content_length: int | None) -> Any:
    if content_length is not None and content_length > archive.settings.max_record_bytes:
        raise HTTPException(
            413, f"record of {content_length} bytes exceeds the {archive.settings.max_record_bytes}-byte limit"
        )
    return request.stream()


@router.post(
    "",
    status_code=201,
    response_model=IngestOut,
    responses=ERRORS,
    openapi_extra=BINARY_BODY,
    summary="Ingest a new record",
    description=(
        "Send the bytes as the request body, the metadata as JSON (UTF-8, or ASCII-escaped with `jq -c -a`) in "
        f"`{METADATA_HEADER}`, and the SHA-256 of the bytes in `{SHA_HEADER}`. Streamed end to end."
    ),
)
async def ingest_record(
    request: Request,
    archive: ArchiveDep,
    who: Annotated[Any, require(Role.ARCHIVIST)],
    x_archive_metadata: Annotated[str, Header(description="record metadata, JSON")],
    x_content_sha256: Annotated[str, Header(description="SHA-256 of the content, hex")],
    content_type: Annotated[str, Header()] = "application/octet-stream",
    content_length: Annotated[int | None, Header()] = None,
) -> IngestOut:
    meta = parse_metadata(x_archive_metadata, archive)
    sha = check_sha(x_content_sha256)
    body = await stream_in(request, archive, content_length)
    stored = await ingest(archive, meta, who.subject, sha, content_type[:200], body)
    audit_ctx(request)["record_id"] = stored.record_id
    request.app.state.metrics.ingest_bytes.inc(stored.size)
    return new_record_out(meta, stored, sha, content_type[:200])


@router.get(
    "/{record_id}", response_model=RecordOut, responses=ERRORS, summary="Metadata of a record (current version)"
)
def get_record(record_id: str, request: Request, archive: ArchiveDep, who: CurrentUser) -> RecordOut:
    rec = archive.record(record_id)
    check_record_access(request, who, rec, content=False)
    return record_with_version(archive, rec)


@router.get(
    "/{record_id}/content",
    response_class=StreamingResponse,
    responses={**ERRORS, 206: {"description": "partial content"}, 416: {"model": ErrorOut}},
    summary="Content of a record (streamed, HTTP Range supported)",
)
def get_content(
    record_id: str,
    request: Request,
    archive: ArchiveDep,
    who: CurrentUser,
    version: Annotated[int | None, Query(ge=1, le=db.MAX_INT)] = None,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    rec = archive.record(record_id)
    check_record_access(request, who, rec, content=True)
    if rec.status != "active":
        raise HTTPException(410, f"record {record_id} was destroyed on {rec.destroyed_at}")
    row = archive.version(record_id, version)
    if row.state == "destroyed":  # a disposition the store interrupted midway: its objects are gone
        raise HTTPException(410, f"version {row.version} of record {record_id} was destroyed")
    size = int(row.size)
    try:
        span = parse_range(range_, size)
    except ValueError as exc:
        raise HTTPException(416, f"Range: {exc}", headers={"Content-Range": f"bytes */{size}"}) from None
    start, end = span if span else (0, size - 1)
    meta = json.loads(row.meta)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{row.sha256}"',
        "X-Content-SHA256": row.sha256,
        "X-Record-Version": str(row.version),
    }
    if size == 0:
        return StreamingResponse(iter(()), media_type=meta["content_type"], headers={**headers, "Content-Length": "0"})
    pieces = open_content(archive, row, start, end)
    first = next(pieces, b"")  # reach the store now, so an outage is a 503, not a broken stream

    def body() -> Iterator[bytes]:
        yield first
        yield from pieces

    headers["Content-Length"] = str(end - start + 1)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(body(), status_code=status, media_type=meta["content_type"], headers=headers)


@router.delete(
    "/{record_id}",
    status_code=204,
    responses={**ERRORS, 409: {"model": ErrorOut}},
    summary="Delete (always refused: see disposition)",
)
def delete_record(
    record_id: str,
    request: Request,
    archive: ArchiveDep,
    who: Annotated[Any, require(Role.ARCHIVIST, Role.ADMINISTRATOR)],
) -> None:
    rec = archive.record(record_id)
    audit_ctx(request)["record_id"] = record_id
    until = db.utc(rec.retain_until)
    if rec.legal_hold:
        raise Conflict(f"record {record_id} is under legal hold ({rec.hold_reason}) and retained until {until}", until)
    if until is not None and until > db.now():
        raise Conflict(f"record {record_id} is retained until {until.isoformat()}", until)
    raise Conflict(
        f"record {record_id}: retention ended {until}; destruction goes through disposition "
        "(request, second-person approval, certificate): POST /disposition/requests",
        until,
    )


@router.put(
    "/{record_id}/retention",
    response_model=RetentionOut,
    responses={**ERRORS, 202: {"model": RetentionOut, "description": "recorded; the store takes the rest shortly"}},
    summary="Extend a record's retention",
)
def extend_retention(
    record_id: str,
    body: RetentionIn,
    request: Request,
    response: Response,
    archive: ArchiveDep,
    who: Annotated[Any, require(Role.ARCHIVIST, Role.ADMINISTRATOR)],
) -> RetentionOut:
    audit_ctx(request).update(record_id=record_id, reason=body.reason)
    until, n, synced = archive.extend_retention(record_id, body.retain_until, who.subject)
    if not synced:
        response.status_code = 202  # the catalog has it; the store sync applies the rest
    return RetentionOut(record_id=record_id, retain_until=until, versions=n, store_synced=synced)
