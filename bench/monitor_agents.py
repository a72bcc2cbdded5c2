"""The fast simulated routers: Net-SNMP `snmpd` processes, each answering on many UDP endpoints.

snmpd answers a GET in ~0.1 ms of CPU, so it is never the bottleneck of a poller benchmark
(snmpsim, single-threaded Python, would be). Each snmpd reports this host's interfaces: the
benchmark polls ifIndex 1 (lo), which has the 64-bit ifX counters.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from hdc.procs import ManagedProcess, wait_until

from .common import raise_open_files_limit

PORT_RANGE = (20000, 32000)  # below Linux's ephemeral range, so client sockets rarely take them
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"


@dataclass(frozen=True, order=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def pick_udp_ports(host: str, count: int, rng: random.Random | None = None) -> list[int]:
    """`count` distinct UDP ports free on `host` right now (held open together while choosing)."""
    rng = rng or random.Random()
    low, high = PORT_RANGE
    if count > high - low:
        raise ValueError(f"cannot pick {count} ports from {low}-{high}")
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for port in rng.sample(range(low, high), high - low):
            if len(ports) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    if len(ports) < count:
        raise RuntimeError(f"only {len(ports)} free UDP ports on {host}, wanted {count}")
    return ports


def snmp_get_ok(endpoint: Endpoint, community: str, timeout: float = 0.5) -> bool:
    """One real SNMP GET with Net-SNMP's `snmpget` (used as a readiness check)."""
    result = subprocess.run(
        ["snmpget", "-v2c", "-c", community, "-m", "", "-On", "-t", str(timeout), "-r", "0", str(endpoint), SYS_UPTIME],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and SYS_UPTIME in result.stdout


class SnmpdFleet:
    """Several snmpd processes, `per_process` endpoints each, one community; stopped by PID."""

    def __init__(
        self, root: Path, community: str, per_process: int = 1000, v3: tuple[str, str, str] | None = None
    ) -> None:
        if shutil.which("snmpd") is None:
            raise RuntimeError("snmpd is not installed (apt-get install snmpd snmp)")
        self.root = root
        self.community = community
        self.per_process = per_process
        self.v3 = v3  # (user, SHA key, AES key): an authPriv user besides the community
        self.endpoints: list[Endpoint] = []
        self.processes: list[ManagedProcess] = []
        self._stack = ExitStack()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def _config(self, index: int) -> Path:
        state = self.root / f"snmpd-{index}"
        (state / "persist").mkdir(parents=True, exist_ok=True)
        conf = state / "snmpd.conf"
        conf.write_text(
            "# written by bench.monitor_agents for one benchmark run\n"
            f"[snmp] persistentDir {state / 'persist'}\n"
            f"rocommunity {self.community} 127.0.0.0/8\n"
            # One log line per request would cost the agent more than the answer itself.
            "dontLogTCPWrappersConnects yes\n"
            + (
                f"createUser {self.v3[0]} SHA {self.v3[1]} AES {self.v3[2]}\nrouser {self.v3[0]} priv\n"
                if self.v3
                else ""
            ),
            encoding="utf-8",
        )
        conf.chmod(0o600)
        return conf

    def _start_one(self, index: int, endpoints: list[Endpoint]) -> ManagedProcess:
        conf = self._config(index)
        argv = ["snmpd", "-f", "-C", "-c", str(conf), "-m", "", "-I", "-smux", "-Lo"]
        argv += [f"udp:{e}" for e in endpoints]
        proc = ManagedProcess(f"snmpd-{index}", argv, self.root / f"snmpd-{index}" / "snmpd.log")
        proc.start()
        try:
            proc.wait_ready(lambda: all(snmp_get_ok(e, self.community) for e in (endpoints[0], endpoints[-1])), 30)
        except BaseException:
            proc.stop()
            raise
        return proc

    def start(self, hosts: list[str], per_host: int, attempts: int = 3) -> SnmpdFleet:
        """Serve `per_host` endpoints on each loopback address in `hosts`."""
        raise_open_files_limit(per_host * len(hosts) + 1024)
        rng = random.Random()
        for host in hosts:
            remaining = per_host
            while remaining > 0:
                want = min(self.per_process, remaining)
                for attempt in range(attempts):
                    # Ports already bound by this fleet fail the test bind, so they are not chosen twice.
                    chunk = [Endpoint(host, p) for p in sorted(pick_udp_ports(host, want, rng))]
                    try:
                        proc = self._start_one(len(self.processes), chunk)
                    except RuntimeError:
                        # A port was taken between choosing and binding: choose again.
                        if attempt == attempts - 1:
                            raise
                        continue
                    self._stack.callback(proc.stop)
                    self.processes.append(proc)
                    self.endpoints.extend(chunk)
                    break
                remaining -= want
        return self

    def check_all(self, sample: int = 20) -> None:
        """GET a spread of endpoints: every process must answer on the addresses it was given."""
        step = max(1, len(self.endpoints) // sample)
        for endpoint in self.endpoints[::step]:
            wait_until(lambda e=endpoint: snmp_get_ok(e, self.community), 5, f"snmpd on {endpoint}")  # type: ignore[misc]

    def stop(self) -> None:
        self._stack.close()
        self.processes.clear()

    def __enter__(self) -> SnmpdFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
