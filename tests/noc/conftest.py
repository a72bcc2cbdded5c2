"""The whole chain on loopback: simulated routers → real poller service → alerting → SMTP, plus the NOC page."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from hdc.procs import free_port, tcp_ready, wait_until
from inventory.loader import load_catalog
from inventory.model import Catalog
from inventory.secrets import ensure_secrets
from monitor.noc import Alerting, AlertingSettings, attach
from monitor.service import MonitorService
from monitor.settings import PollerSettings
from monitor.simulator import Simulator
from monitor.targets import targets_from_catalog
from tests.alerting.smtp import Smtp, start_smtp

INTERVAL = 2.0


@dataclass
class Stack:
    catalog: Catalog
    sim: Simulator
    service: MonitorService
    alerting: Alerting
    smtp: Smtp
    url: str
    interval: float

    def api(self, path: str) -> httpx.Response:
        # generous: right after start the loop shares the CPU with Apprise loading its plugins
        return httpx.get(self.url + path, timeout=30)

    def state_of(self, fid: str) -> str:
        facs = self.api("/api/noc/state").json()["facilities"]
        return next(f["state"] for f in facs if f["id"] == fid)

    def wait_state(self, fid: str, state: str, timeout: float = 15) -> None:
        wait_until(lambda: self.state_of(fid) == state, timeout, f"{fid} {state}", interval=0.1)

    def open_alerts(self) -> list[dict]:
        return self.api("/api/alerts").json()


class ServiceThread:
    """Runs `service.serve()` on its own event loop in a thread; stopped by cancelling that task.

    Order on stop: the HTTP server and the poller first, then alerting (no request may reach a
    closed store), all on the service's own loop.
    """

    def __init__(self, service: MonitorService, alerting: Alerting, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.service = service
        self.alerting = alerting
        self.port = port
        self.task: asyncio.Task[None] | None = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, name="monitor-service", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self.task = asyncio.current_task()
        try:
            await self.service.serve("127.0.0.1", self.port)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # surfaced by the readiness wait, which names it
            self.error = exc
        finally:
            await self.alerting.stop()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.task is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have finished already
                self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "monitor service thread did not stop"


def private_lab(port: int) -> Catalog:
    """The lab catalog with its routers moved to addresses and a port of this test run only.

    Other engineers' tests simulate the lab network on its own addresses (127.0.10.x:16161) at
    the same time; the same routers on another loopback block keep the runs apart.
    The uplinks get distinct ifIndexes: the simulator's writable ifOperStatus is shared by OID.
    """
    data = load_catalog("lab").model_dump(mode="json")
    block = 100 + os.getpid() % 150
    for i, fac in enumerate(data["facilities"]):
        if fac.get("link") and fac["link"].get("router"):
            fac["link"]["router"] = f"127.{block}.10.{i + 1}"
            fac["link"]["snmp_port"] = port
            # snmpsim's writecache keys written values by OID across all agents: distinct ifIndexes
            # keep `snmpset ifOperStatus` on one simulated router from taking down the others
            fac["link"]["uplink"]["if_index"] = 10 + i
    return Catalog.model_validate(data)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("noc")
    mp = pytest.MonkeyPatch()
    secrets = tmp / "secrets"
    mp.setenv("HDC_SECRETS_DIR", str(secrets))
    catalog = private_lab(free_port(kind=socket.SOCK_DGRAM))
    ensure_secrets(catalog, secrets)
    smtp = start_smtp(tmp / "smtp")
    mp.setenv("HDC_TEST_NOC_EMAIL", smtp.url)
    routes = tmp / "routes.yaml"
    routes.write_text(
        "version: 1\nnoc_url: http://127.0.0.1:9110\n"
        "grouping: {wait: 1s, interval: 5s, max_names: 10}\n"
        "delivery: {retry_initial: 1s, retry_max: 2s}\n"
        "routes:\n  - name: noc-fr\n    language: fr\n    urls: [env:HDC_TEST_NOC_EMAIL]\n",
        encoding="utf-8",
    )
    sim = Simulator(catalog, tmp / "sim").start()
    thread: ServiceThread | None = None
    try:
        settings = PollerSettings(interval=INTERVAL, timeout=1.0, retries=0)
        service = MonitorService(targets_from_catalog(catalog), settings)
        alerting = attach(
            service,
            AlertingSettings(catalog="lab", routes=routes, db=tmp / "alerts.db", page_refresh=0.5, outbox_tick=0.1),
            catalog=catalog,
        )
        port = free_port()
        thread = ServiceThread(service, alerting, port)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        st = Stack(catalog, sim, service, alerting, smtp, url, INTERVAL)
        ready = tcp_ready("127.0.0.1", port)
        wait_until(lambda: thread.error is not None or ready(), 20, "monitor service")
        assert thread.error is None, f"monitor service failed: {thread.error!r}"
        # ready when every simulated link has been seen up at least once (a busy host may drop a poll)
        seen: set[str] = set()

        def all_seen_up() -> bool:
            seen.update(f["id"] for f in st.api("/api/noc/state").json()["facilities"] if f["state"] == "up")
            return seen >= {f.id for f in catalog.polled_facilities()}

        wait_until(all_seen_up, 90, "every lab link seen up", interval=0.2)
        yield st
    finally:
        if thread is not None:
            thread.stop()
        sim.stop()
        smtp.stop()
        mp.undo()
