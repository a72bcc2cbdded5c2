"""Counters to rates, without spikes: wraps, reboots and resets handled as a mature poller does.

Pure functions, so the rules are unit- and property-tested apart from any network:
- a 32-bit counter that went down wrapped once (if the implied rate is plausible);
- a 64-bit counter that went down was reset (it cannot wrap in a human lifetime);
- sysUpTime that went back, or advanced much less than the wall clock, means the device (or its
  agent) restarted in between: counters may have been zeroed, so the interval has no rate;
- a rate above what the interface can carry is a discontinuity, not traffic: no rate.
A missing rate is honest; a spike of terabits on a 20 Mb/s link would page someone at night.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TICKS_PER_S = 100
TICKS_WRAP = 2**32


class Gap(StrEnum):
    """Why an interval gives no rate."""

    FIRST = "first_sample"
    CLOCK = "clock"  # no time passed between the samples (or it went back)
    REBOOT = "reboot"  # sysUpTime went back or lagged the wall clock
    RESET = "counter_reset"  # a counter went down and could not have wrapped
    IMPLAUSIBLE = "implausible"  # faster than the interface can carry
    WIDTH_CHANGED = "counter_width_changed"  # 32-bit and 64-bit readings cannot be subtracted


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of an agent: when it arrived (seconds, monotonic) and its sysUpTime in ticks."""

    t: float
    uptime: int | None


def uptime_gap(prev: Sample, cur: Sample, slack: float = 0.5) -> Gap | None:
    """A discontinuity between two readings of the same agent, or None if the agent ran through.

    sysUpTime wraps after 497 days; a wrap is told from a restart by comparing with the wall clock.
    `slack` is the share of the wall-clock interval sysUpTime may lag (agents are busy, clocks drift).
    """
    dt = cur.t - prev.t
    if dt <= 0:
        return Gap.CLOCK
    if prev.uptime is None or cur.uptime is None:
        return None
    advanced = cur.uptime - prev.uptime
    if advanced < 0:
        wrapped = advanced + TICKS_WRAP
        # A genuine wrap: the old value was close enough to the top for the elapsed time to reach it.
        if wrapped <= dt * TICKS_PER_S * (1 + slack) + TICKS_PER_S:
            advanced = wrapped
        else:
            return Gap.REBOOT
    if advanced < dt * TICKS_PER_S * (1 - slack) - TICKS_PER_S:
        # Less uptime than time passed: it restarted and has been up for less than the interval.
        return Gap.REBOOT
    return None


def counter_delta(prev: int, cur: int, bits: int) -> tuple[int | None, Gap | None]:
    """The increase of a counter of `bits` width; a 32-bit decrease is a wrap, a 64-bit one a reset."""
    if cur >= prev:
        return cur - prev, None
    if bits == 32:
        return cur + 2**32 - prev, None
    return None, Gap.RESET


def counter_rate(
    prev: int,
    cur: int,
    dt: float,
    bits: int,
    max_per_s: float | None = None,
) -> tuple[float | None, Gap | None]:
    """Per-second rate of a counter over `dt` seconds, or why there is none.

    `max_per_s` is the most the counter can grow per second (e.g. interface speed in bytes);
    above it, an apparent increase is a reset or a bogus value. A 32-bit 'wrap' that would need
    more than that is a reset too.
    """
    if dt <= 0:
        return None, Gap.CLOCK
    delta, gap = counter_delta(prev, cur, bits)
    if delta is None:
        return None, gap
    rate = delta / dt
    if max_per_s is not None and rate > max_per_s:
        return None, Gap.RESET if cur < prev else Gap.IMPLAUSIBLE
    return rate, None


def plausible_octets_per_s(speed_bps: float | None, headroom: float = 1.25) -> float | None:
    """The most octets per second an interface of `speed_bps` can count (with headroom for framing)."""
    if not speed_bps or speed_bps <= 0:
        return None
    return speed_bps / 8 * headroom


def ambiguous_wrap(bits: int, speed_bps: float | None, interval_s: float) -> bool:
    """True when a 32-bit octet counter may wrap more than once between polls at this speed."""
    if bits != 32 or not speed_bps:
        return False
    return speed_bps / 8 * interval_s >= 2**32
