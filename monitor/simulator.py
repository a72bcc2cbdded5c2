"""A simulated national network: one snmpsim router per polled facility of a catalog.

Used by `make run` (`hdc monitor simulate --catalog lab`), by the monitor tests and by the
alerting tests. Every facility gets its own data (sysName, interface names, counters growing
at a rate derived from its id and contracted bandwidth), so a test knows the bit rates the
poller must find. Overrides give the awkward cases: no ifXTable (32-bit counters only), a
Counter32 about to wrap, the uplink under another ifIndex (the catalog's one vanished), a link
administratively or operationally down, or an agent that never answers (nothing listens).

All agents are served by one snmpsim process (`monitor.snmpsim_runner`), one UDP endpoint per
facility router address and port; the data file is chosen by endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import pwd
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hdc.errors import UserError
from hdc.procs import ManagedProcess
from inventory.model import Catalog, Facility, SnmpV2c, SnmpV3
from inventory.secrets import SecretError, resolve

from . import ber

REPO_ROOT = Path(__file__).resolve().parent.parent
TRANSPORT_DOMAIN = "1.3.6.1.6.1.1"  # snmpsim numbers its UDP/IPv4 endpoints under this OID
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
COUNTER32_MAX = 2**32


@dataclass(frozen=True)
class AgentOverride:
    """How one facility's simulated router departs from the ordinary."""

    silent: bool = False  # nothing listens at the endpoint: every request times out
    no_ifxtable: bool = False  # no IF-MIB ifXTable: only 32-bit counters, no ifName/ifHighSpeed
    wrap_after_s: float | None = None  # the 32-bit octet counters wrap this long after start
    if_index: int | None = None  # serve the uplink under this ifIndex instead of the catalog's
    oper_up: bool = True
    admin_up: bool = True
    in_bps: int | None = None  # bit rates instead of the ones derived from the facility id
    out_bps: int | None = None
    sys_uptime_s: int | None = None  # sysUpTime at simulator start
    records: Mapping[str, str] = field(default_factory=dict)  # OID -> snmprec 'tag|value', replacing or adding


@dataclass(frozen=True)
class ExpectedLink:
    """What a correct poller must read from one simulated facility."""

    facility_id: str
    host: str
    port: int
    if_index: int  # the index the uplink is served under
    sys_name: str
    if_name: str
    if_alias: str
    high_speed_mbps: int
    in_bps: int
    out_bps: int
    in_errors_per_s: int
    out_errors_per_s: int
    in_discards_per_s: int
    out_discards_per_s: int
    counters_64bit: bool
    oper_up: bool
    admin_up: bool
    silent: bool
    version: str


