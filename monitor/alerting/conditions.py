"""What each rule kind reads from a `LinkState`: is the condition bad, is it clear, and the value shown.

`bad` decides firing, `clear` decides resolving; for threshold rules the two differ (the
hysteresis band between `resolve_below` and `above` is neither). None means "no data":
the engine then changes nothing, so a poll that cannot compute a rate never resolves an alert.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.rules.schema import Rule, RuleKind, format_duration
from monitor.state import LinkState, OperStatus

_DOWN = {OperStatus.DOWN, OperStatus.LOWER_LAYER_DOWN, OperStatus.NOT_PRESENT, OperStatus.DORMANT}


@dataclass(frozen=True)
class Reading:
    bad: bool | None
    clear: bool | None
    value: float | None
    text: str


def oper_down(ls: LinkState) -> bool:
    """The router answers and says the uplink is down (an interface shut by an operator is not an outage)."""
    return ls.reachable and ls.admin_up and ls.oper_status in _DOWN


def parent_down(ls: LinkState | None) -> bool:
    """An aggregation site counts as down as soon as a poll fails or its link reports down."""
    if ls is None:
        return False
    return oper_down(ls) or (not ls.reachable and ls.consecutive_failures > 0)


def read(rule: Rule, ls: LinkState | None, flap_changes: int = 0) -> Reading:
    if ls is None:
        return Reading(None, None, None, "")
    kind = rule.kind
    if kind is RuleKind.LINK_DOWN:
        failed = rule.failures is not None and ls.consecutive_failures >= rule.failures
        if not ls.reachable and not failed:
            # no answer: the link state is unknown until `failures` polls have failed
            return Reading(None, None, None, "")
        bad = oper_down(ls) or failed
        text = f"oper {ls.oper_status.value}" if ls.reachable else f"{ls.consecutive_failures} failed polls"
        return Reading(bad, not bad, 0.0 if bad else 1.0, text)
    if kind is RuleKind.UNREACHABLE:
        assert rule.failures is not None
        bad = ls.consecutive_failures >= rule.failures
        clear = ls.reachable
        text = f"{ls.consecutive_failures} failed polls" + (f" ({ls.error})" if ls.error and not ls.reachable else "")
        return Reading(bad, clear, float(ls.consecutive_failures), text)
    if kind is RuleKind.UTILISATION:
        if ls.utilisation is None or not ls.reachable:
            return Reading(None, None, None, "")
        assert rule.above is not None and rule.clear_threshold is not None
        u = ls.utilisation
        return Reading(u >= rule.above, u < rule.clear_threshold, u, f"{u * 100:.0f} %")
    if kind is RuleKind.ERROR_RATE:
        if (ls.in_errors_per_s is None and ls.out_errors_per_s is None) or not ls.reachable:
            return Reading(None, None, None, "")
        assert rule.above is not None and rule.clear_threshold is not None
        rate = (ls.in_errors_per_s or 0.0) + (ls.out_errors_per_s or 0.0)
        return Reading(rate >= rule.above, rate < rule.clear_threshold, rate, f"{rate:.2f} errors/s")
    if kind is RuleKind.FLAPPING:
        assert rule.changes is not None and rule.window is not None
        bad = flap_changes >= rule.changes
        return Reading(bad, not bad, float(flap_changes), f"{flap_changes} changes in {format_duration(rule.window)}")
    raise AssertionError(kind)  # pragma: no cover - the schema lists every kind
