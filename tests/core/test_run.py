"""`hdc run` (what `make run` starts): live link data, the NOC page, the archive with sample records; stops clean."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hdc.procs import free_port, wait_until

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    """Every descendant of pid (walks /proc, so it sees processes in new sessions too)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_hdc_run_shows_live_data_and_stops_everything(tmp_path: Path) -> None:
    archive_port, monitor_port = free_port(), free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hdc", "run", "--archive-port", str(archive_port), "--monitor-port",
             str(monitor_port), "--interval", "5"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        wait_until(lambda: "Ctrl-C stops everything" in log.read_text() or proc.poll() is not None, 240, "hdc run")
        text = log.read_text()
        assert proc.poll() is None, text
        assert "(3 sample records stored)" in text
        monitor = f"http://127.0.0.1:{monitor_port}"
        archive = f"http://127.0.0.1:{archive_port}"

        def links_up() -> bool:
            metrics = httpx.get(f"{monitor}/metrics", timeout=5).text
            return len(re.findall(r"^hdc_link_up\{.*\} 1\.0$", metrics, re.M)) == 8

        wait_until(links_up, 60, "all 8 lab links up")
        page = httpx.get(f"{monitor}/", timeout=5, follow_redirects=True)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert httpx.get(f"{archive}/docs", timeout=5).status_code == 200
        token = subprocess.run(
            [sys.executable, "-m", "hdc", "archive", "token", "--role", "archivist"],
            cwd=tmp_path, env={**os.environ, "HDC_ARCHIVE_STATE_DIR": str(tmp_path / ".state/run/archive")},
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        found = httpx.post(
            f"{archive}/search", json={"q": "consultation"}, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert found.status_code == 200, found.text
        assert [r["title"] for r in found.json()["results"]] == ["Compte rendu de consultation de cardiologie"]
        started = _children(proc.pid)
        assert len(started) >= 4  # simulator (+ snmpsim), archive (+ SeaweedFS), monitor
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in started):
        time.sleep(0.2)
    assert not [p for p in started if _alive(p)], "hdc run left processes behind"
