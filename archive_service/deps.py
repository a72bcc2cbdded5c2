"""FastAPI dependencies: the archive, the caller, and the access rules every router applies.

They are `async def` on purpose: none blocks (a JWT check is ~0.1 ms of CPU), and FastAPI runs
plain `def` dependencies through the thread pool, one hop each, on every request.

Each dependency also fills the request's audit context, so the audit middleware records who did
what to which record — for allowed and denied requests alike.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .auth import AuthError, Principal, Role
from .service import Archive

bearer = HTTPBearer(auto_error=False, description="OIDC access token (JWT)")
JUSTIFICATION_HEADER = "X-Access-Justification"


def header_text(raw: str, name: str) -> str:
    """A header's text as the client meant it. HTTP carries header bytes, which Starlette decodes as
    Latin-1; clients that send non-ASCII text send UTF-8 (`jq -c` without `-a`, browsers), so
    decode it as UTF-8 — storing "prÃ©visionnel" in a locked object would be worse than refusing.
    Bytes that are not UTF-8 are a 422 naming the header."""
    if raw.isascii():
        return raw
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise RequestValidationError(
            [
                {
                    "loc": ("header", name),
                    "msg": "not UTF-8 text (send UTF-8, or escape non-ASCII characters as \\uXXXX in JSON)",
                    "type": "value_error",
                }
            ]
        ) from None


def audit_ctx(request: Request) -> dict[str, Any]:
    ctx: dict[str, Any] = request.scope.setdefault("hdc.audit", {})
    return ctx


def audit_private(request: Request, **fields: str) -> None:
    """Free text for the audit entry that store administrators must not read (a break-glass
    justification, a correction reason): the audit middleware seals it with the keyring, and
    keeps a break-glass justification readable for auditors in the catalog's flags table."""
    audit_ctx(request).setdefault("private", {}).update(fields)


async def get_archive(request: Request) -> Archive:
    archive: Archive = request.app.state.archive
    return archive


async def current_principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    archive: Annotated[Archive, Depends(get_archive)],
) -> Principal:
    ctx = audit_ctx(request)
    if creds is None or creds.scheme.lower() != "bearer":
        ctx["reason"] = "missing bearer token"
        raise HTTPException(
            401, "missing bearer token (Authorization: Bearer …)", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        who = request.app.state.verifier.verify(creds.credentials)
    except AuthError as exc:
        ctx["reason"] = str(exc)
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    ctx.update(actor=who.subject, roles=sorted(who.roles), facility=who.facility)
    if not who.roles:
        ctx["reason"] = "token carries no archive role"
        raise HTTPException(403, "token carries no archive role (archivist, clinician, auditor, administrator)")
    return who


CurrentUser = Annotated[Principal, Depends(current_principal)]
ArchiveDep = Annotated[Archive, Depends(get_archive)]


def require(*roles: Role) -> Any:
    """Dependency: the caller holds one of `roles`, else 403 (audited)."""

    async def check(request: Request, who: CurrentUser) -> Principal:
        if not who.has(*roles):
            audit_ctx(request)["reason"] = f"role {', '.join(sorted(who.roles))} may not do this"
            raise HTTPException(403, f"requires one of the roles: {', '.join(r.value for r in roles)}")
        return who

    return Depends(check)


def check_record_access(request: Request, who: Principal, record: Any, content: bool) -> None:
    """Facility and role rules for reading one record (metadata, or content when `content`).

    Archivists read every record. Auditors and administrators see metadata, never content.
    Clinicians read their own facility; a medical record of another facility needs a recorded
    justification (break-glass), which is allowed and flagged to auditors.
    """
    ctx = audit_ctx(request)
    ctx["record_id"] = record.record_id
    if who.has(Role.ARCHIVIST):
        return
    if who.has(Role.CLINICIAN):
        if who.facility == record.facility:
            return
        justification = header_text(request.headers.get(JUSTIFICATION_HEADER) or "", JUSTIFICATION_HEADER).strip()
        if record.record_class == "medical" and len(justification) >= 10:
            ctx["flagged"] = True
            audit_private(request, justification=justification[:1000])
            return
        if record.record_class == "medical":
            ctx["reason"] = "medical record of another facility without justification"
            raise HTTPException(
                403,
                f"record belongs to facility {record.facility}; access to another facility's medical record "
                f"requires a justification in the {JUSTIFICATION_HEADER} header (at least 10 characters); it is recorded and reviewed",
            )
        ctx["reason"] = "record of another facility"
        raise HTTPException(
            403, f"record belongs to facility {record.facility}; clinicians read their own facility only"
        )
    if who.has(Role.AUDITOR, Role.ADMINISTRATOR) and not content:
        return
    ctx["reason"] = "role may not read record content"
    raise HTTPException(403, "auditors and administrators see record metadata, not content")
