"""Run one benchmark with `--quick` as its own process (stopped by PID) and hand back its output."""

from __future__ import annotations

import sys
from pathlib import Path

from hdc.procs import ManagedProcess

REPO = Path(__file__).resolve().parents[2]


def run_quick(module: str, tmp_path: Path, timeout: float) -> str:
    """`python -m <module> --quick` from the repository root; asserts it exits 0, returns its output."""
    log = tmp_path / "bench.log"
    bench = ManagedProcess(module, [sys.executable, "-m", module, "--quick"], log, cwd=REPO)
    with bench:
        assert bench.proc is not None
        code = bench.proc.wait(timeout=timeout)
    output = log.read_text()
    assert code == 0, output[-3000:]
    return output
