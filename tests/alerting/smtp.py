"""A real SMTP server on loopback (aiosmtpd writing a Maildir), started and stopped by PID."""

from __future__ import annotations

import email
import email.policy
import mailbox
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from hdc.procs import ManagedProcess, free_port, tcp_ready


@dataclass
class Smtp:
    port: int
    maildir: Path
    log: Path
    proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=noc@example.org&to=oncall@example.org"

    def start(self) -> Smtp:
        self.proc = ManagedProcess(
            "aiosmtpd",
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}", "-c",
             "aiosmtpd.handlers.Mailbox", str(self.maildir)],
            self.log,
        ).start()  # fmt: skip
        self.proc.wait_ready(tcp_ready("127.0.0.1", self.port), timeout=20)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def messages(self) -> list[EmailMessage]:
        box = mailbox.Maildir(str(self.maildir), create=True)
        out = []
        for key in box.iterkeys():
            raw = box.get_bytes(key)
            out.append(email.message_from_bytes(raw, policy=email.policy.default))

        # by sending time, then by group number (g<N>-…) for messages sent within the same second
        def group(m: EmailMessage) -> int:
            ref = str(m["X-HDC-Notification"] or "").split("-")[0]
            return int(ref[1:]) if ref[:1] == "g" and ref[1:].isdigit() else 0

        out.sort(key=lambda m: (m["Date"].datetime.timestamp(), group(m)))
        return out  # type: ignore[return-value]

    def clear(self) -> None:
        box = mailbox.Maildir(str(self.maildir), create=True)
        for key in list(box.keys()):
            box.discard(key)


def body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    assert part is not None
    return str(part.get_content())


def start_smtp(tmp: Path) -> Smtp:
    tmp.mkdir(parents=True, exist_ok=True)
    return Smtp(free_port(), tmp / "maildir", tmp / "aiosmtpd.log").start()
