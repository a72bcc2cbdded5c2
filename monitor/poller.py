"""The SNMP poller: one GET per facility uplink per cycle, v2c on a lean hot path, v3 via pysnmp.

SNMPv2c targets share one UDP socket; requests are encoded once per target (`monitor.ber`) and
answers are matched by request-id, validated and turned into a `LinkState` in the datagram
callback, with no coroutine per target. A bounded window of requests is in flight; a target
that does not answer within its timeout is retried, then marked failed, so a dead router costs
the cycle at most timeout × (retries + 1). Targets that keep failing back off exponentially.
SNMPv3 (authPriv) targets go through pysnmp's asyncio API, bounded by the same window.

Descriptive fields (sysName, sysDescr, ifName, ifAlias, ifHighSpeed, and whether the device
has an ifXTable) ride along in the first poll of a target and then every `discovery_every`
polls, in the same GET: no extra round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import ber, usm
from .rates import Gap, Sample, ambiguous_wrap, counter_rate, plausible_octets_per_s, uptime_gap
from .settings import PollerSettings
from .state import LinkState, OperStatus
from .targets import Target, V2cCredentials, V3Credentials

log = logging.getLogger("hdc.monitor.poller")

SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)

OPER_STATUS = {
    1: OperStatus.UP,
    2: OperStatus.DOWN,
    3: OperStatus.TESTING,
    4: OperStatus.UNKNOWN,
    5: OperStatus.DORMANT,
    6: OperStatus.NOT_PRESENT,
    7: OperStatus.LOWER_LAYER_DOWN,
}

# Columns read every cycle, by name, with the table they live in.
_COLUMNS = {
    "admin": (IF_ENTRY, 7),
    "oper": (IF_ENTRY, 8),
    "in_hc": (IFX_ENTRY, 6),
    "out_hc": (IFX_ENTRY, 10),
    "in_octets": (IF_ENTRY, 10),
    "out_octets": (IF_ENTRY, 16),
    "in_errors": (IF_ENTRY, 14),
    "out_errors": (IF_ENTRY, 20),
    "in_discards": (IF_ENTRY, 13),
    "out_discards": (IF_ENTRY, 19),
    "if_descr": (IF_ENTRY, 2),
    "if_speed": (IF_ENTRY, 5),
    "if_name": (IFX_ENTRY, 1),
    "if_high_speed": (IFX_ENTRY, 15),
    "if_alias": (IFX_ENTRY, 18),
}
_SCALARS = {"uptime": SYS_UPTIME, "sys_descr": SYS_DESCR, "sys_name": SYS_NAME}
_RATE_FIELDS = ("in_errors", "out_errors", "in_discards", "out_discards")
POLL_64 = ("uptime", "admin", "oper", "in_hc", "out_hc", *_RATE_FIELDS)
POLL_32 = ("uptime", "admin", "oper", "in_octets", "out_octets", *_RATE_FIELDS)
FULL = (
    *POLL_64,
    "in_octets",
    "out_octets",
    "sys_descr",
    "sys_name",
    "if_name",
    "if_alias",
    "if_high_speed",
    "if_speed",
    "if_descr",
)
# Discovery without the text fields, for agents that answer the full one with tooBig.
FULL_LEAN = (*POLL_64, "in_octets", "out_octets", "if_high_speed", "if_speed")
TOO_BIG = 1  # SNMP error-status tooBig
OID_NAMES = {
    "uptime": "sysUpTime.0",
    "sys_descr": "sysDescr.0",
    "sys_name": "sysName.0",
    "admin": "ifAdminStatus",
    "oper": "ifOperStatus",
    "in_hc": "ifHCInOctets",
    "out_hc": "ifHCOutOctets",
    "in_octets": "ifInOctets",
    "out_octets": "ifOutOctets",
    "in_errors": "ifInErrors",
    "out_errors": "ifOutErrors",
    "in_discards": "ifInDiscards",
    "out_discards": "ifOutDiscards",
    "if_descr": "ifDescr",
    "if_speed": "ifSpeed",
    "if_name": "ifName",
    "if_high_speed": "ifHighSpeed",
    "if_alias": "ifAlias",
}


@functools.lru_cache(maxsize=4096)
def oid_bodies_for(names: tuple[str, ...], if_index: int) -> tuple[bytes, ...]:
    """Encoded OIDs, shared by every target with this ifIndex (most routers use a handful)."""
    return tuple(ber.oid_body(o) for o in oids_for(names, if_index))


@functools.lru_cache(maxsize=4096)
def oids_for(names: tuple[str, ...], if_index: int) -> tuple[tuple[int, ...], ...]:
    out: list[tuple[int, ...]] = []
    for n in names:
        if n in _SCALARS:
            out.append(_SCALARS[n])
        else:
            table, col = _COLUMNS[n]
            out.append((*table, col, if_index))
    return tuple(out)


# Failures after which the router does not count as reachable (and back-off applies): it said
# nothing, or nothing we could authenticate or parse. Other failures are answers about the link.
UNREACHABLE = frozenset({"timeout", "auth", "bad_response", "snmp_error"})


class PollError(Exception):
    """A failed poll of one target: `reason` is a metric label, the message is for operators."""

    def __init__(self, reason: str, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status  # the agent's error-status, when it sent one


Values = dict[str, tuple[int, Any]]  # name -> (BER tag, value)


@dataclass(slots=True)
class Runtime:
    """Everything the poller remembers about one target between cycles."""

    target: Target
    state: LinkState
    has_ifx: bool | None = None  # None until the first full poll tells
    polls_since_full: int = 0
    prev: Sample | None = None
    prev_counters: dict[str, int] = field(default_factory=dict)
    prev_bits: int = 0
    failures: int = 0
    next_due: float = 0.0  # monotonic time before which the target is skipped (back-off)
    logged: str | None = None  # the problem last logged, so each is logged once
    sys_descr: str | None = None
    prepared: tuple[tuple[str, ...], ber.PreparedGet] | None = None
    full_names: tuple[str, ...] = FULL
    v3_transport: Any = None

    def names_for_poll(self, discovery_every: int) -> tuple[str, ...]:
        if self.has_ifx is None or self.polls_since_full >= discovery_every:
            return self.full_names
        return POLL_64 if self.has_ifx else POLL_32

    def shrink_discovery(self) -> bool:
        """After tooBig on the full discovery GET: use the lean one. False if already lean."""
        if self.full_names is FULL_LEAN:
            return False
        self.full_names = FULL_LEAN
        log.warning(
            "%s (%s): the router answers the discovery request with tooBig; reading it without "
            "sysName, sysDescr, ifName and ifAlias",
            self.target.facility_id,
            self.target.name,
        )
        return True


def initial_state(t: Target) -> LinkState:
    return LinkState(
        facility_id=t.facility_id,
        reachable=False,
        oper_status=OperStatus.UNKNOWN,
        admin_up=False,
        consecutive_failures=0,
        last_poll=0.0,
        last_success=None,
        in_bps=None,
        out_bps=None,
        utilisation=None,
        in_errors_per_s=None,
        out_errors_per_s=None,
        in_discards_per_s=None,
        out_discards_per_s=None,
        error=t.config_error,
        reason="config" if t.config_error else None,
        bandwidth_bps=t.bandwidth_bps,
    )


@dataclass
class CycleStats:
    started: float = 0.0
    duration: float = 0.0
    polled: int = 0  # targets attempted this cycle
    failed: int = 0
    skipped_backoff: int = 0
    requests: int = 0
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def _text(tag: int, value: Any) -> str | None:
    if tag == ber.OCTET_STRING and isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return None


def _expect(values: Values, name: str, tags: Iterable[int], where: str) -> Any:
    tag, value = values[name]
    if tag in ber.EXCEPTION_TAGS:
        raise PollError("no_such_object", f"{OID_NAMES[name]}{where}: {ber.EXCEPTION_TAGS[tag]}")
    tags = tuple(tags)
    if tag not in tags:
        want = " or ".join(ber.TAG_NAMES[t] for t in tags)
        raise PollError("bad_type", f"{OID_NAMES[name]}{where} is {ber.TAG_NAMES.get(tag, hex(tag))}, expected {want}")
    return value


class Poller:
    """Polls `targets`; `await run_cycle()` polls every due target once and returns the snapshot."""

    def __init__(self, targets: Sequence[Target], settings: PollerSettings | None = None) -> None:
        self.settings = settings or PollerSettings()
        ids = [t.facility_id for t in targets]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate facility ids among targets")
        self.runtimes = {t.facility_id: Runtime(t, initial_state(t)) for t in targets}
        self.stats = CycleStats()
        self.queue_depth = 0
        self.in_flight = 0
        self.errors_total: dict[str, int] = {}
        self.cycles = 0
        self.polled_total = 0
        self.failed_total = 0
        self._udp: UdpSocket | None = None
        # pysnmp keeps one key set per SNMPv3 user name in an engine: routers sharing a user name
        # with different keys get engines of their own.
        self._v3_engines: dict[tuple[str, str, str, str, str], Any] = {}
        self._v3_lean: Any = None  # v3lean.LeanV3, created on first use
        self._next_id = random.randint(ber.REQUEST_ID_MIN, ber.REQUEST_ID_MAX)
        for rt in self.runtimes.values():
            if rt.target.config_error:
                self._log_problem(rt, "config", rt.target.config_error)

    # -- public API -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, LinkState]:
        return {fid: rt.state for fid, rt in self.runtimes.items()}

    @property
    def targets(self) -> list[Target]:
        return [rt.target for rt in self.runtimes.values()]

    async def run_cycle(self) -> dict[str, LinkState]:
        """Poll every target that is due (not configured wrong, not backing off) once."""
        loop = asyncio.get_running_loop()
        stats = CycleStats(started=time.time())
        t0 = time.perf_counter()
        now = time.monotonic()
        v2c: list[Runtime] = []
        v3: list[Runtime] = []
        for rt in self.runtimes.values():
            t = rt.target
            if t.config_error or t.credentials is None:
                continue
            if rt.next_due > now:
                stats.skipped_backoff += 1
                continue
            (v2c if isinstance(t.credentials, V2cCredentials) else v3).append(rt)
        stats.polled = len(v2c) + len(v3)
        self.queue_depth = stats.polled
        self.stats = stats
        for rt in v3:
            # Importing pysnmp and building its engines takes a while: do it before any v2c
            # request is in flight, not while answers wait.
            if not self._lean_v3(rt):
                self._v3_engine_for(rt)
        jobs = []
        if v2c:
            udp = self._socket(loop)
            jobs.append(_V2cCycle(self, udp, v2c, stats).run())
        if v3:
            jobs.append(self._v3_cycle(v3, stats))
        if jobs:
            await asyncio.gather(*jobs)
        stats.duration = time.perf_counter() - t0
        self.cycles += 1
        self.polled_total += stats.polled
        self.failed_total += stats.failed
        for reason, n in stats.errors.items():
            self.errors_total[reason] = self.errors_total.get(reason, 0) + n
        self.queue_depth = 0
        return self.snapshot()

    async def run_forever(self, after_cycle: Callable[[dict[str, LinkState]], Any] | None = None) -> None:
        """Cycle every `interval` seconds (measured start to start) until cancelled."""
        while True:
            start = time.monotonic()
            snap = await self.run_cycle()
            if after_cycle is not None:
                res = after_cycle(snap)
                if asyncio.iscoroutine(res):
                    await res
            await asyncio.sleep(max(0.0, self.settings.interval - (time.monotonic() - start)))

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._v3_lean is not None:
            self._v3_lean.close()
            self._v3_lean = None
        for engine in {id(e): e for e in self._v3_engines.values()}.values():
            with contextlib.suppress(Exception):
                engine.close_dispatcher()
        self._v3_engines.clear()

    def _lean_v3(self, rt: Runtime) -> bool:
        """Whether this v3 target goes through the lean USM codec (else pysnmp)."""
        c = rt.target.credentials
        assert isinstance(c, V3Credentials)
        return self.settings.v3_engine == "lean" and usm.supported(c.auth_protocol, c.priv_protocol)

    def _v3_lean_client(self) -> Any:
        if self._v3_lean is None:
            from .v3lean import LeanV3

            self._v3_lean = LeanV3(asyncio.get_running_loop(), self._bind_address())
        return self._v3_lean

    async def _v3_get(self, rt: Runtime, names: tuple[str, ...]) -> tuple[Values, float]:
        if self._lean_v3(rt):
            return await self._v3_lean_client().get(rt, names, self.settings, self.request_id())
        from . import v3

        return await v3.get(self._v3_engine_for(rt), rt, names, self.settings)

    def _v3_engine_for(self, rt: Runtime) -> Any:
        """An engine that holds this target's user with these keys (shared whenever possible)."""
        c = rt.target.credentials
        assert isinstance(c, V3Credentials)
        key = (c.user, c.auth_protocol, c.auth_key, c.priv_protocol, c.priv_key)
        engine = self._v3_engines.get(key)
        if engine is None:
            from . import v3 as v3mod

            taken = {id(e) for k, e in self._v3_engines.items() if k[0] == c.user}
            engine = next((e for e in self._v3_engines.values() if id(e) not in taken), None)
            if engine is None:
                engine = v3mod.new_engine()
            self._v3_engines[key] = engine
        return engine

    # -- shared helpers -----------------------------------------------------------------------

    def request_id(self) -> int:
        rid = self._next_id
        self._next_id = rid + 1 if rid < ber.REQUEST_ID_MAX else ber.REQUEST_ID_MIN
        return rid

    def prepared(self, rt: Runtime, names: tuple[str, ...]) -> ber.PreparedGet:
        """The target's encoded request; only the per-cycle one is kept (the discovery one, used
        every `discovery_every` polls, is cheaper to rebuild than to hold for 10,000 targets)."""
        p = rt.prepared
        if p is None or p[0] is not names:
            assert isinstance(rt.target.credentials, V2cCredentials)
            idx = rt.target.if_index
            req = ber.prepare_get(
                rt.target.credentials.community, oids_for(names, idx), bodies=oid_bodies_for(names, idx)
            )
            p = (names, req)
            if names is not FULL and names is not FULL_LEAN:
                rt.prepared = p
        return p[1]

    def _bind_address(self) -> str:
        if self.settings.bind_address:
            return self.settings.bind_address
        hosts = [rt.target.host for rt in self.runtimes.values() if rt.target.host]
        loopback = all(ipaddress.ip_address(h).is_loopback for h in hosts)
        return "127.0.0.1" if loopback else "0.0.0.0"

    def _socket(self, loop: asyncio.AbstractEventLoop) -> UdpSocket:
        if self._udp is None or self._udp.closed or self._udp.loop is not loop:
            if self._udp is not None:
                self._udp.close()
            self._udp = UdpSocket(loop, self._bind_address())
        return self._udp

    # -- outcome of one poll ------------------------------------------------------------------

    def record_success(self, rt: Runtime, names: tuple[str, ...], values: Values, arrived: float) -> None:
        """Validate an answer and update the target's state; PollError for unusable answers."""
        t = rt.target
        where = f".{t.if_index}"
        wall = time.time()
        full = names is FULL or names is FULL_LEAN
        tag, up = values["uptime"]
        uptime = up if tag == ber.TIMETICKS else None
        if full:
            hc_tag = values["in_hc"][0]
            rt.has_ifx = hc_tag not in ber.EXCEPTION_TAGS
            rt.polls_since_full = 0
        else:
            rt.polls_since_full += 1
        admin = _expect(values, "admin", (ber.INTEGER,), where)
        oper = _expect(values, "oper", (ber.INTEGER,), where)
        if oper not in OPER_STATUS:
            raise PollError("bad_value", f"ifOperStatus{where} = {oper} is not a valid IF-MIB status")
        if rt.has_ifx:
            bits, in_name, out_name, tags = 64, "in_hc", "out_hc", (ber.COUNTER64,)
        else:
            bits, in_name, out_name, tags = 32, "in_octets", "out_octets", (ber.COUNTER32,)
        in_oct = _expect(values, in_name, tags, where)
        out_oct = _expect(values, out_name, tags, where)
        counters = {"in": in_oct, "out": out_oct}
        notes = []
        for name in _RATE_FIELDS:
            tag, value = values[name]
            if tag == ber.COUNTER32:
                counters[name] = value
            else:
                notes.append(f"{OID_NAMES[name]}{where} unusable ({ber.TAG_NAMES.get(tag, hex(tag))})")

        st = rt.state
        sys_name, if_name, if_alias, speed = st.sys_name, st.if_name, st.if_alias, st.speed_bps
        if full:
            if "sys_name" in values:  # not in the lean discovery
                sys_name = _text(*values["sys_name"]) or sys_name
                rt.sys_descr = _text(*values["sys_descr"]) or rt.sys_descr
                if_name = _text(*values["if_name"]) or _text(*values["if_descr"]) or if_name
                if_alias = _text(*values["if_alias"])
            hs_tag, hs = values["if_high_speed"]
            sp_tag, sp = values["if_speed"]
            if hs_tag == ber.GAUGE32 and hs:
                speed = hs * 1e6
            elif sp_tag == ber.GAUGE32 and sp:
                speed = float(sp)
            else:
                speed = None
        bandwidth = t.bandwidth_bps or speed

        sample = Sample(arrived, uptime)
        rates: dict[str, float | None] = dict.fromkeys(("in", "out", *_RATE_FIELDS))
        gap: Gap | None = None
        if rt.prev is None or not rt.prev_counters:
            gap = Gap.FIRST
        elif rt.prev_bits != bits:
            gap = Gap.WIDTH_CHANGED
        else:
            gap = uptime_gap(rt.prev, sample)
        if gap is None:
            assert rt.prev is not None
            dt = arrived - rt.prev.t
            if uptime is not None and rt.prev.uptime is not None:
                # The agent's own clock stamps the values when it reads them, free of network and
                # queueing jitter: use it when it agrees with ours (within 10 %).
                agent_dt = ((uptime - rt.prev.uptime) % 2**32) / 100
                if agent_dt > 0 and abs(agent_dt - dt) <= 0.1 * dt:
                    dt = agent_dt
            max_octets = plausible_octets_per_s(max(speed or 0.0, t.bandwidth_bps or 0.0))
            max_pkts = max_octets / 64 if max_octets else None
            for key, value in counters.items():
                old = rt.prev_counters.get(key)
                if old is None:
                    continue
                width, limit = (bits, max_octets) if key in ("in", "out") else (32, max_pkts)
                rate, why = counter_rate(old, value, dt, width, limit)
                rates[key] = rate
                if why is not None and key in ("in", "out"):
                    gap = why
        if gap not in (None, Gap.FIRST):
            log.info("%s (%s): no rate this interval: %s", t.facility_id, t.name, gap.value)
        rt.prev = sample
        rt.prev_counters = counters
        rt.prev_bits = bits

        in_bps = rates["in"] * 8 if rates["in"] is not None else None
        out_bps = rates["out"] * 8 if rates["out"] is not None else None
        util = None
        if bandwidth and in_bps is not None and out_bps is not None:
            util = max(in_bps, out_bps) / bandwidth
        rt.failures = 0
        rt.next_due = 0.0
        rt.state = LinkState(
            facility_id=t.facility_id,
            reachable=True,
            oper_status=OPER_STATUS[oper],
            admin_up=admin == 1,
            consecutive_failures=0,
            last_poll=wall,
            last_success=wall,
            in_bps=in_bps,
            out_bps=out_bps,
            utilisation=util,
            in_errors_per_s=rates["in_errors"],
            out_errors_per_s=rates["out_errors"],
            in_discards_per_s=rates["in_discards"],
            out_discards_per_s=rates["out_discards"],
            error=None,
            reason=None,
            sys_name=sys_name,
            if_name=if_name,
            if_alias=if_alias,
            bandwidth_bps=bandwidth,
            speed_bps=speed,
            uptime_s=uptime / 100 if uptime is not None else None,
            counters_64bit=bits == 64,
        )
        if rt.logged is not None:
            log.info("%s (%s): answering again (was: %s)", t.facility_id, t.name, rt.logged)
            rt.logged = None
        if bits == 32 and ambiguous_wrap(32, max(speed or 0.0, t.bandwidth_bps or 0.0), self.settings.interval):
            notes.append(
                "no ifXTable: 32-bit octet counters can wrap more than once per poll interval at this speed; "
                "rates may be too low (poll more often or enable ifXTable)"
            )
        if notes:
            self._log_problem(rt, "partial", "; ".join(notes), level=logging.INFO)

    def record_failure(self, rt: Runtime, reason: str, message: str, stats: CycleStats) -> None:
        """A poll that gave nothing usable: keep the last descriptive fields, drop rates, back off."""
        t = rt.target
        answered = reason not in UNREACHABLE
        wall = time.time()
        rt.failures += 1
        stats.failed += 1
        stats.errors[reason] = stats.errors.get(reason, 0) + 1
        # Exponential back-off for targets that keep failing: after the k-th failure in a row
        # (k >= 2) wait 2^(k-1) intervals, up to backoff_max. A first miss is retried next cycle.
        if not answered and rt.failures >= 2:
            delay = min(self.settings.interval * 2 ** (rt.failures - 1), self.settings.backoff_max)
            rt.next_due = time.monotonic() + delay - self.settings.interval / 2
        # Rates need two consecutive good samples: forget the previous one.
        rt.prev = None
        rt.prev_counters = {}
        st = rt.state
        oper = OperStatus.NOT_PRESENT if reason == "no_such_interface" else OperStatus.UNKNOWN
        rt.state = LinkState(
            facility_id=t.facility_id,
            reachable=answered,
            oper_status=oper,
            admin_up=st.admin_up if answered else False,
            consecutive_failures=rt.failures,
            last_poll=wall,
            last_success=st.last_success,
            in_bps=None,
            out_bps=None,
            utilisation=None,
            in_errors_per_s=None,
            out_errors_per_s=None,
            in_discards_per_s=None,
            out_discards_per_s=None,
            error=message,
            reason=reason,
            sys_name=st.sys_name,
            if_name=st.if_name,
            if_alias=st.if_alias,
            bandwidth_bps=st.bandwidth_bps,
            speed_bps=st.speed_bps,
            uptime_s=st.uptime_s,
            counters_64bit=st.counters_64bit,
        )
        self._log_problem(rt, reason, message)

    def _log_problem(self, rt: Runtime, reason: str, message: str, level: int = logging.WARNING) -> None:
        key = f"{reason}: {message}"
        if rt.logged != key:
            rt.logged = key
            log.log(level, "%s (%s) %s:%s: %s", rt.target.facility_id, rt.target.name, rt.target.host,
                    rt.target.port, message)  # fmt: skip

    def handle_values(
        self, rt: Runtime, names: tuple[str, ...], values: Values, arrived: float, stats: CycleStats
    ) -> None:
        try:
            self._check_interface(rt, values)
            self.record_success(rt, names, values, arrived)
        except PollError as exc:
            self.record_failure(rt, exc.reason, str(exc), stats)

    def _check_interface(self, rt: Runtime, values: Values) -> None:
        tag = values["oper"][0]
        if tag in (ber.NO_SUCH_INSTANCE, ber.NO_SUCH_OBJECT):
            raise PollError(
                "no_such_interface",
                f"ifIndex {rt.target.if_index} does not exist on the router (interface removed or renumbered?); "
                "check link.uplink.if_index in the catalog",
            )

    # -- SNMPv3 (lean USM codec, or pysnmp for what it does not cover) -------------------------

    async def _v3_cycle(self, rts: list[Runtime], stats: CycleStats) -> None:
        sem = asyncio.Semaphore(self.settings.concurrency)

        async def one(rt: Runtime) -> None:
            async with sem:
                names = rt.names_for_poll(self.settings.discovery_every)
                assert isinstance(rt.target.credentials, V3Credentials)
                stats.requests += 1
                self.queue_depth = max(0, self.queue_depth - 1)
                self.in_flight += 1
                try:
                    try:
                        values, arrived = await self._v3_get(rt, names)
                    except PollError as exc:
                        if not (exc.status == TOO_BIG and names is rt.full_names and rt.shrink_discovery()):
                            raise
                        names = rt.full_names
                        values, arrived = await self._v3_get(rt, names)
                except PollError as exc:
                    self.record_failure(rt, exc.reason, str(exc), stats)
                    return
                finally:
                    self.in_flight -= 1
                self.handle_values(rt, names, values, arrived, stats)

        await asyncio.gather(*(one(rt) for rt in rts))


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; Python does not export it
_TIMESPEC = struct.Struct("qq")


