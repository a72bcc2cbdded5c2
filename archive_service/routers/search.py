"""Search by patient, facility, class, date range and title words; keyset-paginated."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from .. import catalogdb as db
from ..auth import Role
from ..crypto import patient_index
from ..deps import JUSTIFICATION_HEADER, ArchiveDep, CurrentUser, audit_ctx, audit_private, header_text
from ..models import SearchOut, SearchQuery
from .convert import record_out
from .records import ERRORS

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchOut, responses=ERRORS, summary="Search records")
def search(query: SearchQuery, request: Request, archive: ArchiveDep, who: CurrentUser) -> SearchOut:
    """Clinicians search their own facility; a patient search across facilities needs a justification."""
    facilities: list[str] | None = [query.facility] if query.facility else None
    ctx = audit_ctx(request)
    if who.has(Role.CLINICIAN) and not who.has(Role.ARCHIVIST, Role.AUDITOR, Role.ADMINISTRATOR):
        justification = header_text(request.headers.get(JUSTIFICATION_HEADER) or "", JUSTIFICATION_HEADER).strip()
        own = who.facility or ""
        if query.patient_id and len(justification) >= 10:
            ctx["flagged"] = True  # break-glass patient search
            audit_private(request, justification=justification[:1000])
        elif query.facility and query.facility != own:
            ctx["reason"] = "search outside own facility without justification"
            raise HTTPException(
                403,
                f"clinicians search their own facility ({own}); other facilities need a patient_id "
                f"and a justification in {JUSTIFICATION_HEADER}",
            )
        else:
            facilities = [own]
    if query.facility and query.facility not in archive.facilities:
        raise HTTPException(422, f"facility: unknown facility '{query.facility}' (not in the catalog)")
    pidx = patient_index(archive.keys.index_key, query.patient_id) if query.patient_id else None
    try:
        with archive.engine.connect() as conn:
            rows, nxt = db.search(
                conn,
                patient_index=pidx,
                facilities=facilities,
                record_class=query.record_class.value if query.record_class else None,
                subclass=query.subclass,
                date_from=query.date_from,
                date_to=query.date_to,
                q=query.q,
                limit=query.limit,
                cursor=query.cursor,
            )
    except ValueError:
        raise HTTPException(422, "cursor: not a cursor issued by this service") from None
    # A break-glass search that only found the clinician's own facility is not an exception.
    if ctx.get("flagged") and rows and all(r.facility == who.facility for r in rows):
        ctx["flagged"] = False
    if ctx.get("flagged") and rows:
        ctx["record_id"] = ",".join(sorted({r.record_id for r in rows if r.facility != who.facility}))[:300]
    return SearchOut(results=[record_out(r, int(r.size or 0), r.sha256) for r in rows], next_cursor=nxt)
