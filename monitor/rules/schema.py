"""The shape of an alert rule file.

Rules are data and the engine is generic: each rule names a `kind` (which condition of a
`LinkState` it watches), its thresholds, a `for` duration before firing and a hysteresis
(`resolve_for`, and for thresholds a lower `resolve_below`) before resolving.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from inventory.model import FacilityKind

LANGUAGES = ("fr", "ar", "en")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """'90s', '10m', '1h', '0' or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 10m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError("must be a duration such as 30s, 10m or 1h")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds → the Prometheus duration syntax ('90s', '10m', '1h')."""
    s = round(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if s and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


Duration = Annotated[float, Field(ge=0)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class RuleKind(StrEnum):
    LINK_DOWN = "link_down"
    UNREACHABLE = "unreachable"
    UTILISATION = "utilisation"
    ERROR_RATE = "error_rate"
    FLAPPING = "flapping"


class Texts(BaseModel):
    """One short text per language; all three are required so no operator sees a missing translation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fr: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    ar: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    en: Annotated[str, StringConstraints(min_length=1, max_length=300)]

    def get(self, lang: str) -> str:
        return str(getattr(self, lang, self.en))


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Slug
    kind: RuleKind
    severity: Severity
    title: Texts
    runbook: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="runbooks/alerts/<page>.md in this repository, or an http(s) URL"
    )
    for_: Duration = Field(0.0, alias="for", description="condition must hold this long before firing")
    resolve_for: Duration = Field(0.0, description="hysteresis: condition must be clear this long before resolving")
    failures: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        None, description="consecutive failed polls (unreachable; optional for link_down)"
    )
    above: Annotated[float, Field(gt=0)] | None = Field(None, description="threshold (utilisation 0..1, errors/s)")
    resolve_below: Annotated[float, Field(ge=0)] | None = Field(None, description="hysteresis threshold")
    changes: Annotated[int, Field(ge=2, le=1000)] | None = Field(None, description="flapping: state changes …")
    window: Duration | None = Field(None, description="flapping: … within this window")
    applies_to: list[FacilityKind] | None = Field(None, description="facility kinds (default: all polled)")
    topology: bool = Field(True, description="suppress when the aggregation site in front is down")
    repeat: Duration | None = Field(
        None, description="remind every this long while firing, unacknowledged and not silenced (none: tell once)"
    )
    enabled: bool = True

    @field_validator("for_", "resolve_for", "window", "repeat", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("runbook")
    @classmethod
    def _runbook(cls, value: str) -> str:
        if value.startswith(("http://", "https://")):
            return value
        if not re.fullmatch(r"runbooks/alerts/[a-z0-9-]+\.md", value):
            raise ValueError("must be runbooks/alerts/<page>.md or an http(s):// URL")
        return value

    @model_validator(mode="after")
    def _params_for_kind(self) -> Rule:
        need: dict[RuleKind, tuple[str, ...]] = {
            RuleKind.LINK_DOWN: (),
            RuleKind.UNREACHABLE: ("failures",),
            RuleKind.UTILISATION: ("above",),
            RuleKind.ERROR_RATE: ("above",),
            RuleKind.FLAPPING: ("changes", "window"),
        }
        allowed: dict[RuleKind, set[str]] = {
            RuleKind.LINK_DOWN: {"failures"},
            RuleKind.UNREACHABLE: {"failures"},
            RuleKind.UTILISATION: {"above", "resolve_below"},
            RuleKind.ERROR_RATE: {"above", "resolve_below"},
            RuleKind.FLAPPING: {"changes", "window"},
        }
        for name in need[self.kind]:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.kind.value} rule needs '{name}'")
        for name in ("failures", "above", "resolve_below", "changes", "window"):
            if getattr(self, name) is not None and name not in allowed[self.kind]:
                raise ValueError(f"'{name}' does not apply to a {self.kind.value} rule")
        if self.above is not None and self.resolve_below is not None and self.resolve_below > self.above:
            raise ValueError("resolve_below must not be above 'above' (it is the hysteresis threshold)")
        return self

    @property
    def clear_threshold(self) -> float | None:
        """The value below which a threshold rule counts as clear (defaults to `above`)."""
        if self.above is None:
            return None
        return self.resolve_below if self.resolve_below is not None else self.above


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    rules: Annotated[list[Rule], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id '{rule.id}' is defined twice")
            seen.add(rule.id)
        return self

    def enabled(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)
