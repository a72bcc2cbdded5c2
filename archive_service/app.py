"""The FastAPI application: lifespan (open, reconcile, audit flusher, store sync), audit/metrics middleware,
error mapping, health and metrics endpoints."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import catalogdb as db
from .auth import TokenVerifier
from .crypto import KeyError_, seal_text
from .memory import tune_allocator
from .models import Health
from .periodic import Periodic
from .routers import admin, audit, disposition, holds, records, search, versions
from .service import Archive, BadInput, Conflict, NotFound, TooLarge
from .settings import ArchiveSettings, load_settings
from .store import ObjectMissing, StoreRefused, StoreUnavailable
from .store_sync import count_pending, sync_round

log = logging.getLogger("hdc.archive")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ingest_bytes = Counter("hdc_archive_ingest_bytes", "Plaintext bytes ingested", registry=self.registry)
        self.latency = Histogram(
            "hdc_archive_request_seconds",
            "Request latency by route",
            ["method", "route", "status_class"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.errors = Counter("hdc_archive_errors", "Error responses by kind", ["kind"], registry=self.registry)
        self.audit_pending = Gauge(
            "hdc_archive_audit_pending_entries", "Audit entries not yet in the store", registry=self.registry
        )
        self.store_sync_owed = Gauge(
            "hdc_archive_store_sync_owed_records",
            "Records whose legal hold or retention lock the store has not taken yet (store_sync.py)",
            registry=self.registry,
        )
        self.fixity_failures = Gauge(
            "hdc_archive_fixity_failures",
            "Committed record versions whose last fixity check failed (from the catalog: CLI and API runs)",
            registry=self.registry,
        )


ERROR_KINDS = {
    400: "bad_checksum",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    416: "bad_range",
    422: "invalid_input",
    500: "server_error",
    503: "store_unavailable",
}


class AuditMiddleware:
    """Writes one audit entry per API request (allowed or denied) before the response starts."""

    SKIP = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        archive: Archive = scope["app"].state.archive
        metrics: Metrics = scope["app"].state.metrics
        ctx: dict[str, Any] = scope.setdefault("hdc.audit", {})
        started = time.perf_counter()
        audited = path in self.SKIP
        status_holder = {"status": 500}

        def write(status: int) -> None:
            outcome = (
                "allowed"
                if status < 400
                else "denied"
                if status in (401, 403)
                else "refused"
                if status < 500
                else "error"
            )
            private: dict[str, str] = ctx.get("private") or {}
            entry = archive.audit.append(
                request_id=ctx.get("request_id") or uuid.uuid4().hex,
                actor=ctx.get("actor"),
                roles=ctx.get("roles", []),
                facility=ctx.get("facility"),
                method=scope["method"],
                path=path,
                status=status,
                outcome=outcome,
                record_id=ctx.get("record_id"),
                reason=ctx.get("reason"),
                sealed=seal_text(archive.audit_text_key, private) if private else None,
                flagged=bool(ctx.get("flagged")),
                client=(scope.get("client") or ("", 0))[0],
            )
            if entry["flagged"] and status < 400:
                with archive.engine.begin() as conn:
                    conn.execute(
                        db.insert(db.flags).values(
                            seq=entry["seq"],
                            ts=entry["ts"],
                            actor=entry["actor"] or "",
                            facility=entry["facility"],
                            record_id=entry["record_id"],
                            path=path,
                            justification=private.get("justification", ""),
                        )
                    )

        async def send_wrapper(message: Message) -> None:
            nonlocal audited
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                if not audited:
                    audited = True
                    await run_in_threadpool(write, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            status = status_holder["status"]
            if not audited:  # the app died before answering
                await run_in_threadpool(write, status)
            route = scope.get("route")
            metrics.latency.labels(scope["method"], getattr(route, "path", "unmatched"), f"{status // 100}xx").observe(
                time.perf_counter() - started
            )
            if status >= 400:
                metrics.errors.labels(ERROR_KINDS.get(status, f"http_{status}")).inc()


def _text(value: Any) -> str | int:
    """A location part or message that JSON can carry (a lone surrogate cannot be UTF-8 encoded)."""
    if isinstance(value, int):
        return value
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    """422 details naming the field, without the `input` FastAPI echoes by default: the value may
    be a patient identifier, or one JSON cannot even carry (a lone surrogate, 1e400)."""
    return [
        {"loc": [_text(part) for part in err.get("loc", ())], "msg": _text(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]


def _json(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def create_app(settings: ArchiveSettings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        archive = await run_in_threadpool(Archive.open, settings)
        settled = await run_in_threadpool(lambda: archive.reconcile(None, at_start=True))
        if any(settled.values()):
            log.warning("reconciled interrupted ingests: %s", settled)
        app.state.archive = archive
        app.state.verifier = TokenVerifier(settings)
        archive.audit.start()
        syncer = Periodic("store-sync", settings.store_sync_seconds, partial(sync_round, archive))
        syncer.start()
        try:
            yield
        finally:
            await run_in_threadpool(syncer.close)
            await run_in_threadpool(archive.close)

    app = FastAPI(
        title="hdc archive",
        version="0.1.0",
        description=(
            "Medical and administrative records of the ministry: streamed ingest with client SHA-256, "
            "envelope encryption, S3 Object Lock retention, legal holds, disposition with certificates, "
            "hash-chained audit. Authenticate with an OIDC bearer token."
        ),
        lifespan=lifespan,
    )
    app.state.metrics = Metrics()
    app.add_middleware(AuditMiddleware)
    for router in (
        records.router,
        versions.router,
        search.router,
        holds.router,
        disposition.router,
        audit.router,
        admin.router,
    ):
        app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_details(exc)}, status_code=422)

    @app.exception_handler(NotFound)
    async def _nf(_r: Request, exc: NotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(Conflict)
    async def _cf(_r: Request, exc: Conflict) -> JSONResponse:
        extra = {"retain_until": exc.retain_until.isoformat()} if exc.retain_until else {}
        return _json(409, str(exc), **extra)

    @app.exception_handler(BadInput)
    async def _bad(_r: Request, exc: BadInput) -> JSONResponse:
        return _json(400, str(exc))

    @app.exception_handler(TooLarge)
    async def _big(_r: Request, exc: TooLarge) -> JSONResponse:
        return _json(413, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def _down(_r: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(ObjectMissing)
    async def _missing(_r: Request, exc: ObjectMissing) -> JSONResponse:
        log.error("catalog points at a missing object: %s", exc)
        return _json(500, f"{exc}: the catalog lists it; restore it (runbooks/archive/restore-record.md)")

    @app.exception_handler(StoreRefused)
    async def _refused(_r: Request, exc: StoreRefused) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(KeyError_)
    async def _key(_r: Request, exc: KeyError_) -> JSONResponse:
        log.error("key problem: %s", exc)
        return _json(500, f"data key unavailable: {exc}")

    @app.exception_handler(SQLAlchemyError)
    async def _dberr(_r: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.error("catalog error: %s", exc)
        return JSONResponse({"detail": "catalog database unavailable"}, status_code=503, headers={"Retry-After": "30"})

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="The process is up")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        tags=["operations"],
        responses={503: {"model": Health}},
        summary="Store and catalog reachable",
    )
    def readyz(request: Request) -> Any:
        archive: Archive = request.app.state.archive
        checks = {}
        try:
            archive.store.ping()
            checks["store"] = "ok"
        except (StoreUnavailable, StoreRefused) as exc:
            checks["store"] = str(exc)
        try:
            with archive.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["catalog"] = "ok"
        except SQLAlchemyError as exc:
            checks["catalog"] = type(exc).__name__
        ok = all(v == "ok" for v in checks.values())
        body = Health(status="ok" if ok else "unavailable", checks=checks)
        return body if ok else JSONResponse(body.model_dump(), status_code=503)

    @app.get("/metrics", tags=["operations"], response_class=Response, summary="Prometheus metrics")
    def metrics(request: Request) -> Response:
        m: Metrics = request.app.state.metrics
        archive: Archive = request.app.state.archive
        m.audit_pending.set(archive.audit.pending_count())
        try:  # a catalog outage must not fail the scrape (ServiceDown would name the wrong cause)
            m.store_sync_owed.set(count_pending(archive))
            with archive.engine.connect() as conn:
                m.fixity_failures.set(db.fixity_failures(conn))
        except SQLAlchemyError as exc:
            log.warning("metrics: catalog unreadable, catalog gauges keep their last values: %s", exc)
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory: `uvicorn --factory archive_service.app:app_from_env`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_allocator()
    return create_app()
