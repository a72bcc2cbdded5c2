"""HTTP API of alerting (alerts, acknowledgements, silences) and the NOC page's state feed."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hdc.errors import UserError
from monitor.alerting.engine import facility_reach
from monitor.alerting.silences import check_silence
from monitor.notify.alertmanager import AmWebhook, idempotency_key, to_payloads
from monitor.rules.loader import runbooks_root
from monitor.state import LinkState

from .access import Access, Role
from .runtime import Alerting

STATIC = Path(__file__).resolve().parent / "static"
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: Name | None = Field(
        None, description="who acknowledges; ignored (the signed-in user) when access control is on"
    )
    comment: Annotated[str, StringConstraints(max_length=500)] = ""


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facility: str | None = None
    region: str | None = None
    rule: str | None = None
    starts_at: float | None = Field(None, description="unix seconds; default now (a later start = maintenance window)")
    ends_at: float | None = Field(None, description="unix seconds; or give duration_s")
    duration_s: Annotated[float, Field(gt=0)] | None = None
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    created_by: Name | None = Field(
        None, description="who silences; ignored (the signed-in user) when access control is on"
    )


def link_state(ls: LinkState | None) -> str:
    """One word per facility for the page: up, down, unreachable, admin-down or unknown."""
    if ls is None:
        return "unknown"
    if not ls.reachable:
        return "unreachable" if ls.consecutive_failures > 0 else "unknown"
    if not ls.admin_up:
        return "admin-down"
    return "up" if ls.link_up else ("down" if ls.oper_status.value != "unknown" else "unknown")


def actor(user: str | None, given: str | None, field: str) -> str:
    """The name recorded for an action: the signed-in user, else (open API) the name the client gave."""
    if user is not None:
        return user
    if not given:
        raise HTTPException(422, f"{field}: required (who is acting) when the API has no operators file")
    return given


def build_router(rt: Alerting, access: Access | None = None) -> APIRouter:
    access = access or Access(None)
    viewer, operator = Depends(access.need(Role.viewer)), Depends(access.need(Role.operator))
    router = APIRouter()

    def user_error(exc: UserError) -> HTTPException:
        return HTTPException(status_code=422, detail=str(exc))

    @router.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/noc")

    @router.get("/noc", response_class=HTMLResponse, include_in_schema=False, dependencies=[viewer])
    async def page() -> Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(html.replace("__REFRESH_MS__", str(int(rt.settings.page_refresh * 1000))))

    @router.get("/noc/static/{name}", include_in_schema=False, dependencies=[viewer])
    async def static(name: str) -> Response:
        path = (STATIC / name).resolve()
        if path.parent != STATIC or not path.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    @router.get("/runbooks/alerts/{page}", include_in_schema=False, dependencies=[viewer])
    async def runbook(page: str) -> Response:
        base = (runbooks_root() / "alerts").resolve()
        path = (base / page).resolve()
        if path.parent != base or path.suffix != ".md" or not path.is_file():
            raise HTTPException(404, f"no runbook page {page}")
        return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8")

    @router.get("/api/noc/state")
    async def state(request: Request, user: str | None = viewer) -> Response:
        """Everything the page shows; answers 304 while nothing changed (the page asks every few seconds)."""
        version = hashlib.sha256(f"{rt.last_cycle}|{rt.store.version()}|{user}".encode()).hexdigest()[:20]
        etag = f'"{version}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return JSONResponse(build_state() | {"user": user}, headers={"ETag": etag, "Cache-Control": "no-cache"})

    def build_state() -> dict[str, Any]:
        now = time.time()
        alerts = rt.store.open_alerts()
        by_fac: dict[str, list[dict[str, Any]]] = {}
        for a in alerts:
            by_fac.setdefault(a.facility, []).append(alert_json(a, rt))
        facilities = []
        for fac in rt.catalog.polled_facilities():
            ls = rt.snapshot.get(fac.id)
            facilities.append(
                {
                    "id": fac.id,
                    "name": fac.name,
                    "name_ar": fac.name_ar,
                    "kind": fac.kind.value,
                    "region": fac.region,
                    "parent": fac.link.parent if fac.link else None,
                    "bandwidth_mbps": fac.link.bandwidth_mbps if fac.link else None,
                    "state": link_state(ls),
                    "utilisation": ls.utilisation if ls else None,
                    "in_bps": ls.in_bps if ls else None,
                    "out_bps": ls.out_bps if ls else None,
                    "last_poll": ls.last_poll if ls else None,
                    "error": ls.error if ls else None,
                    "alerts": by_fac.get(fac.id, []),
                }
            )
        return {
            "generated_at": now,
            "last_cycle": rt.last_cycle,
            "regions": [{"id": r.id, "name": r.name, "name_ar": r.name_ar} for r in rt.catalog.regions],
            "rules": [
                {"id": r.id, "title": r.title.model_dump(), "severity": r.severity.value} for r in rt.rules.rules
            ],
            "facilities": facilities,
            "alerts": [alert_json(a, rt) for a in alerts],
            "silences": [s.as_dict() for s in rt.store.silences(now)],
            "outbox": rt.store.counts(),
        }

    @router.get("/api/alerts", dependencies=[viewer])
    async def list_alerts(include_resolved: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        return [alert_json(a, rt) for a in rt.store.alerts(include_resolved=include_resolved, limit=limit)]

    @router.post("/api/alerts/{alert_id}/ack")
    async def ack(alert_id: int, body: AckRequest, user: str | None = operator) -> dict[str, Any]:
        alert = rt.store.acknowledge(alert_id, actor(user, body.by, "by"), body.comment, time.time())
        if alert is None:
            raise HTTPException(404, f"no open alert {alert_id}")
        return alert_json(alert, rt)

    @router.post("/api/alertmanager/webhook", dependencies=[Depends(access.need(Role.webhook))])
    async def alertmanager_webhook(hook: AmWebhook) -> dict[str, Any]:
        """Receiver for the exported Alertmanager config: render and deliver like our own alerts."""
        route = next((r for r in rt.notify.routes if r.name == hook.receiver), None)
        if route is None:
            raise HTTPException(404, f"receiver '{hook.receiver}' is not a route of the notification routing file")
        now = time.time()
        queued = 0
        for kind, payloads in to_payloads(hook, rt.catalog, rt.rules).items():
            if payloads:
                queued += rt.outbox.enqueue_group(
                    route=route, kind=kind, payloads=payloads, key=idempotency_key(hook, kind), now=now
                )
        rt.worker.start()
        rt.worker.wake()
        return {"queued": queued}

    @router.get("/api/silences", dependencies=[viewer])
    async def list_silences(include_expired: bool = False) -> list[dict[str, Any]]:
        return [s.as_dict() for s in rt.store.silences(time.time(), include_expired=include_expired)]

    @router.post("/api/silences", status_code=201)
    async def add_silence(body: SilenceRequest, user: str | None = operator) -> dict[str, Any]:
        now = time.time()
        created_by = actor(user, body.created_by, "created_by")
        starts = body.starts_at if body.starts_at is not None else now
        if body.ends_at is None and body.duration_s is None:
            raise HTTPException(422, "give ends_at or duration_s")
        ends = body.ends_at if body.ends_at is not None else starts + (body.duration_s or 0)
        fields = {"facility": body.facility or None, "region": body.region or None, "rule": body.rule or None}
        try:
            check_silence(
                rt.catalog, rt.rules, **fields, starts_at=starts, ends_at=ends, reason=body.reason,
                created_by=created_by, now=now,
            )  # fmt: skip
        except UserError as exc:
            raise user_error(exc) from None
        silence = rt.store.add_silence(
            **fields, starts_at=starts, ends_at=ends, reason=body.reason, created_by=created_by, now=now
        )
        return silence.as_dict()

    @router.delete("/api/silences/{silence_id}", dependencies=[operator])
    async def expire(silence_id: int) -> dict[str, Any]:
        silence = rt.store.expire_silence(silence_id, time.time())
        if silence is None:
            raise HTTPException(404, f"no active silence {silence_id}")
        return silence.as_dict()

    return router


def alert_json(a: Any, rt: Alerting) -> dict[str, Any]:
    data: dict[str, Any] = a.as_dict()
    rule = rt.rules.get(a.rule)
    fac = rt.catalog.facility(a.facility)
    data["title"] = rule.title.model_dump() if rule else {"fr": a.rule, "ar": a.rule, "en": a.rule}
    data["runbook"] = rule.runbook if rule and rule.runbook.startswith("http") else f"/{rule.runbook}" if rule else None
    data["facility_name"] = fac.name if fac else a.facility
    data["facility_name_ar"] = fac.name_ar if fac else a.facility
    data.update(facility_reach(fac))
    return data
