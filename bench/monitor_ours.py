"""Drive our poller's benchmark process (`bench.monitor_runner`) from the benchmark, by PID and port."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
from pathlib import Path
from typing import Any

from hdc.procs import ManagedProcess, free_port, tcp_ready

REPO = Path(__file__).resolve().parent.parent


class RunnerError(RuntimeError):
    """The runner process failed or answered something unexpected."""


class OurPoller:
    """`python -m bench.monitor_runner` in its own process; `command()` sends one line, reads one JSON line."""

    def __init__(
        self,
        root: Path,
        catalog: Path,
        secrets_dir: Path,
        concurrency: int,
        interval: float = 60.0,
        discovery_every: int = 20,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.process = ManagedProcess(
            "hdc-poller",
            [
                sys.executable,
                "-m",
                "bench.monitor_runner",
                "--catalog",
                str(catalog),
                "--control-port",
                str(self.port),
                "--concurrency",
                str(concurrency),
                "--interval",
                str(interval),
                "--discovery-every",
                str(discovery_every),
            ],
            root / "poller.log",
            env={"HDC_SECRETS_DIR": str(secrets_dir), "PYTHONPATH": str(REPO), **(env or {})},
            cwd=REPO,
        )
        self._sock: socket.socket | None = None
        self._file: Any = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self, timeout: float = 120.0) -> OurPoller:
        self.process.start()
        try:
            self.process.wait_ready(tcp_ready("127.0.0.1", self.port), timeout)
            self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=600)
            self._file = self._sock.makefile("rwb")
        except BaseException:
            self.stop()
            raise
        return self

    def command(self, line: str) -> dict[str, Any]:
        if self._file is None:
            raise RunnerError("the poller process is not started")
        self._file.write(line.encode() + b"\n")
        self._file.flush()
        reply = self._file.readline()
        if not reply:
            raise RunnerError(
                f"the poller process closed the connection; see {self.process.log_path}:\n{self.process.tail()}"
            )
        data = json.loads(reply)
        if not isinstance(data, dict) or "error" in data:
            raise RunnerError(f"poller answered {data!r} to {line!r}")
        return data

    def stop(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.write(b"quit\n")
                self._file.flush()
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.process.stop()

    def __enter__(self) -> OurPoller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
