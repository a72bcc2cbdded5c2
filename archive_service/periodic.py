"""A job run every few seconds on a daemon thread (the audit flusher, the store sync)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("hdc.archive")


class Periodic:
    """Calls `job(stopping)` every `seconds` until `close`; `stopping` lets a long round end early.

    The job handles the errors it expects; anything else is logged and the next round runs anyway
    (the loop must outlive a catalog or store hiccup).
    """

    def __init__(self, name: str, seconds: float, job: Callable[[threading.Event], None]) -> None:
        self.name, self.seconds, self.job = name, seconds, job
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.seconds):
            try:
                self.job(self.stopping)
            except Exception:
                log.exception("%s: round failed; the next one retries", self.name)

    def close(self, timeout: float = 30) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
