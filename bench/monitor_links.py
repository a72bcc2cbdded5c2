"""One `hdc monitor run` process polling many facility links on a real interval: CPU share and peak RSS.

The process is the product itself (catalog loader, poller, Prometheus exposition, /healthz),
started on a generated catalog. Start-up (imports, catalog load) and the first cycle
(which also reads each router's descriptive fields) are reported apart; the measurement window
opens when the first cycle ends and lasts `cycles` whole intervals. Halfway through each interval, while the poller is idle, the benchmark
scrapes /metrics as Prometheus would, and notes the CPU that scrape cost on its own.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from hdc.procs import ManagedProcess, free_port

from .common import Sampler, cpu_seconds, peak_rss_mb, rss_mb

REPO = Path(__file__).resolve().parent.parent


@dataclass
class LinksRun:
    links: int
    interval_s: float
    cycles_wanted: int
    startup_cpu_s: float = 0.0  # launch to /healthz answering: imports, catalog load, targets
    startup_wall_s: float = 0.0
    first_cycle_cpu_s: float = 0.0  # the first cycle also reads the descriptive fields
    first_cycle_s: float = float("nan")
    first_cycle_in_startup: bool = False  # /healthz answered only after the first cycle
    window_wall_s: float = 0.0
    window_cpu_s: float = 0.0
    rss_after_startup_mb: float = 0.0
    rss_after_first_cycle_mb: float = 0.0
    peak_rss_before_scrape_mb: float = float("nan")
    peak_rss_mb: float = 0.0
    rss_at_end_mb: float = 0.0  # VmRSS when the window closes
    cycles_done: int = 0  # complete cycles inside the measurement window
    cycle_durations_s: list[float] = field(default_factory=list)
    failed_last_cycle: int | None = None
    scrape_cpu_s: list[float] = field(default_factory=list)
    scrape_bytes: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def cpu_share(self) -> float:
        return self.window_cpu_s / self.window_wall_s if self.window_wall_s else float("nan")

    @property
    def poll_cpu_share(self) -> float:
        """CPU share without the /metrics scrapes: the polling alone."""
        return (self.window_cpu_s - sum(self.scrape_cpu_s)) / self.window_wall_s if self.window_wall_s else float("nan")


# What Prometheus sends when it scrapes a target (it asks for gzip).
SCRAPE_HEADERS = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1", "Accept-Encoding": "gzip"}


def _get(url: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = resp.read()
            if resp.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return resp.status, body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _health(base: str) -> dict[str, object] | None:
    try:
        status, body = _get(base + "/healthz", timeout=5)
    except OSError:
        return None
    data = json.loads(body) if status in (200, 503) else None
    return data if isinstance(data, dict) else None


def _cycles(base: str) -> tuple[int, float, int] | None:
    """(cycles completed, last cycle's duration, links failed in it) from /healthz."""
    health = _health(base)
    if health is None:
        return None
    cycles, duration, failed = (
        health.get("cycles"),
        health.get("last_cycle_duration_seconds"),
        health.get("last_cycle_failed"),
    )
    if not isinstance(cycles, int):
        return None
    return (
        cycles,
        float(duration) if isinstance(duration, int | float) else float("nan"),
        failed if isinstance(failed, int) else 0,
    )


def _note_cycles(base: str, seen: int, result: LinksRun) -> int:
    """Record the cycles completed since we last looked; returns the new count."""
    now = _cycles(base)
    if now is None or now[0] <= seen:
        return seen
    result.cycle_durations_s.append(now[1])
    result.failed_last_cycle = now[2]
    return now[0]


def run_links(
    root: Path,
    catalog: Path,
    secrets_dir: Path,
    links: int,
    interval: float,
    cycles: int,
    scrape_metrics: bool = True,
    timeout: float | None = None,
) -> LinksRun:
    """Start `hdc monitor run` on `catalog`, measure `cycles` steady intervals, stop it by PID.

    The window opens when the first cycle (which also reads descriptive fields) has ended and
    lasts `cycles` intervals, stretched until the last cycle begun inside it has ended: it holds
    cycles 2 … cycles+1, whole, plus one /metrics scrape per interval, halfway between cycles.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "hdc", "monitor", "run", "--catalog", str(catalog)]
    argv += ["--listen", f"127.0.0.1:{port}", "--interval", str(interval)]
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    env = {"HDC_SECRETS_DIR": str(secrets_dir)}
    proc = ManagedProcess("hdc-monitor-run", argv, root / "hdc-monitor-run.log", env=env, cwd=REPO)
    result = LinksRun(links, interval, cycles)
    t_launch = time.perf_counter()
    with proc, Sampler(proc.pid, interval=0.5) as sampler:
        proc.wait_ready(lambda: _health(base) is not None, timeout=300)
        result.startup_wall_s = time.perf_counter() - t_launch
        result.startup_cpu_s = cpu_seconds(proc.pid)
        result.rss_after_startup_mb = peak_rss_mb(proc.pid)
        at_ready = _cycles(base)
        # /healthz may first answer only once the first cycle is over (the poller starts first).
        result.first_cycle_in_startup = at_ready is not None and at_ready[0] >= 1
        proc.wait_ready(lambda: (_cycles(base) or (0,))[0] >= 1, timeout=interval + 60)
        t0 = time.perf_counter()
        cpu0 = cpu_seconds(proc.pid)
        first = _cycles(base)
        result.first_cycle_s = first[1] if first else float("nan")
        result.first_cycle_cpu_s = float("nan") if result.first_cycle_in_startup else cpu0 - result.startup_cpu_s
        result.rss_after_first_cycle_mb = peak_rss_mb(proc.pid)
        seen_cycles = first[0] if first else 1
        end = t0 + cycles * interval
        next_scrape = t0 + interval / 2
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            if scrape_metrics and now >= next_scrape:
                if not result.scrape_cpu_s:
                    result.peak_rss_before_scrape_mb = peak_rss_mb(proc.pid)
                before = cpu_seconds(proc.pid)
                status, body = _get(base + "/metrics", timeout=interval, headers=SCRAPE_HEADERS)
                result.scrape_cpu_s.append(cpu_seconds(proc.pid) - before)
                result.scrape_bytes.append(len(body))
                if status != 200:
                    result.problems.append(f"/metrics answered HTTP {status}")
                # Rates need two polls: from the second scrape on, every link must have one.
                families = (b"hdc_link_up", b"hdc_link_in_bytes_per_second")[
                    : 1 if len(result.scrape_cpu_s) == 1 else 2
                ]
                for family in families:
                    series = body.count(b"\n" + family + b"{")
                    if status == 200 and series != links:
                        result.problems.append(f"/metrics holds {series} {family.decode()} series for {links} links")
                next_scrape += interval
            seen_cycles = _note_cycles(base, seen_cycles, result)
            if not proc.alive():
                result.problems.append(f"hdc monitor run exited early:\n{proc.tail()}")
                break
            time.sleep(max(0.0, min(5.0, end - time.perf_counter(), next_scrape - time.perf_counter())))
        # The last cycle of the window started before its end; let it finish so that the window
        # holds whole cycles (the next one starts an interval minus the first cycle's length later).
        want = (first[0] if first else 1) + cycles
        deadline = time.perf_counter() + interval
        while proc.alive() and time.perf_counter() < deadline:
            now_cycles = _cycles(base)
            if now_cycles is not None and now_cycles[0] >= want:
                break
            time.sleep(0.1)
        result.window_wall_s = time.perf_counter() - t0
        result.window_cpu_s = cpu_seconds(proc.pid) - cpu0
        seen_cycles = _note_cycles(base, seen_cycles, result)
        result.cycles_done = seen_cycles - (first[0] if first else 1)
        result.rss_at_end_mb = rss_mb(proc.pid)
    result.peak_rss_mb = sampler.peak_rss_mb
    if result.cycles_done < cycles:
        result.problems.append(f"only {result.cycles_done} of {cycles} cycles completed in the window")
    if result.failed_last_cycle:
        result.problems.append(f"{result.failed_last_cycle} links failed in the last cycle; see {proc.log_path}")
    return result
