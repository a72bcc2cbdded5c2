"""The monitor as a service: poller loop, latest snapshot, subscribers, and one ASGI app.

`MonitorService` is what other parts attach to: the NOC page and the alerting API mount their
routes on `service.app` and receive every new snapshot through `service.subscribe(callback)`.
`/metrics` serves Prometheus, `/healthz` says whether cycles are completing on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hdc.errors import UserError

from .exporter import HealthCollector, LinkExposition
from .poller import Poller
from .settings import PollerSettings
from .state import LinkState
from .targets import Target

log = logging.getLogger("hdc.monitor.service")

Subscriber = Callable[[dict[str, LinkState]], Awaitable[None]]


class MonitorService:
    """Holds the poller, the latest snapshot, the FastAPI app and the snapshot subscribers."""

    def __init__(self, targets: Sequence[Target], settings: PollerSettings | None = None, shard: str = "1/1") -> None:
        self.settings = settings or PollerSettings()
        self.poller = Poller(targets, self.settings)
        self.shard = shard
        self.snapshot: dict[str, LinkState] = self.poller.snapshot()
        self.subscribers: list[Subscriber] = []
        self.started = time.time()
        self.last_cycle_end: float | None = None
        self.links = LinkExposition(self.poller, lambda: self.snapshot)
        self.registry = CollectorRegistry(auto_describe=False)  # the poller's own health
        self.registry.register(HealthCollector(self.poller))
        self.app = FastAPI(title="hdc monitor", docs_url=None, redoc_url=None, openapi_url=None)
        self.app.add_api_route("/metrics", self._metrics, methods=["GET"])
        self.app.add_api_route("/healthz", self._healthz, methods=["GET"])
        self._task: asyncio.Task[None] | None = None
        # One rendering thread, not the default pool: scrapes queue instead of rendering 10,000
        # links several times at once, and freed memory is reused from one malloc arena.
        self._render_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hdc-metrics")

    def subscribe(self, callback: Subscriber) -> None:
        """Call `await callback(snapshot)` after every cycle (errors are logged, never fatal)."""
        self.subscribers.append(callback)

    def exposition(self) -> bytes:
        """The full Prometheus text: link series then poller health."""
        return self.links.render() + generate_latest(self.registry)

    def _plain(self) -> Iterator[bytes]:
        yield from self.links.stream()
        yield generate_latest(self.registry)

    async def _metrics(self, request: Request) -> Response:
        # Rendering 10,000 links takes a noticeable fraction of a second: keep it off the loop
        # the poller runs on.
        loop = asyncio.get_running_loop()
        if "gzip" in request.headers.get("accept-encoding", ""):
            tail = generate_latest(self.registry)
            body = await loop.run_in_executor(self._render_pool, self.links.render_gzip, tail)
            return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Content-Encoding": "gzip"})
        # Streamed family by family (Starlette runs a plain iterator in its thread pool).
        return StreamingResponse(self._plain(), media_type=CONTENT_TYPE_LATEST)

    async def _healthz(self) -> JSONResponse:
        now = time.time()
        late_after = 3 * self.settings.interval + self.settings.timeout * (self.settings.retries + 1)
        last = self.last_cycle_end
        ok = (now - self.started < late_after) if last is None else (now - last < late_after)
        body = {
            "status": "ok" if ok else "stalled",
            "shard": self.shard,
            "targets": len(self.poller.runtimes),
            "cycles": self.poller.cycles,
            "last_cycle_end": last,
            "last_cycle_duration_seconds": self.poller.stats.duration,
            "last_cycle_failed": self.poller.stats.failed,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def cycle(self) -> dict[str, LinkState]:
        """One poll cycle, then every subscriber with the new snapshot."""
        self.snapshot = await self.poller.run_cycle()
        self.last_cycle_end = time.time()
        for callback in list(self.subscribers):
            try:
                await asyncio.wait_for(callback(self.snapshot), timeout=self.settings.interval)
            except Exception:
                log.exception("snapshot subscriber %r failed", callback)
        return self.snapshot

    async def run(self) -> None:
        """Cycle every interval (start to start) until cancelled."""
        try:
            while True:
                start = time.monotonic()
                await self.cycle()
                await asyncio.sleep(max(0.0, self.settings.interval - (time.monotonic() - start)))
        finally:
            self.poller.close()

    async def serve(self, host: str, port: int, tls: tuple[Path, Path] | None = None) -> None:
        """Poll and serve HTTP(S) until cancelled (or until uvicorn stops on SIGINT/SIGTERM)."""
        config = uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
            ssl_certfile=str(tls[0]) if tls else None, ssl_keyfile=str(tls[1]) if tls else None,
        )  # fmt: skip
        server = uvicorn.Server(config)
        poll = asyncio.create_task(self.run(), name="hdc-monitor-poller")
        poll.add_done_callback(_report_crash)
        try:
            await server.serve()
            if not server.started:
                raise UserError(f"cannot listen on {host}:{port} (address in use or not local?)")
        finally:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "the poller stopped: %r; /healthz now reports it stalled", task.exception(), exc_info=task.exception()
        )


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9105")
    return host, int(port)
