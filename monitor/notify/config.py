"""The notification routing file: who is told about what, in which language, through which Apprise URL.

Apprise URLs carry credentials (SMTP passwords, bot tokens), so the file holds only
references (`env:NAME`, `file:relative/path` under HDC_SECRETS_DIR), resolved when a
message is sent, exactly like the catalog's SNMP credentials.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from monitor.rules.loader import validate_file
from monitor.rules.schema import LANGUAGES, Severity, parse_duration

_SECRET_REF = re.compile(r"^(env:[A-Z_][A-Z0-9_]*|file:[A-Za-z0-9_./-]+)$")
Language = Literal["fr", "ar", "en"]


def _duration(value: Any) -> Any:
    return parse_duration(value)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grouping(Strict):
    """Alertmanager-style grouping per (rule, region, firing|resolved): a storm becomes one message."""

    wait: float = Field(15.0, description="the first message of a group waits this long to gather a storm")
    interval: float = Field(120.0, description="later messages for the same group are sent at most this often")
    max_names: Annotated[int, Field(ge=1, le=200)] = 10

    _d = field_validator("wait", "interval", mode="before")(_duration)


class Delivery(Strict):
    retry_initial: float = Field(5.0, description="first retry after a failed delivery")
    retry_max: float = Field(300.0, description="cap of the exponential back-off")
    give_up_after: float = Field(172800.0, description="a message still undelivered after this is marked dead")
    timeout: float = Field(20.0, description="seconds one delivery attempt may take")

    _d = field_validator("retry_initial", "retry_max", "give_up_after", "timeout", mode="before")(_duration)

    @model_validator(mode="after")
    def _order(self) -> Delivery:
        if self.retry_initial <= 0:
            raise ValueError("retry_initial must be more than 0")
        if self.retry_max < self.retry_initial:
            raise ValueError("retry_max must not be below retry_initial")
        return self


class Route(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    severities: list[Severity] = Field(default_factory=list, description="empty: every severity")
    regions: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list, description="empty: every region"
    )
    language: Language = "fr"
    short: bool = Field(False, description="one-line messages (SMS gateways, pagers)")
    urls: Annotated[list[str], Field(min_length=1, description="Apprise URLs, as env:/file: references")]

    @field_validator("urls")
    @classmethod
    def _refs(cls, urls: list[str]) -> list[str]:
        for i, url in enumerate(urls):
            if not _SECRET_REF.match(url):
                raise ValueError(
                    f"urls[{i}] must be a reference 'env:NAME' or 'file:relative/path' (Apprise URLs hold "
                    "credentials and never go into this file)"
                )
        return urls

    def matches(self, severity: str, region: str) -> bool:
        return (not self.severities or severity in self.severities) and (not self.regions or region in self.regions)


class NotifyConfig(Strict):
    version: Literal[1] = 1
    noc_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] = Field(
        "http://127.0.0.1:9110", description="public base URL of the NOC page, used for links in messages"
    )
    grouping: Grouping = Grouping()
    delivery: Delivery = Delivery()
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> NotifyConfig:
        names = [r.name for r in self.routes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"route name(s) defined twice: {', '.join(sorted(dup))}")
        return self

    def routes_for(self, severity: str, region: str) -> list[Route]:
        return [r for r in self.routes if r.matches(severity, region)]


def load_notify_config(path: str | Path | None) -> NotifyConfig:
    """The routing file at `path`; no file means no routes (alerts are still recorded and shown)."""
    if path is None:
        return NotifyConfig()
    return validate_file(Path(path), NotifyConfig, "notification routing")


assert set(LANGUAGES) == {"fr", "ar", "en"}
