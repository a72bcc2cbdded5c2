"""The poller against a real Net-SNMP agent (it reports this host's interfaces: ifIndex 1 is lo)."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hdc.procs import ManagedProcess
from monitor.poller import Poller
from monitor.settings import PollerSettings
from monitor.state import OperStatus
from monitor.targets import Target, V2cCredentials, V3Credentials

from .helpers import udp_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("snmpd"), reason="Net-SNMP snmpd not installed")]


class Snmpd:
    def __init__(self, tmp: Path) -> None:
        self.port = udp_port()
        self.community = secrets.token_urlsafe(12)
        self.auth = secrets.token_urlsafe(12)
        self.priv = secrets.token_urlsafe(12)
        state = tmp / "persist"
        state.mkdir()
        conf = tmp / "snmpd.conf"
        conf.write_text(
            f"agentAddress udp:127.0.0.1:{self.port}\n"
            f"[snmp] persistentDir {state}\n"
            f"rocommunity {self.community} 127.0.0.1\n"
            f"createUser monitor SHA {self.auth} AES {self.priv}\n"
            "rouser monitor priv\n",
            encoding="utf-8",
        )
        conf.chmod(0o600)
        self.proc = ManagedProcess(
            "snmpd", ["snmpd", "-f", "-C", "-c", str(conf), "-m", "", "-I", "-smux", "-Lo"], tmp / "snmpd.log"
        )

    def ready(self) -> bool:
        res = subprocess.run(
            ["snmpget", "-v2c", "-c", self.community, "-t", "0.3", "-r", "0", f"127.0.0.1:{self.port}", "1.3.6.1.2.1.1.3.0"],
            capture_output=True, check=False,
        )  # fmt: skip
        return res.returncode == 0


def running(agent: Snmpd) -> Iterator[Snmpd]:
    """Start `agent`, yield it once it answers, stop it by PID."""
    agent.proc.start()
    try:
        agent.proc.wait_ready(agent.ready, timeout=20)
        yield agent
    finally:
        agent.proc.stop()


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    yield from running(Snmpd(tmp_path_factory.mktemp("snmpd")))


def target(agent: Snmpd, creds: V2cCredentials | V3Credentials, fid: str) -> Target:
    return Target(fid, "Loopback", "administration", "north", "127.0.0.1", agent.port, 1, 1e9, creds)


@pytest.mark.parametrize("v3_engine", ["lean", "pysnmp"])
async def test_v2c_and_v3_read_the_hosts_loopback(snmpd: Snmpd, v3_engine: str) -> None:
    v2c = target(snmpd, V2cCredentials(snmpd.community.encode()), "lo-v2c")
    v3 = target(snmpd, V3Credentials("monitor", "SHA", snmpd.auth, "AES", snmpd.priv), "lo-v3")
    poller = Poller([v2c, v3], PollerSettings(interval=5, timeout=1, retries=1, v3_engine=v3_engine))  # type: ignore[arg-type]
    try:
        await poller.run_cycle()
        assert (poller._v3_lean is not None) == (v3_engine == "lean")  # the codec asked for did the work
        # Traffic on lo for longer than snmpd's interface cache (a few seconds), so the second
        # reading must have moved.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(20):
                for _ in range(100):
                    s.sendto(b"x" * 1000, ("127.0.0.1", 9))
                await asyncio.sleep(0.2)
        snap = await poller.run_cycle()
    finally:
        poller.close()
    for fid in ("lo-v2c", "lo-v3"):
        st = snap[fid]
        assert st.reachable and st.error is None, st
        assert st.oper_status is OperStatus.UP and st.admin_up and st.link_up
        assert st.if_name == "lo" and st.counters_64bit is True
        assert st.sys_name == socket.gethostname()
        # snmpd refreshes its counters from the kernel every few seconds: no exact rate, but not 0
        assert st.in_bps is not None and st.in_bps > 0
        assert st.out_bps is not None and st.out_bps >= 0 and st.utilisation is not None
        assert st.uptime_s is not None and st.uptime_s > 0


async def test_missing_interface_on_a_real_agent(snmpd: Snmpd) -> None:
    t = target(snmpd, V2cCredentials(snmpd.community.encode()), "gone")
    t = Target(t.facility_id, t.name, t.kind, t.region, t.host, t.port, 4242, t.bandwidth_bps, t.credentials)
    poller = Poller([t], PollerSettings(interval=5, timeout=1, retries=0))
    try:
        st = (await poller.run_cycle())["gone"]
    finally:
        poller.close()
    assert st.reachable and st.reason == "no_such_interface" and "4242" in (st.error or "")


async def test_same_v3_user_name_with_different_keys_on_two_routers(snmpd: Snmpd, tmp_path: Path) -> None:
    other = Snmpd(tmp_path)  # same user name 'monitor', its own random keys
    with other.proc:
        other.proc.wait_ready(other.ready, timeout=20)
        a = target(snmpd, V3Credentials("monitor", "SHA", snmpd.auth, "AES", snmpd.priv), "router-a")
        b = target(other, V3Credentials("monitor", "SHA", other.auth, "AES", other.priv), "router-b")
        poller = Poller([a, b], PollerSettings(interval=5, timeout=1, retries=1))
        try:
            snap = await poller.run_cycle()
        finally:
            poller.close()
    assert snap["router-a"].reachable and snap["router-b"].reachable, snap
