"""One `hdc monitor run` process polling many facility links on a real interval: CPU share and peak RSS.

The process is the product itself (catalog loader, poller, Prometheus exposition, /healthz),
started on a generated catalog. The measurement window opens when /healthz first answers (the
first cycle starts then; imports and the catalog load are start-up, reported apart) and lasts
`cycles` whole intervals. Halfway through each interval, while the poller is idle, the benchmark
scrapes /metrics as Prometheus would, and notes the CPU that scrape cost on its own.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from hdc.procs import ManagedProcess, free_port

from .common import Sampler, cpu_seconds

REPO = Path(__file__).resolve().parent.parent


@dataclass
class LinksRun:
    links: int
    interval_s: float
    cycles_wanted: int
    startup_cpu_s: float = 0.0
    startup_wall_s: float = 0.0
    window_wall_s: float = 0.0
    window_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    cycles_done: int = 0
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


def _get(url: str, timeout: float = 30.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _health(base: str) -> dict[str, object] | None:
    try:
        status, body = _get(base + "/healthz", timeout=5)
    except OSError:
        return None
    data = json.loads(body) if status in (200, 503) else None
    return data if isinstance(data, dict) else None


def _note_cycles(base: str, seen: int, result: LinksRun) -> int:
    """Record the cycles /healthz reports as completed since we last looked; returns the new count."""
    health = _health(base)
    cycles = health.get("cycles") if health else None
    if health is None or not isinstance(cycles, int) or cycles <= seen:
        return seen
    duration = health.get("last_cycle_duration_seconds")
    failed = health.get("last_cycle_failed")
    result.cycle_durations_s.append(float(duration) if isinstance(duration, int | float) else float("nan"))
    result.failed_last_cycle = failed if isinstance(failed, int) else None
    return cycles


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
    """Start `hdc monitor run` on `catalog`, measure `cycles` intervals, stop it by PID."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "hdc", "monitor", "run", "--catalog", str(catalog)]
    argv += ["--listen", f"127.0.0.1:{port}", "--interval", str(interval)]
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    proc = ManagedProcess(
        "hdc-monitor-run", argv, root / "hdc-monitor-run.log", env={"HDC_SECRETS_DIR": str(secrets_dir)}, cwd=REPO
    )
    result = LinksRun(links, interval, cycles)
    t_launch = time.perf_counter()
    with proc, Sampler(proc.pid, interval=0.5) as sampler:
        proc.wait_ready(lambda: _health(base) is not None, timeout=300)
        t0 = time.perf_counter()
        cpu0 = cpu_seconds(proc.pid)
        result.startup_wall_s = t0 - t_launch
        result.startup_cpu_s = cpu0
        seen_cycles = 0
        # The first cycle started just before /healthz answered: stop a little short of the next one.
        end = t0 + cycles * interval - min(1.0, interval / 10)
        next_scrape = t0 + interval / 2
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            if scrape_metrics and now >= next_scrape:
                before = cpu_seconds(proc.pid)
                status, body = _get(base + "/metrics", timeout=interval)
                result.scrape_cpu_s.append(cpu_seconds(proc.pid) - before)
                result.scrape_bytes.append(len(body))
                if status != 200:
                    result.problems.append(f"/metrics answered HTTP {status}")
                next_scrape += interval
            seen_cycles = _note_cycles(base, seen_cycles, result)
            if not proc.alive():
                result.problems.append(f"hdc monitor run exited early:\n{proc.tail()}")
                break
            time.sleep(max(0.0, min(5.0, end - time.perf_counter(), next_scrape - time.perf_counter())))
        result.window_wall_s = time.perf_counter() - t0
        result.window_cpu_s = cpu_seconds(proc.pid) - cpu0
        result.cycles_done = seen_cycles = _note_cycles(base, seen_cycles, result)
        result.peak_rss_mb = sampler.peak_rss_mb
    result.peak_rss_mb = max(result.peak_rss_mb, sampler.peak_rss_mb)
    if seen_cycles < cycles:
        result.problems.append(f"only {seen_cycles} of {cycles} cycles completed in the window")
    if result.failed_last_cycle:
        result.problems.append(f"{result.failed_last_cycle} links failed in the last cycle; see {proc.log_path}")
    return result
