"""Administration: fixity, key re-wrap after rotation, crash reconciliation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from ..auth import Role
from ..deps import ArchiveDep, require
from ..fixity import run_fixity
from ..models import FixityItem, FixityOut, RewrapOut
from ..rotation import rewrap_all
from .records import ERRORS

router = APIRouter(prefix="/admin", tags=["admin"])
Admin = Annotated[Any, require(Role.ADMINISTRATOR)]


@router.post("/fixity", response_model=FixityOut, responses=ERRORS, summary="Re-read records and check their SHA-256")
async def fixity(archive: ArchiveDep, who: Admin, limit: Annotated[int | None, Query(ge=1)] = None) -> FixityOut:
    results = await run_in_threadpool(lambda: list(run_fixity(archive, limit)))
    failures = [
        FixityItem(record_id=r.record_id, version=r.version, ok=r.ok, detail=r.detail) for r in results if not r.ok
    ]
    return FixityOut(checked=len(results), failures=failures)


@router.post(
    "/keys/rewrap", response_model=RewrapOut, responses=ERRORS, summary="Re-wrap data keys under the current KEK"
)
async def rewrap(archive: ArchiveDep, who: Admin) -> RewrapOut:
    n = await run_in_threadpool(rewrap_all, archive)
    return RewrapOut(current_key=archive.keys.current_key_id(), rewrapped=n)


@router.post("/reconcile", response_model=dict[str, int], responses=ERRORS, summary="Settle interrupted ingests")
async def reconcile(archive: ArchiveDep, who: Admin) -> dict[str, int]:
    return await run_in_threadpool(archive.reconcile, None)
