"""ManagedProcess: stopped by PID with its process group, and never outlives a killed parent."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hdc.procs import ManagedProcess, free_port, tcp_ready, wait_until


def _state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return "gone"
    return status.split("State:")[1].split()[0]


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    proc = ManagedProcess("sh", ["sh", "-c", "sleep 300 & echo $! > child.pid; wait"], tmp_path / "log", cwd=tmp_path)
    proc.start()
    wait_until(lambda: (tmp_path / "child.pid").exists(), 5, "child pid file")
    grandchild = int((tmp_path / "child.pid").read_text())
    assert proc.stop() is not None
    wait_until(lambda: _state(grandchild) in {"gone", "Z"}, 5, "grandchild to end")


def test_children_die_when_their_parent_is_killed(tmp_path: Path) -> None:
    code = (
        "import time\nfrom pathlib import Path\nfrom hdc.procs import ManagedProcess\n"
        f"p = ManagedProcess('sleeper', ['sleep', '300'], Path({str(tmp_path / 'log')!r})).start()\n"
        "print(p.pid, flush=True)\ntime.sleep(300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _state(child) in {"S", "R"}
    parent.kill()
    parent.wait()
    wait_until(lambda: _state(child) in {"gone", "Z"}, 5, "orphaned child to end")


def test_wait_ready_reports_an_early_exit_with_the_log(tmp_path: Path) -> None:
    proc = ManagedProcess("failing", ["sh", "-c", "echo cannot bind >&2; exit 3"], tmp_path / "log").start()
    with pytest.raises(RuntimeError, match="cannot bind"):
        proc.wait_ready(lambda: False, timeout=5)
    assert proc.stop() == 3


def test_tcp_ready_and_free_port(tmp_path: Path) -> None:
    port = free_port()
    assert not tcp_ready("127.0.0.1", port)()
    server = ManagedProcess(
        "http", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], tmp_path / "log"
    ).start()
    try:
        server.wait_ready(tcp_ready("127.0.0.1", port), timeout=10)
    finally:
        server.stop()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="never"):
        wait_until(lambda: False, 0.2, "never")
    assert time.monotonic() - t0 < 2
