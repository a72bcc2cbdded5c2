"""The exporter on a real scrape: promtool's lint, a real Prometheus, /healthz and subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hdc.procs import ManagedProcess, free_port, tcp_ready, wait_until
from monitor.service import MonitorService
from monitor.settings import PollerSettings
from monitor.simulator import AgentOverride, Simulator
from monitor.state import LinkState
from monitor.targets import targets_from_catalog

from .helpers import facility, udp_port, write_catalog, write_secrets

pytestmark = pytest.mark.slow


@dataclass
class Running:
    service: MonitorService
    sim: Simulator
    url: str
    seen: list[dict[str, LinkState]]


class ServiceThread:
    """`service.serve()` on its own event loop in a thread, stopped by cancelling its task."""

    def __init__(self, service: MonitorService, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.service, self.port = service, port
        self.task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.service.serve("127.0.0.1", self.port))
        with contextlib.suppress(asyncio.CancelledError, Exception):
            self.loop.run_until_complete(self.task)

    def stop(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=15)
        self.loop.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("exporter")
    mp = pytest.MonkeyPatch()
    mp.setenv("HDC_SECRETS_DIR", str(tmp / "secrets"))
    write_secrets(tmp / "secrets")
    port = udp_port()
    cat = write_catalog(
        tmp / "cat",
        [
            facility("exp-a", "127.73.0.1", port, bandwidth=100),
            facility("exp-b", "127.73.0.2", port, bandwidth=20, kind="primary_care_centre", region="south"),
            facility("exp-dead", "127.73.0.3", port),
        ],
    )
    sim = Simulator(cat, tmp / "sim", {"exp-dead": AgentOverride(silent=True)}).start()
    service = MonitorService(targets_from_catalog(cat), PollerSettings(interval=1.0, timeout=0.3, retries=0))
    seen: list[dict[str, LinkState]] = []

    async def collect(snap: dict[str, LinkState]) -> None:
        seen.append(snap)

    service.subscribe(collect)
    http_port = free_port()
    thread = ServiceThread(service, http_port)
    thread.thread.start()
    try:
        wait_until(tcp_ready("127.0.0.1", http_port), 20, "monitor service")
        # two good cycles give rates
        wait_until(lambda: service.snapshot["exp-a"].in_bps is not None, 20, "first rates", interval=0.1)
        yield Running(service, sim, f"http://127.0.0.1:{http_port}", seen)
    finally:
        thread.stop()
        sim.stop()
        mp.undo()


def test_scrape_passes_promtool_and_carries_the_readings(running: Running) -> None:
    gz = httpx.get(running.url + "/metrics", headers={"accept-encoding": "gzip"}, timeout=5)
    plain = httpx.get(running.url + "/metrics", headers={"accept-encoding": "identity"}, timeout=5)
    assert gz.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    text = gz.text
    assert "hdc_link_in_bytes_per_second{" in plain.text and "hdc_poller_targets 3.0" in plain.text
    for body in (text, plain.text):
        res = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, check=False)
        assert res.returncode == 0 and res.stdout == "" and res.stderr == "", res.stdout + res.stderr
    labels = 'facility="exp-b",facility_name="Hôpital exp-b",kind="primary_care_centre",region="south"'
    assert f"hdc_link_up{{{labels}}} 1.0" in text
    line = next(ln for ln in text.splitlines() if ln.startswith(f"hdc_link_in_bytes_per_second{{{labels}}}"))
    want = running.sim.expected["exp-b"].in_bps / 8
    assert abs(float(line.rsplit(" ", 1)[1]) - want) <= 0.02 * want
    assert 'hdc_link_poll_error{facility="exp-dead"' in text and 'reason="timeout"' in text
    assert "hdc_link_reachable{" + 'facility="exp-dead"' in text
    for name in ("hdc_poller_cycles_total", "hdc_poller_last_cycle_duration_seconds", "hdc_poller_queue_depth",
                 'hdc_poller_errors_total{reason="timeout"}', "hdc_poller_targets 3.0"):  # fmt: skip
        assert name in text


def test_healthz_and_subscribers(running: Running) -> None:
    r = httpx.get(running.url + "/healthz", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["targets"] == 3
    assert running.seen and set(running.seen[-1]) == {"exp-a", "exp-b", "exp-dead"}


@pytest.mark.skipif(not shutil.which("prometheus"), reason="prometheus not installed")
def test_a_real_prometheus_scrapes_the_exporter(running: Running, tmp_path: Path) -> None:
    port = free_port()
    exporter = running.url.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: hdc-monitor\n    static_configs: [{{targets: ['{exporter}']}}]\n",
        encoding="utf-8",
    )
    prom = ManagedProcess(
        "prometheus",
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        tmp_path / "prometheus.log",
    )  # fmt: skip
    with prom:
        api = f"http://127.0.0.1:{port}"
        prom.wait_ready(lambda: _ok(api + "/-/ready"), timeout=30)

        def series() -> list[dict]:  # type: ignore[type-arg]
            r = httpx.get(api + "/api/v1/query", params={"query": "hdc_link_in_bytes_per_second"}, timeout=5)
            return r.json()["data"]["result"] if r.status_code == 200 else []

        wait_until(lambda: len(series()) == 2, 30, "series in Prometheus", interval=0.3)
        got = {s["metric"]["facility"]: s for s in series()}
        assert set(got) == {"exp-a", "exp-b"}  # the dead link has no rate, not a zero
        assert got["exp-b"]["metric"]["region"] == "south" and got["exp-b"]["metric"]["job"] == "hdc-monitor"
        want = running.sim.expected["exp-a"].in_bps / 8
        assert abs(float(got["exp-a"]["value"][1]) - want) <= 0.02 * want
        r = httpx.get(api + "/api/v1/query", params={"query": "hdc_link_reachable == 0"}, timeout=5).json()
        assert [s["metric"]["facility"] for s in r["data"]["result"]] == ["exp-dead"]
        t = httpx.get(api + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        assert t[0]["health"] == "up", t


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
