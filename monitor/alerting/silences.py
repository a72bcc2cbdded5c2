"""Checks shared by the HTTP API and the CLI before a silence or maintenance window is stored."""

from __future__ import annotations

from hdc.errors import UserError
from inventory.model import Catalog
from monitor.rules.schema import RuleFile, parse_duration

MAX_SILENCE_S = 90 * 86400


def check_silence(
    catalog: Catalog,
    rules: RuleFile,
    *,
    facility: str | None,
    region: str | None,
    rule: str | None,
    starts_at: float,
    ends_at: float,
    reason: str,
    created_by: str,
    now: float,
) -> None:
    """Raise UserError naming the field when a silence would be wrong or match nothing known."""
    if not (facility or region or rule):
        raise UserError("silence: give at least one of facility, region or rule (a silence of everything is refused)")
    if facility and catalog.facility(facility) is None:
        raise UserError(f"silence: facility '{facility}' is not in the catalog")
    if region and region not in {r.id for r in catalog.regions} | {f.region for f in catalog.facilities}:
        raise UserError(f"silence: region '{region}' is not in the catalog")
    if rule and rules.get(rule) is None:
        raise UserError(
            f"silence: rule '{rule}' is not in the rule file (known: {', '.join(r.id for r in rules.rules)})"
        )
    if not reason.strip():
        raise UserError("silence: reason must not be empty (say why, for the next shift)")
    if not created_by.strip():
        raise UserError("silence: created_by must not be empty")
    if ends_at <= starts_at:
        raise UserError("silence: ends_at must be after starts_at")
    if ends_at <= now:
        raise UserError("silence: ends_at is in the past")
    if ends_at - starts_at > MAX_SILENCE_S:
        raise UserError("silence: longer than 90 days; fix the catalog or the rule instead")


def parse_when(value: str, now: float, field: str) -> float:
    """'now', '+2h' (relative), a duration ('90m', from now), unix seconds or ISO-8601 (UTC if no zone)."""
    from datetime import UTC, datetime

    text = value.strip()
    if text == "now":
        return now
    try:
        return now + parse_duration(text.removeprefix("+"))
    except ValueError:
        pass
    try:
        return float(text) if float(text) > 10**9 else _bad(field, value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return _bad(field, value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _bad(field: str, value: str) -> float:
    raise UserError(f"{field}: '{value}' is not a time (use now, +2h, 90m, unix seconds or 2026-11-22T18:00Z)")
