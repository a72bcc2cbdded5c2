"""The generic measurement helpers: /proc readings, the table, the JSON line."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from bench.common import (
    ProcessGone,
    Row,
    cpu_seconds,
    json_line,
    measure,
    parse_json_line,
    peak_rss_mb,
    placed,
    render_table,
    split_cpus,
)
from hdc.procs import ManagedProcess, wait_until

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 3: pass\ntime.sleep(60)"
IDLE = "import time\ntime.sleep(60)"


def test_cpu_seconds_counts_a_busy_child_not_an_idle_one(tmp_path: Path) -> None:
    busy = ManagedProcess("busy", [sys.executable, "-c", BUSY], tmp_path / "busy.log").start()
    idle = ManagedProcess("idle", [sys.executable, "-c", IDLE], tmp_path / "idle.log").start()
    try:
        wait_until(lambda: cpu_seconds(busy.pid) >= 0.05, 10, "busy child spinning")
        with measure(busy.pid, idle.pid) as w:
            time.sleep(0.6)
        assert w.per_pid[busy.pid] >= 0.05
        assert w.per_pid[idle.pid] <= 0.02
        assert w.cpu_s == pytest.approx(sum(w.per_pid.values()))
        assert w.wall_s >= 0.6
        assert peak_rss_mb(busy.pid) > 1
    finally:
        busy.stop()
        idle.stop()
    with pytest.raises(ProcessGone):
        cpu_seconds(busy.pid)


def test_cpu_seconds_of_this_process_matches_rusage() -> None:
    own = time.process_time()
    assert cpu_seconds(os.getpid()) == pytest.approx(own, abs=0.05)


def test_table_aligns_columns_and_marks_failures() -> None:
    table = render_table(
        [
            Row("CPU per target, ms", "0.100", "0.500", "0.20x", "<= 1.00x", True),
            Row("peak RSS", "400", target="< 300", passed=False),
            Row("info", "1"),
        ],
        title="t",
    )
    lines = table.splitlines()
    assert lines[0] == "t"
    assert lines[1].startswith("| measurement")
    assert len({len(line) for line in lines[1:]}) == 1  # every row as wide as the header
    assert "| pass |" in lines[3] and "| FAIL |" in lines[4] and lines[5].endswith("| -    |")


def test_json_line_is_one_line_with_nan_as_null() -> None:
    line = json_line({"ratio": float("nan"), "share": 0.1234567891, "name": "x"})
    assert "\n" not in line
    assert json.loads(line) == {"ratio": None, "share": 0.123457, "name": "x"}
    assert parse_json_line("table\n" + line + "\n") == {"ratio": None, "share": 0.123457, "name": "x"}


THREADS = "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\ntime.sleep(60)"


def _masks(pid: int) -> set[frozenset[int]]:
    return {frozenset(os.sched_getaffinity(int(t.name))) for t in Path(f"/proc/{pid}/task").iterdir()}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to split")
def test_placement_pins_every_thread_and_gives_the_cpus_back(tmp_path: Path) -> None:
    halves = split_cpus()
    assert halves is not None
    near, far = halves
    assert near and far and not near & far and near | far == os.sched_getaffinity(0)
    every = os.sched_getaffinity(0)
    child = ManagedProcess("threads", [sys.executable, "-c", THREADS], tmp_path / "t.log").start()
    try:
        wait_until(lambda: len(list(Path(f"/proc/{child.pid}/task").iterdir())) >= 2, 10, "second thread")
        with placed({child.pid: far, 0: near}):
            assert _masks(child.pid) == {frozenset(far)}
            assert os.sched_getaffinity(0) == near
        assert _masks(child.pid) == {frozenset(every)}
        assert os.sched_getaffinity(0) == every
    finally:
        child.stop()
