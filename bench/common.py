"""Measurement helpers shared by the benchmarks: process CPU and memory from /proc, a table, one JSON line.

These machines are shared and noisy, so a benchmark measures the process under test from the
outside (its own /proc counters, never the benchmark's), compares it with an anchor measured in
the same run, and reports ratios. Nothing here knows about SNMP or S3.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
WORK_ROOT = Path(__file__).resolve().parent / ".work"


class ProcessGone(RuntimeError):
    """The measured process exited (its /proc entry is gone)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        raise ProcessGone(f"process {pid} is gone") from None
    # Fields after the command name, which is in parentheses and may itself hold spaces.
    rest = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(rest[11]), int(rest[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLK_TCK


def _status_kb(pid: int, key: str) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        raise ProcessGone(f"process {pid} is gone") from None
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, in MiB."""
    return _status_kb(pid, "VmHWM") / 1024


def rss_mb(pid: int) -> float:
    """Current resident memory (VmRSS) of a process, in MiB."""
    return _status_kb(pid, "VmRSS") / 1024


@dataclass
class Window:
    """CPU seconds a set of processes spent over a stretch of wall-clock time."""

    pids: Sequence[int]
    cpu_s: float = 0.0
    wall_s: float = 0.0
    per_pid: dict[int, float] = field(default_factory=dict)

    @property
    def cpu_share(self) -> float:
        """CPU seconds per wall second: 1.0 is one core kept fully busy."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@contextmanager
def measure(*pids: int) -> Iterator[Window]:
    """Measure the CPU the given processes use while the `with` body runs (filled in on exit)."""
    window = Window(pids)
    before = {pid: cpu_seconds(pid) for pid in pids}
    start = time.perf_counter()
    yield window
    window.wall_s = time.perf_counter() - start
    window.per_pid = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
    window.cpu_s = sum(window.per_pid.values())


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the sampler started
    cpu_s: float  # cumulative CPU seconds of the process
    rss_mb: float
    peak_rss_mb: float


class Sampler:
    """Samples a process's CPU time and memory every `interval` seconds in a background thread.

    Keeps the last sample when the process exits, so a crash does not lose the peak seen so far.
    """

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sampler-{pid}", daemon=True)
        self._t0 = 0.0

    def _take(self) -> Sample | None:
        try:
            sample = Sample(
                time.perf_counter() - self._t0, cpu_seconds(self.pid), rss_mb(self.pid), peak_rss_mb(self.pid)
            )
        except (ProcessGone, KeyError):
            return None
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self._take() is None:
                return

    def start(self) -> Sampler:
        self._t0 = time.perf_counter()
        self._take()
        self._thread.start()
        return self

    def stop(self) -> Sampler:
        self._stop.set()
        self._thread.join()
        self._take()
        return self

    @property
    def peak_rss_mb(self) -> float:
        return max((s.peak_rss_mb for s in self.samples), default=0.0)

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def split_cpus() -> tuple[set[int], set[int]] | None:
    """This process's CPUs cut in two halves (lower, upper); None with fewer than two CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def pin_process(pid: int, cpus: set[int]) -> None:
    """Restrict every thread of `pid` to `cpus`; threads it starts later inherit the mask."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (ProcessLookupError, FileNotFoundError):  # a thread that ended meanwhile
            continue


@contextmanager
def placed(placement: dict[int, set[int]]) -> Iterator[None]:
    """Run the body with each process (pid → CPUs; 0 = this process's calling thread) pinned, then
    give them back every CPU this process may use. Threads the body starts inherit the pinning."""
    every = os.sched_getaffinity(0)
    try:
        for pid, cpus in placement.items():
            if pid == 0:
                os.sched_setaffinity(0, cpus)
            else:
                pin_process(pid, cpus)
        yield
    finally:
        for pid in placement:
            if pid == 0:
                os.sched_setaffinity(0, every)
            else:
                with contextlib.suppress(ProcessGone, FileNotFoundError):
                    pin_process(pid, every)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def ratio(ours: float, anchor: float) -> float:
    """ours / anchor; NaN when the anchor is zero or missing."""
    return ours / anchor if anchor else float("nan")


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (children inherit it); returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if limit > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        return limit
    return soft


def work_dir(name: str) -> Path:
    """A fresh directory under bench/.work/ for one run's configs, logs and generated fixtures."""
    path = WORK_ROOT / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=False)
    return path


@dataclass(frozen=True)
class Row:
    """One line of a benchmark table: our figure, the anchor's, their ratio, the target, the verdict."""

    measurement: str
    ours: str
    anchor: str = "-"
    ratio: str = "-"
    target: str = "-"
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        return "-" if self.passed is None else ("pass" if self.passed else "FAIL")


HEADERS = ("measurement", "ours", "anchor", "ratio", "target", "pass")


def render_table(rows: Sequence[Row], title: str = "") -> str:
    """A fixed-width text table (also valid Markdown), one Row per line."""
    cells = [HEADERS, *((r.measurement, r.ours, r.anchor, r.ratio, r.target, r.verdict) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [title] if title else []
    out.append(line(cells[0]))
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


def json_line(data: dict[str, object]) -> str:
    """The machine-readable result: one line of JSON, NaN written as null."""

    def clean(value: object) -> object:
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, float):
            return round(value, 6)
        return value

    return json.dumps({k: clean(v) for k, v in data.items()}, sort_keys=True)


def parse_json_line(output: str) -> dict[str, Any]:
    """The last line of a benchmark's output, parsed (for tests and tooling that read results)."""
    last = output.strip().splitlines()[-1]
    data = json.loads(last)
    if not isinstance(data, dict):
        raise ValueError("the last line of the benchmark output is not a JSON object")
    return data
