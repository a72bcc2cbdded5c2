"""Counter to rate: wraps, reboots, resets, implausible jumps — unit and property tests."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from monitor.rates import Gap, Sample, ambiguous_wrap, counter_delta, counter_rate, plausible_octets_per_s, uptime_gap


def test_plain_increase() -> None:
    assert counter_rate(1000, 4000, 3.0, 64) == (1000.0, None)


def test_32bit_wrap_gives_the_true_rate() -> None:
    prev = 2**32 - 500
    assert counter_rate(prev, 1500, 2.0, 32) == (1000.0, None)


def test_64bit_decrease_is_a_reset_not_a_wrap() -> None:
    assert counter_rate(10**12, 5, 10.0, 64) == (None, Gap.RESET)


def test_64bit_wrap_at_the_top_is_a_reset_too() -> None:
    # 2^64 octets take years at 400 Gb/s: a 64-bit counter going down was reset.
    assert counter_delta(2**64 - 10, 20, 64) == (None, Gap.RESET)


def test_32bit_reset_detected_by_plausibility() -> None:
    # A 'wrap' implying 2 GB/s on a 100 Mb/s interface is a reset.
    limit = plausible_octets_per_s(100e6)
    assert counter_rate(3_000_000_000, 10, 1.0, 32, limit) == (None, Gap.RESET)


def test_spike_above_line_rate_is_dropped() -> None:
    limit = plausible_octets_per_s(10e6)
    assert counter_rate(0, 10**9, 1.0, 64, limit) == (None, Gap.IMPLAUSIBLE)


def test_no_time_no_rate() -> None:
    assert counter_rate(1, 2, 0.0, 64) == (None, Gap.CLOCK)
    assert uptime_gap(Sample(10.0, 100), Sample(10.0, 200)) is Gap.CLOCK


def test_uptime_going_back_is_a_reboot() -> None:
    assert uptime_gap(Sample(0.0, 500_000), Sample(30.0, 1_000)) is Gap.REBOOT


def test_uptime_lagging_the_clock_is_a_reboot() -> None:
    # Polled at uptime 10 s, rebooted, polled 60 s later at uptime 20 s: went up but restarted.
    assert uptime_gap(Sample(0.0, 1_000), Sample(60.0, 2_000)) is Gap.REBOOT


def test_uptime_wrap_after_497_days_is_not_a_reboot() -> None:
    assert uptime_gap(Sample(0.0, 2**32 - 1_000), Sample(30.0, 2_000)) is None


def test_running_device() -> None:
    assert uptime_gap(Sample(0.0, 10_000), Sample(30.0, 13_000)) is None
    assert uptime_gap(Sample(0.0, None), Sample(30.0, None)) is None


def test_ambiguous_32bit_wrap_flagged_on_fast_links() -> None:
    assert ambiguous_wrap(32, 10e9, 30.0)
    assert not ambiguous_wrap(32, 100e6, 30.0)
    assert not ambiguous_wrap(64, 100e9, 300.0)


@given(
    bits=st.sampled_from([32, 64]),
    start=st.integers(min_value=0, max_value=2**64 - 1),
    rate=st.integers(min_value=0, max_value=10**9),
    dt=st.floats(min_value=0.5, max_value=300.0),
)
def test_property_true_rate_recovered_across_one_wrap(bits: int, start: int, rate: int, dt: float) -> None:
    start %= 2**bits
    delta = int(rate * dt)
    assume(delta < 2**bits)
    cur = (start + delta) % 2**bits
    got, gap = counter_rate(start, cur, dt, bits, max_per_s=1.25 * 10**9)
    if bits == 64 and cur < start:
        assert got is None and gap is Gap.RESET  # a 64-bit 'wrap' is treated as a reset
    else:
        assert gap is None and got is not None
        assert abs(got - delta / dt) < 1e-6 * max(1.0, delta / dt)


@given(
    prev=st.integers(min_value=0, max_value=2**64 - 1),
    cur=st.integers(min_value=0, max_value=2**64 - 1),
    dt=st.floats(min_value=-10, max_value=1000, allow_nan=False),
    bits=st.sampled_from([32, 64]),
    speed=st.one_of(st.none(), st.floats(min_value=1e3, max_value=4e11)),
)
def test_property_never_negative_never_above_line_rate(
    prev: int, cur: int, dt: float, bits: int, speed: float | None
) -> None:
    prev %= 2**bits
    cur %= 2**bits
    limit = plausible_octets_per_s(speed)
    got, gap = counter_rate(prev, cur, dt, bits, limit)
    if got is None:
        assert gap is not None
    else:
        assert got >= 0
        if limit is not None:
            assert got <= limit


@given(
    t0=st.floats(min_value=0, max_value=1e6),
    dt=st.floats(min_value=1, max_value=3600),
    up0=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_property_a_device_that_ran_through_is_never_a_reboot(t0: float, dt: float, up0: int) -> None:
    up1 = (up0 + int(dt * 100)) % 2**32
    assert uptime_gap(Sample(t0, up0), Sample(t0 + dt, up1)) is None
