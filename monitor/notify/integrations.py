"""Notification integrations behind one interface; Apprise is the one transport underneath.

One small class per kind of destination (healthchecks.io style) so that what is specific to
a destination — e-mail headers, plain-text format — lives in one place, while every
destination is reached through an Apprise URL (email, SMS gateways, Telegram, Teams, Slack…).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from urllib.parse import quote

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The destination did not confirm the message; the outbox will retry it."""


class Integration(ABC):
    """Send one message to one destination; return only once the destination accepted it."""

    @abstractmethod
    def send(self, url: str, title: str, body: str, *, ref: str, timeout: float = 20.0) -> None: ...

    @staticmethod
    def describe(url: str) -> str:
        """The scheme only: URLs hold credentials and never go into logs or errors."""
        return url.split("://", 1)[0] + "://…" if "://" in url else "(not a URL)"


class AppriseIntegration(Integration):
    """Any Apprise URL; success means Apprise reported every target as delivered."""

    def prepare(self, url: str, ref: str) -> str:
        return url

    @staticmethod
    def with_timeouts(url: str, timeout: float) -> str:
        """Apprise's generic connect/read timeouts (cto/rto), unless the URL sets its own."""
        extra = [f"{k}={timeout:g}" for k in ("cto", "rto") if f"{k}=" not in url]
        if not extra:
            return url
        return url + ("&" if "?" in url else "?") + "&".join(extra)

    def send(self, url: str, title: str, body: str, *, ref: str, timeout: float = 20.0) -> None:
        import apprise  # seconds to load its plugins: only where a message is really sent

        target = self.with_timeouts(self.prepare(url, ref), timeout)
        sender = apprise.Apprise()
        if not sender.add(target):
            raise DeliveryError(f"Apprise does not accept the URL {self.describe(url)}")
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
        if not ok:
            detail = " ".join(str(captured.getvalue()).split())[-300:]
            raise DeliveryError(f"{self.describe(url)} refused or unreachable: {detail or 'no detail'}")


class EmailIntegration(AppriseIntegration):
    """mailto:// and mailtos://: plain text, and the idempotency reference as a header for deduplication."""

    def prepare(self, url: str, ref: str) -> str:
        sep = "&" if "?" in url else "?"
        extra = [f"{quote('+X-HDC-Notification')}={quote(ref)}"]
        if "format=" not in url:
            extra.append("format=text")
        return url + sep + "&".join(extra)


def warm_up() -> None:
    """Load Apprise's plugins now (seconds on a busy host) rather than when the first alert is sent."""
    import apprise

    apprise.Apprise().add("json://127.0.0.1")


def integration_for(url: str) -> Integration:
    scheme = url.split("://", 1)[0].lower()
    if scheme in {"mailto", "mailtos"}:
        return EmailIntegration()
    return AppriseIntegration()
