"""The poller against a simulated network (snmpsim): real agents, known rates, every bad case."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from inventory.model import Catalog
from monitor.poller import Poller
from monitor.settings import PollerSettings
from monitor.simulator import AgentOverride, Simulator
from monitor.state import LinkState, OperStatus
from monitor.targets import Target, V2cCredentials, V3Credentials, target_for, targets_from_catalog

from .helpers import facility, udp_port, write_catalog, write_secrets

pytestmark = pytest.mark.slow

SETTINGS = PollerSettings(interval=5, timeout=1.0, retries=1)


@dataclass
class Net:
    catalog: Catalog
    sim: Simulator
    targets: dict[str, Target]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("snmpnet")
    mp = pytest.MonkeyPatch()
    mp.setenv("HDC_SECRETS_DIR", str(tmp / "secrets"))
    write_secrets(tmp / "secrets")
    port = udp_port()
    facs = [
        facility("fast", "127.71.0.1", port, bandwidth=200),
        facility("v3", "127.71.0.2", port, v3=True, if_index=3, bandwidth=50, region="south"),
        facility("old-router", "127.71.0.3", port, bandwidth=10),
        facility("wrapping", "127.71.0.4", port, bandwidth=10000, kind="aggregation_site"),
        facility("silent", "127.71.0.5", port),
        facility("renumbered", "127.71.0.6", port),
        facility("badtype", "127.71.0.7", port),
        facility("downlink", "127.71.0.8", port, bandwidth=20, kind="primary_care_centre"),
    ]
    catalog = write_catalog(tmp / "catalog", facs)
    overrides = {
        "old-router": AgentOverride(no_ifxtable=True),
        # 32-bit counters only at 5.6 Gb/s: ifInOctets wraps every ~6 s (first 3 s after start).
        "wrapping": AgentOverride(no_ifxtable=True, wrap_after_s=3, in_bps=5_600_000_000, out_bps=80_000_000),
        "silent": AgentOverride(silent=True),
        "renumbered": AgentOverride(if_index=9),
        "badtype": AgentOverride(records={"1.3.6.1.2.1.31.1.1.1.6.2": "4|not a counter"}),
    }
    ids = {f["id"] for f in facs}
    sim = Simulator(catalog, tmp / "sim", overrides, facility_ids=ids)
    sim.start()
    # The catalog refuses a 0.0.0.0 router; the poller guards against one all the same (defence in depth).
    fast = catalog.facility("fast")
    assert fast is not None and fast.link is not None
    zero = fast.model_copy(
        update={"id": "zero-address", "link": fast.link.model_copy(update={"router": IPv4Address("0.0.0.0")})}
    )
    try:
        targets = {t.facility_id: t for t in targets_from_catalog(catalog)}
        yield Net(catalog, sim, {**targets, "zero-address": target_for(zero)})
    finally:
        sim.stop()
        mp.undo()


async def two_cycles(poller: Poller, gap: float = 2.5) -> dict[str, LinkState]:
    await poller.run_cycle()
    await asyncio.sleep(gap)
    return await poller.run_cycle()


def close(got: float | None, want: float, rel: float = 0.02) -> bool:
    return got is not None and abs(got - want) <= rel * want


async def test_rates_within_two_percent_for_v2c_v3_and_32bit(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    ids = ["fast", "v3", "old-router", "silent", "renumbered", "badtype", "zero-address", "downlink"]
    poller = Poller([net.targets[i] for i in ids], SETTINGS)
    caplog.set_level(logging.INFO, logger="hdc.monitor.poller")
    try:
        budget = SETTINGS.timeout * (SETTINGS.retries + 1)
        await poller.run_cycle()  # (the first also builds pysnmp's engine for the v3 target)
        await asyncio.sleep(2.5)
        snap = await poller.run_cycle()
        # the silent agent cost its own timeout budget, not more, and did not delay the others
        assert poller.stats.duration < budget + 0.5, poller.stats
    finally:
        poller.close()
    for fid in ("fast", "v3", "old-router"):
        st, exp = snap[fid], net.sim.expected[fid]
        assert st.reachable and st.link_up and st.error is None, (fid, st)
        assert close(st.in_bps, exp.in_bps), (fid, st.in_bps, exp.in_bps)
        assert close(st.out_bps, exp.out_bps), (fid, st.out_bps, exp.out_bps)
        assert st.in_errors_per_s is not None and abs(st.in_errors_per_s - exp.in_errors_per_s) <= 0.6
        assert st.out_discards_per_s is not None and abs(st.out_discards_per_s - exp.out_discards_per_s) <= 0.6
        assert st.utilisation is not None and close(st.utilisation, max(exp.in_bps, exp.out_bps) / st.bandwidth_bps)
        assert st.sys_name == exp.sys_name and st.if_name == exp.if_name
        assert st.counters_64bit is exp.counters_64bit
    assert snap["old-router"].counters_64bit is False and snap["fast"].if_alias == net.sim.expected["fast"].if_alias

    silent = snap["silent"]
    assert not silent.reachable and silent.reason == "timeout" and silent.consecutive_failures == 2
    assert silent.in_bps is None and "no answer" in (silent.error or "")

    gone = snap["renumbered"]
    assert gone.reachable and not gone.link_up and gone.reason == "no_such_interface"
    assert gone.oper_status is OperStatus.NOT_PRESENT and "ifIndex 2" in (gone.error or "")

    bad = snap["badtype"]
    assert bad.reason == "bad_type" and "ifHCInOctets.2 is OCTET STRING" in (bad.error or "")

    zero = snap["zero-address"]
    assert zero.reason == "config" and zero.last_poll == 0.0 and "0.0.0.0" in (zero.error or "")

    # each problem logged once, with the facility named, though seen in two cycles
    for fid, words in (
        ("silent", "no answer"),
        ("renumbered", "ifIndex 2"),
        ("badtype", "OCTET STRING"),
        ("zero-address", "0.0.0.0"),
    ):
        lines = [
            r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{fid} ") and words in r.getMessage()
        ]
        assert len(lines) == 1, (fid, lines)


async def test_32bit_wrap_gives_no_spike_and_the_true_rate(net: Net) -> None:
    exp = net.sim.expected["wrapping"]
    poller = Poller([net.targets["wrapping"]], SETTINGS)
    rt = poller.runtimes["wrapping"]
    seen_wrap = False
    rates: list[float] = []
    try:
        await poller.run_cycle()
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline and not (seen_wrap and len(rates) >= 2):
            before = rt.prev_counters.get("in")
            await asyncio.sleep(1.0)
            st = (await poller.run_cycle())["wrapping"]
            after = rt.prev_counters.get("in")
            if before is not None and after is not None and after < before:
                seen_wrap = True
                assert close(st.in_bps, exp.in_bps), (st.in_bps, exp.in_bps)  # the wrap interval itself
            assert st.in_bps is not None
            rates.append(st.in_bps)
    finally:
        poller.close()
    assert seen_wrap, "the simulated Counter32 never wrapped"
    assert all(close(r, exp.in_bps, 0.03) for r in rates), rates


async def test_wrong_community_and_wrong_v3_keys(net: Net) -> None:
    wrong_c = dataclasses.replace(net.targets["fast"], credentials=V2cCredentials(b"wrong-community"))
    creds = net.targets["v3"].credentials
    assert isinstance(creds, V3Credentials)
    wrong_k = dataclasses.replace(net.targets["v3"], credentials=dataclasses.replace(creds, auth_key="wrong-auth-key"))
    poller = Poller([wrong_c, wrong_k], PollerSettings(interval=5, timeout=0.5, retries=0))
    try:
        snap = await poller.run_cycle()
    finally:
        poller.close()
    assert snap["fast"].reason == "timeout" and not snap["fast"].reachable  # v2c agents ignore bad communities
    # the v3 agent reports usmStatsWrongDigests: an authentication failure, told apart from silence
    assert snap["v3"].reason == "auth" and "noc" in (snap["v3"].error or "") and not snap["v3"].reachable
    assert poller.errors_total.get("timeout", 0) + poller.errors_total.get("auth", 0) == 2


async def test_link_taken_down_with_snmpset(net: Net) -> None:
    # "fast" has the same uplink ifIndex as "downlink": taking one router's link down must not touch the other's
    assert net.targets["fast"].if_index == net.targets["downlink"].if_index
    poller = Poller([net.targets["downlink"], net.targets["fast"]], SETTINGS)
    try:
        assert (await poller.run_cycle())["downlink"].link_up
        net.sim.set_oper_status("downlink", up=False)
        snap = await poller.run_cycle()
        st = snap["downlink"]
        assert st.reachable and st.oper_status is OperStatus.DOWN and not st.link_up
        assert snap["fast"].link_up
        net.sim.set_oper_status("downlink", up=True)
        assert (await poller.run_cycle())["downlink"].link_up
    finally:
        poller.close()


async def test_dead_target_backs_off_exponentially() -> None:
    port = udp_port()
    t = Target("dead", "Dead", "district_hospital", "north", "127.0.0.1", port, 1, 1e6, V2cCredentials(b"x"))
    poller = Poller([t], PollerSettings(interval=1, timeout=0.1, retries=0, backoff_max=3))
    rt = poller.runtimes["dead"]
    try:
        await poller.run_cycle()
        assert rt.next_due == 0.0  # one miss: polled again next cycle
        await poller.run_cycle()
        assert rt.next_due > time.monotonic()  # two misses: backing off
        await poller.run_cycle()
        assert poller.stats.skipped_backoff == 1 and poller.stats.polled == 0
        assert rt.state.consecutive_failures == 2
        rt.next_due = 0.0
        await poller.run_cycle()
        # capped at backoff_max (3 s), minus half an interval of slack
        assert rt.next_due - time.monotonic() <= 3.0
        assert rt.state.consecutive_failures == 3
    finally:
        poller.close()


async def test_reboot_gives_no_rate_then_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDC_SECRETS_DIR", str(tmp_path / "secrets"))
    write_secrets(tmp_path / "secrets")
    cat = write_catalog(tmp_path / "cat", [facility("rebooter", "127.72.0.1", udp_port(), bandwidth=100)])
    with Simulator(cat, tmp_path / "sim", {"rebooter": AgentOverride(sys_uptime_s=3600)}) as sim:
        exp = sim.expected["rebooter"]
        poller = Poller(targets_from_catalog(cat), SETTINGS)
        try:
            st = (await two_cycles(poller, gap=2.0))["rebooter"]
            assert close(st.in_bps, exp.in_bps)
            sim.restart()  # sysUpTime and counters start again from their initial values
            st = (await poller.run_cycle())["rebooter"]
            assert st.reachable and st.link_up
            assert st.in_bps is None and st.out_bps is None and st.in_errors_per_s is None  # no spike, no negative
            await asyncio.sleep(1.5)
            st = (await poller.run_cycle())["rebooter"]
            assert close(st.in_bps, exp.in_bps)
        finally:
            poller.close()