def _unit(facility_id: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{facility_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def expected_link(fac: Facility, override: AgentOverride | None = None) -> ExpectedLink:
    """The deterministic data of one facility's simulated router."""
    assert fac.link is not None and fac.link.router is not None and fac.link.uplink is not None
    assert fac.link.snmp is not None
    o = override or AgentOverride()
    bw_bps = fac.link.bandwidth_mbps * 1_000_000
    # Octet rates are whole bytes per second so that the expected bit rate is exact.
    in_bps = o.in_bps if o.in_bps is not None else 8 * int(bw_bps * (0.05 + 0.6 * _unit(fac.id, "in")) / 8)
    out_bps = o.out_bps if o.out_bps is not None else 8 * int(bw_bps * (0.02 + 0.3 * _unit(fac.id, "out")) / 8)
    uplink = fac.link.uplink
    return ExpectedLink(
        facility_id=fac.id,
        host=str(fac.link.router),
        port=fac.link.snmp_port,
        if_index=o.if_index if o.if_index is not None else uplink.if_index,
        sys_name=f"rtr-{fac.id}",
        if_name=uplink.if_name or f"ge-0/0/{uplink.if_index}",
        if_alias=f"uplink {fac.id} to the national health network",
        high_speed_mbps=max(fac.link.bandwidth_mbps, 1000),
        in_bps=in_bps,
        out_bps=out_bps,
        in_errors_per_s=1 + int(4 * _unit(fac.id, "ierr")),
        out_errors_per_s=int(3 * _unit(fac.id, "oerr")),
        in_discards_per_s=int(5 * _unit(fac.id, "idisc")),
        out_discards_per_s=1 + int(2 * _unit(fac.id, "odisc")),
        counters_64bit=not o.no_ifxtable,
        oper_up=o.oper_up,
        admin_up=o.admin_up,
        silent=o.silent,
        version=fac.link.snmp.version,
    )


def _counter(oid: str, tag: str, rate: int, initial: int, wrap: bool = False) -> tuple[str, str]:
    opts = f"rate={rate},initial={initial}" + (",wrap=1" if wrap else "")
    return oid, f"{tag}:numeric|{opts}"


def snmprec(exp: ExpectedLink, override: AgentOverride | None = None) -> str:
    """The snmpsim data file of one router: system group, ifTable, and ifXTable unless disabled."""
    o = override or AgentOverride()
    k = exp.if_index
    fid = exp.facility_id
    in_rate, out_rate = exp.in_bps // 8, exp.out_bps // 8
    if o.wrap_after_s is not None:
        in_init = (COUNTER32_MAX - int(in_rate * o.wrap_after_s)) % COUNTER32_MAX
        out_init = (COUNTER32_MAX - int(out_rate * o.wrap_after_s)) % COUNTER32_MAX
    else:
        in_init = int(_unit(fid, "in0") * 2**31)
        out_init = int(_unit(fid, "out0") * 2**31)
    uptime = o.sys_uptime_s if o.sys_uptime_s is not None else 3600 + int(_unit(fid, "up") * 86400 * 30)
    records: list[tuple[str, str]] = [
        ("1.3.6.1.2.1.1.1.0", f"4|hdc simulated router for {fid}"),
        ("1.3.6.1.2.1.1.2.0", "6|1.3.6.1.4.1.8072.3.2.10"),
        _counter("1.3.6.1.2.1.1.3.0", "67", 100, uptime * 100),
        ("1.3.6.1.2.1.1.5.0", f"4|{exp.sys_name}"),
        ("1.3.6.1.2.1.2.1.0", "2|2"),
    ]
    ifaces: list[tuple[int, bool]] = [(1, False)] if k != 1 else []
    ifaces.append((k, True))
    for idx, uplink in sorted(ifaces):
        t = "1.3.6.1.2.1.2.2.1"
        x = "1.3.6.1.2.1.31.1.1.1"
        name = exp.if_name if uplink else "lo0"
        ir, orate = (in_rate, out_rate) if uplink else (0, 0)
        ii, oi = (in_init, out_init) if uplink else (0, 0)
        oper = "1" if (not uplink or exp.oper_up) else "2"
        admin = "1" if (not uplink or exp.admin_up) else "2"
        records += [
            (f"{t}.1.{idx}", f"2|{idx}"),
            (f"{t}.2.{idx}", f"4|{name}"),
            (f"{t}.3.{idx}", "2|6" if uplink else "2|24"),
            (f"{t}.5.{idx}", f"66|{min(exp.high_speed_mbps * 1_000_000, 2**32 - 1)}"),
            (f"{t}.7.{idx}", f"2:writecache|value={admin}"),
            (f"{t}.8.{idx}", f"2:writecache|value={oper}"),
            _counter(f"{t}.10.{idx}", "65", ir, ii, wrap=True),
            _counter(f"{t}.13.{idx}", "65", exp.in_discards_per_s if uplink else 0, 17, wrap=True),
            _counter(f"{t}.14.{idx}", "65", exp.in_errors_per_s if uplink else 0, 3, wrap=True),
            _counter(f"{t}.16.{idx}", "65", orate, oi, wrap=True),
            _counter(f"{t}.19.{idx}", "65", exp.out_discards_per_s if uplink else 0, 5, wrap=True),
            _counter(f"{t}.20.{idx}", "65", exp.out_errors_per_s if uplink else 0, 0, wrap=True),
        ]
        if exp.counters_64bit:
            records += [
                (f"{x}.1.{idx}", f"4|{name}"),
                _counter(f"{x}.6.{idx}", "70", ir, ii),
                _counter(f"{x}.10.{idx}", "70", orate, oi),
                (f"{x}.15.{idx}", f"66|{exp.high_speed_mbps if uplink else 0}"),
                (f"{x}.18.{idx}", f"4|{exp.if_alias if uplink else ''}"),
            ]
    if o.records:
        records = [r for r in records if r[0] not in o.records] + list(o.records.items())
    records.sort(key=lambda r: tuple(int(p) for p in r[0].split(".")))
    return "".join(f"{oid}|{val}\n" for oid, val in records)


@dataclass(frozen=True)
class _V3User:
    user: str
    auth_key: str
    auth_proto: str
    priv_key: str
    priv_proto: str


def _secret(ref: str, fac: Facility, what: str) -> str:
    try:
        value = resolve(ref)
    except SecretError as exc:
        raise UserError(f"facility {fac.id}: {what}: {exc}") from None
    if not value or any(c.isspace() for c in value):
        raise UserError(f"facility {fac.id}: {what} ({ref}) is empty or contains white space")
    if what != "community" and len(value) < 8:
        raise UserError(f"facility {fac.id}: {what} ({ref}) must be at least 8 characters (RFC 3414)")
    return value


@dataclass
class Simulator:
    """One snmpsim process serving a router per polled facility; a context manager.

    `expected` maps facility id to the data its router serves. `restart()` simulates a reboot
    of every router (sysUpTime and counters start again).
    """

    catalog: Catalog
    workdir: Path
    overrides: Mapping[str, AgentOverride] = field(default_factory=dict)
    facility_ids: set[str] | None = None  # restrict to these facilities (default: every polled one)
    start_timeout: float = 60.0
    expected: dict[str, ExpectedLink] = field(default_factory=dict, init=False)
    process: ManagedProcess | None = field(default=None, init=False)
    _datadir: Path | None = field(default=None, init=False)
    _communities: dict[str, str] = field(default_factory=dict, init=False)  # facility -> community
    _v3: dict[str, _V3User] = field(default_factory=dict, init=False)
    _answered: set[str] = field(default_factory=set, init=False)

    def facilities(self) -> list[Facility]:
        return [f for f in self.catalog.polled_facilities() if self.facility_ids is None or f.id in self.facility_ids]

    def _prepare(self) -> list[str]:
        """Write the data tree and return snmpsim's engine options."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        # snmpsim reads its data after dropping to 'nobody': the tree must be world-readable,
        # which a pytest tmp_path (mode 0700) is not. Use a private dir under /tmp instead.
        self._datadir = Path(tempfile.mkdtemp(prefix="hdc-snmpsim-"))
        self._datadir.chmod(0o755)
        data = self._datadir / "data"
        data.mkdir()
        cache = self._datadir / "cache"
        cache.mkdir()
        opts = ["--v3-engine-id=auto", f"--data-dir={data}"]
        endpoints: list[str] = []
        users: dict[str, _V3User] = {}
        communities: set[str] = set()
        seen_endpoints: dict[tuple[str, int], str] = {}
        for fac in self.facilities():
            assert fac.link is not None and fac.link.snmp is not None
            o = self.overrides.get(fac.id)
            exp = expected_link(fac, o)
            self.expected[fac.id] = exp
            if exp.silent:
                continue
            if not ipaddress.ip_address(exp.host).is_loopback:
                raise UserError(
                    f"facility {fac.id}: router {exp.host} is not a loopback address; the simulator serves each "
                    "router on its own address on this machine, so it needs a catalog with 127.x.y.z routers "
                    "(like the lab catalog)"
                )
            key = (exp.host, exp.port)
            if key in seen_endpoints:
                raise UserError(
                    f"facility {fac.id}: router {exp.host}:{exp.port} is also {seen_endpoints[key]}'s; "
                    "the simulator needs one address and port per facility"
                )
            seen_endpoints[key] = fac.id
            domain = f"{TRANSPORT_DOMAIN}.{len(endpoints)}"
            endpoints.append(f"--agent-udpv4-endpoint={exp.host}:{exp.port}")
            snmp = fac.link.snmp
            if isinstance(snmp, SnmpV2c):
                community = _secret(snmp.community_ref, fac, "community")
                if "/" in community:
                    raise UserError(f"facility {fac.id}: the simulator cannot serve a community containing '/'")
                self._communities[fac.id] = community
                communities.add(community)
                # snmpsim maps a community to the context md5(community), then looks for
                # <context>/<transport-id>.snmprec: one file per endpoint.
                ctx = hashlib.md5(community.encode()).hexdigest()
                path = data / ctx / f"{domain}.snmprec"
            else:
                assert isinstance(snmp, SnmpV3)
                user = _V3User(
                    snmp.user,
                    _secret(snmp.auth_key_ref, fac, "SNMPv3 auth key"),
                    snmp.auth_protocol,
                    _secret(snmp.priv_key_ref, fac, "SNMPv3 priv key"),
                    snmp.priv_protocol,
                )
                if users.setdefault(snmp.user, user) != user:
                    raise UserError(
                        f"facility {fac.id}: SNMPv3 user {snmp.user} has other keys at another facility; "
                        "one simulator engine holds one set of keys per user"
                    )
                self._v3[fac.id] = user
                path = data / f"{domain}.snmprec"  # context "" → <transport-id>.snmprec
            path.parent.mkdir(exist_ok=True)
            path.write_text(snmprec(exp, o), encoding="utf-8")
        for community in communities:
            # The community must exist for snmpsim to accept it; this file answers only for
            # requests on endpoints without their own data (none here).
            (data / f"{community}.snmprec").write_text("1.3.6.1.2.1.1.5.0|4|hdc-simulator\n", encoding="utf-8")
        for u in users.values():
            opts += [
                f"--v3-user={u.user}",
                f"--v3-auth-key={u.auth_key}",
                f"--v3-auth-proto={u.auth_proto}",
                f"--v3-priv-key={u.priv_key}",
                f"--v3-priv-proto={u.priv_proto}",
            ]
        opts += endpoints
        args_file = self._datadir / "args"
        args_file.write_text("\n".join(opts) + "\n", encoding="utf-8")
        for p in self._datadir.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        args_file.chmod(0o600)  # holds the keys; snmpsim reads it before dropping root
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(cache, nobody.pw_uid, nobody.pw_gid)
        return [f"--args-from-file={args_file}", f"--cache-dir={cache}"]

    def start(self) -> Simulator:
        if self.process is not None and self.process.alive():
            return self
        if not self.expected:
            try:
                extra = self._prepare()
            except BaseException:
                self.stop()
                raise
        else:
            assert self._datadir is not None
            extra = [f"--args-from-file={self._datadir / 'args'}", f"--cache-dir={self._datadir / 'cache'}"]
        _raise_open_files(len(self.expected) + 256)  # one socket per agent; snmpsim inherits the limit
        argv = [sys.executable, "-m", "monitor.snmpsim_runner", "--log-level=error", *extra]
        if os.getuid() == 0:
            argv += ["--process-user=nobody", "--process-group=nogroup"]
        self.process = ManagedProcess(
            "snmpsim",
            argv,
            self.workdir / "snmpsim.log",
            env={"PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
            cwd=REPO_ROOT,
            stop_timeout=5,
        )
        self.process.start()
        self._answered.clear()
        # snmpsim answers ~600 requests/s and builds each data file's index on first use
        timeout = self.start_timeout + len(self.expected) / 40
        try:
            self.process.wait_ready(self._all_answer, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _all_answer(self) -> bool:
        """True once every agent has answered (each is asked until it has, a few hundred at a time)."""
        pending = {f: e for f, e in self.expected.items() if not e.silent and f not in self._answered}
        v2c = dict(list((f, e) for f, e in pending.items() if f in self._communities)[:300])
        self._answered |= _v2c_answering(v2c, self._communities)
        for fid, e in pending.items():
            if fid in self._v3 and self._v3_answers(e, self._v3[fid]):
                self._answered.add(fid)
        return all(e.silent or f in self._answered for f, e in self.expected.items())

    def _v3_answers(self, exp: ExpectedLink, u: _V3User) -> bool:
        res = subprocess.run(
            ["snmpget", "-v3", "-l", "authPriv", "-u", u.user, "-a", u.auth_proto, "-A", u.auth_key, "-x",
             u.priv_proto, "-X", u.priv_key, "-t", "0.5", "-r", "0", "-On",
             f"{exp.host}:{exp.port}", ber.oid_str(SYS_NAME)],
            capture_output=True, text=True, check=False, timeout=10,
        )  # fmt: skip
        return res.returncode == 0 and exp.sys_name in res.stdout

    def restart(self) -> None:
        """Stop and start snmpsim with the same data: every router 'reboots'."""
        if self.process is not None:
            self.process.stop()
        self.process = None
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self._datadir is not None:
            shutil.rmtree(self._datadir, ignore_errors=True)
            self._datadir = None
            self.expected.clear()

    def community(self, facility_id: str) -> str:
        return self._communities[facility_id]

    def set_oper_status(self, facility_id: str, up: bool) -> None:
        """Take a link down (or up) with Net-SNMP's `snmpset`, as a test or an operator would."""
        exp = self.expected[facility_id]
        oid = f"1.3.6.1.2.1.2.2.1.8.{exp.if_index}"
        if facility_id in self._communities:
            auth = ["-v2c", "-c", self._communities[facility_id]]
        else:
            u = self._v3[facility_id]
            auth = ["-v3", "-l", "authPriv", "-u", u.user, "-a", u.auth_proto, "-A", u.auth_key, "-x",
                    u.priv_proto, "-X", u.priv_key]  # fmt: skip
        res = subprocess.run(
            ["snmpset", *auth, "-t", "2", "-r", "2", f"{exp.host}:{exp.port}", oid, "i", "1" if up else "2"],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"snmpset on {facility_id} failed: {res.stderr.strip() or res.stdout.strip()}")

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _v2c_answering(links: Mapping[str, ExpectedLink], communities: Mapping[str, str]) -> set[str]:
    """Send one GET sysName to each v2c agent over one socket; the facilities that answered right."""
    if not links:
        return set()
    rng = random.Random()
    waiting: dict[int, ExpectedLink] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for fid, exp in links.items():
            rid = rng.randint(ber.REQUEST_ID_MIN, ber.REQUEST_ID_MAX)
            msg = ber.prepare_get(communities[fid].encode(), (SYS_NAME,)).with_request_id(rid)
            waiting[rid] = exp
            with contextlib.suppress(OSError):
                sock.sendto(msg, (exp.host, exp.port))
        deadline = time.monotonic() + 1.0 + len(links) / 500
        sock.settimeout(0.2)
        while waiting and time.monotonic() < deadline:
            try:
                data = sock.recv(65535)
            except (TimeoutError, OSError):
                continue
            try:
                resp = ber.decode_response(data)
            except ber.BerError:
                continue
            exp_or_none = waiting.get(resp.request_id)
            if exp_or_none is not None and resp.varbinds and resp.varbinds[0].value == exp_or_none.sys_name.encode():
                del waiting[resp.request_id]
    answered = {e.facility_id for e in links.values()} - {e.facility_id for e in waiting.values()}
    return answered


@contextlib.contextmanager
def simulate(
    catalog: Catalog, workdir: Path, overrides: Mapping[str, AgentOverride] | None = None
) -> Iterator[Simulator]:
    with Simulator(catalog, workdir, dict(overrides or {})) as sim:
        yield sim
