"""Poller settings: a pydantic model with HDC_MONITOR_* environment overrides."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hdc.errors import UserError


class PollerSettings(BaseSettings):
    """How often and how patiently to poll. Every field can be set as HDC_MONITOR_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="HDC_MONITOR_", extra="forbid", frozen=True)

    interval: float = Field(30.0, ge=1.0, le=3600.0, description="seconds between polls of a link")
    timeout: float = Field(2.0, gt=0.0, le=60.0, description="seconds to wait for one answer")
    retries: int = Field(1, ge=0, le=10, description="extra attempts after a timeout, within a cycle")
    concurrency: int = Field(256, ge=1, le=20000, description="requests in flight at once")
    discovery_every: int = Field(
        20, ge=1, le=100000, description="re-read descriptive fields (ifName, sysName…) every N polls"
    )
    backoff_max: float = Field(600.0, ge=1.0, le=86400.0, description="longest wait before retrying a dead target")
    v3_engine: Literal["lean", "pysnmp"] = Field(
        "lean", description="SNMPv3 codec: lean (SHA*/AES-128, ~30× cheaper) or pysnmp (everything, incl. AES-192/256)"
    )
    bind_address: str | None = Field(
        None, description="local address of the polling socket (default: loopback if every target is)"
    )

    @model_validator(mode="after")
    def _budget(self) -> PollerSettings:
        if self.timeout * (self.retries + 1) > self.interval:
            raise ValueError(
                f"timeout × (retries + 1) = {self.timeout * (self.retries + 1):g} s exceeds the interval "
                f"({self.interval:g} s): a dead target would hold up the next cycle"
            )
        return self


def load_settings(**overrides: object) -> PollerSettings:
    """Settings from the environment plus explicit overrides; bad values → UserError naming the field."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return PollerSettings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{field} (HDC_MONITOR_{field.upper()} or --{field.replace('_', '-')}): {err['msg']}")
        raise UserError("bad monitor settings:\n  " + "\n  ".join(problems)) from None