class UdpSocket:
    """A poller UDP socket (one for v2c, one for the lean v3 client). Drains every queued datagram
    per wake-up and stamps each with the kernel's receive time, so a busy event loop neither
    expires answers already received nor skews the interval a rate is computed over."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bind: str) -> None:
        self.loop = loop
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.stamped = True
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            self.stamped = False
        self.sock.bind((bind, 0))
        self.sock.setblocking(False)
        self.on_datagram: Callable[[bytes, tuple[str, int], float], None] | None = None
        self.closed = False
        loop.add_reader(self.sock.fileno(), self.drain)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            log.debug("send buffer full; %s:%s will be retried", *addr)
        except OSError as exc:  # e.g. no route to host: the request's deadline will expire it
            log.debug("send to %s:%s failed: %s", addr[0], addr[1], exc)

    def drain(self) -> None:
        anc_size = socket.CMSG_SPACE(_TIMESPEC.size)
        while not self.closed:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, anc_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("UDP receive error: %s", exc)
                return
            arrived = time.monotonic()
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(cdata)
                    arrived -= max(0.0, time.time() - (sec + nsec / 1e9))
            if self.on_datagram is not None:
                self.on_datagram(data, addr, arrived)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


@dataclass(slots=True)
class _Pending:
    rt: Runtime
    names: tuple[str, ...]
    attempt: int
    deadline: float


class _V2cCycle:
    """One cycle over the v2c targets: a send window, a FIFO of deadlines, callbacks only."""

    def __init__(self, poller: Poller, udp: UdpSocket, rts: list[Runtime], stats: CycleStats) -> None:
        self.p = poller
        self.udp = udp
        self.todo = deque(rts)
        self.stats = stats
        self.pending: dict[int, _Pending] = {}
        self.deadlines: deque[tuple[float, int]] = deque()
        self.timeout = poller.settings.timeout
        self.retries = poller.settings.retries
        self.window = poller.settings.concurrency
        self.done: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.udp.on_datagram = self.on_datagram
        try:
            self.pump()
            self.arm(loop)
            await self.done
        finally:
            self.udp.on_datagram = None
            if self.timer is not None:
                self.timer.cancel()

    def send(self, rt: Runtime, names: tuple[str, ...], attempt: int) -> None:
        rid = self.p.request_id()
        msg = self.p.prepared(rt, names).with_request_id(rid)
        deadline = time.monotonic() + self.timeout
        self.pending[rid] = _Pending(rt, names, attempt, deadline)
        self.deadlines.append((deadline, rid))
        self.stats.requests += 1
        self.udp.sendto(msg, (rt.target.host, rt.target.port))

    def pump(self) -> None:
        discovery_every = self.p.settings.discovery_every
        while self.todo and len(self.pending) < self.window:
            rt = self.todo.popleft()
            self.send(rt, rt.names_for_poll(discovery_every), 0)
        self.p.queue_depth = len(self.todo)
        self.p.in_flight = len(self.pending)
        if not self.todo and not self.pending and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        delay = min(self.timeout / 4, 0.05)
        self.timer = loop.call_later(delay, self.sweep, loop)

    def sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self.udp.drain()  # answers already received are not timeouts, however late we look
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            _, rid = self.deadlines.popleft()
            pend = self.pending.pop(rid, None)
            if pend is None:
                continue  # answered in time
            if pend.attempt < self.retries:
                self.stats.retries += 1
                self.send(pend.rt, pend.names, pend.attempt + 1)
            else:
                self.p.record_failure(
                    pend.rt,
                    "timeout",
                    f"no answer after {self.retries + 1} attempt(s) of {self.timeout:g} s "
                    "(router unreachable, agent down, or wrong community)",
                    self.stats,
                )
        self.pump()
        if self.done is not None and not self.done.done():
            self.arm(loop)

    def on_datagram(self, data: bytes, addr: tuple[str, int], arrived: float) -> None:
        try:
            resp = ber.decode_response(data)
        except ber.BerError as exc:
            self._malformed(data, addr, str(exc))
            return
        pend = self.pending.get(resp.request_id)
        if pend is None:
            return  # a late answer to a retried request, or not ours
        rt = pend.rt
        t = rt.target
        if addr[0] != t.host or addr[1] != t.port:
            return  # same id from another address: not the answer we wait for
        assert isinstance(t.credentials, V2cCredentials)
        del self.pending[resp.request_id]
        try:
            values = self._values(pend, resp, t.credentials.community)
        except PollError as exc:
            if exc.status == TOO_BIG and pend.names is rt.full_names and rt.shrink_discovery():
                self.send(rt, rt.full_names, pend.attempt)
                return
            self.p.record_failure(rt, exc.reason, str(exc), self.stats)
        else:
            self.p.handle_values(rt, pend.names, values, arrived, self.stats)
        self.pump()

    def _malformed(self, data: bytes, addr: tuple[str, int], why: str) -> None:
        # Find whose answer it was from the address; if exactly one request is pending for it,
        # that target gets the error (otherwise its request times out normally).
        rid = ber.request_id_of(data)
        pend = self.pending.get(rid) if rid is not None else None
        if pend is None or (addr[0], addr[1]) != (pend.rt.target.host, pend.rt.target.port):
            log.debug("malformed datagram from %s:%s: %s", addr[0], addr[1], why)
            return
        assert rid is not None
        del self.pending[rid]
        self.p.record_failure(pend.rt, "bad_response", f"malformed SNMP response: {why}", self.stats)
        self.pump()

    def _values(self, pend: _Pending, resp: ber.Response, community: bytes) -> Values:
        if resp.version != 1:
            raise PollError("bad_response", f"answer is SNMP version {resp.version + 1}, expected v2c")
        if resp.community != community:
            raise PollError("bad_response", "answer carries another community")
        if resp.error_status:
            name = ber.ERROR_STATUS.get(resp.error_status, str(resp.error_status))
            idx = resp.error_index
            what = f" on {OID_NAMES[pend.names[idx - 1]]}" if 0 < idx <= len(pend.names) else ""
            raise PollError("agent_error", f"agent answered {name}{what}", status=resp.error_status)
        bodies = oid_bodies_for(pend.names, pend.rt.target.if_index)
        if len(resp.varbinds) != len(bodies):
            raise PollError("bad_response", f"{len(resp.varbinds)} values for {len(bodies)} requested")
        values: Values = {}
        for name, body, vb in zip(pend.names, bodies, resp.varbinds, strict=True):
            if vb.oid_body != body:
                raise PollError("bad_response", f"answer names {ber.oid_str(vb.oid)} where {OID_NAMES[name]} was asked")
            values[name] = (vb.tag, vb.value)
        return values
