"""SNMPv3 authPriv GETs on one UDP socket with the lean USM codec (`usm.py`).

Per router: discover its engine once (id, boots, time), derive the localized keys once, then
each poll is one encrypted, signed GET. The engine clock is estimated from the last
authenticated answer; a `notInTimeWindows` report (router rebooted, clock drift) re-syncs and
retries once, an `unknownEngineIDs` report re-discovers once. Answers are matched by msgID and
source address, checked (MAC, then decryption, then request id), and mapped to the same
(tag, value) pairs as v2c, so one validation routine handles both.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from . import usm
from .ber import ERROR_STATUS, REPORT, BerError, oid_body
from .poller import OID_NAMES, PollError, Runtime, UdpSocket, Values, oids_for
from .settings import PollerSettings
from .targets import V3Credentials


@dataclass
class Engine:
    """What we know of a router's SNMP engine (RFC 3414 §2.3: the non-authoritative side's copy)."""

    engine_id: bytes
    boots: int
    time_at_sync: int
    mono_at_sync: float

    def now(self) -> tuple[int, int]:
        return self.boots, min(2**31 - 1, self.time_at_sync + int(time.monotonic() - self.mono_at_sync))

    def sync(self, boots: int, engine_time: int) -> None:
        self.boots, self.time_at_sync, self.mono_at_sync = boots, engine_time, time.monotonic()


class LeanV3:
    """The poller's SNMPv3 client for targets whose protocols `usm.supported` accepts."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bind: str) -> None:
        self.loop = loop
        self.udp = UdpSocket(loop, bind)
        self.udp.on_datagram = self._on_datagram
        self.pending: dict[int, tuple[asyncio.Future[tuple[usm.Incoming, float]], tuple[str, int]]] = {}
        self.engines: dict[tuple[str, int], Engine] = {}
        self._keys: dict[tuple[str, str, str, bytes], usm.Keys] = {}
        self._shapes: dict[tuple[tuple[str, ...], int], tuple[tuple[tuple[int, ...], ...], tuple[bytes, ...]]] = {}
        self._msg_id = int.from_bytes(os.urandom(3), "big") + 1
        self._salt = int.from_bytes(os.urandom(8), "big")

    def close(self) -> None:
        self.udp.close()
        for fut, _ in self.pending.values():
            if not fut.done():
                fut.cancel()
        self.pending.clear()

    # -- transport -----------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[str, int], arrived: float) -> None:
        try:
            msg = usm.parse(data)
        except BerError:
            return  # garbage or not for us: the request it might answer times out
        entry = self.pending.get(msg.msg_id)
        if entry is not None and entry[1] == addr[:2] and not entry[0].done():
            entry[0].set_result((msg, arrived))

    def _next_msg_id(self) -> int:
        self._msg_id = self._msg_id + 1 if self._msg_id < 2**31 - 1 else 1
        return self._msg_id

    def _next_salt(self) -> bytes:
        self._salt = (self._salt + 1) % 2**64
        return self._salt.to_bytes(8, "big")

    async def _exchange(
        self, build: bytes, msg_id: int, addr: tuple[str, int], settings: PollerSettings
    ) -> tuple[usm.Incoming, float]:
        fut: asyncio.Future[tuple[usm.Incoming, float]] = self.loop.create_future()
        self.pending[msg_id] = (fut, addr)
        try:
            for _ in range(settings.retries + 1):
                try:
                    self.udp.sock.sendto(build, addr)
                except OSError as exc:
                    raise PollError("send_error", f"cannot send to {addr[0]}:{addr[1]}: {exc.strerror}") from None
                done, _ = await asyncio.wait({fut}, timeout=settings.timeout)
                if done:
                    return fut.result()
            raise PollError(
                "timeout",
                f"no answer after {settings.retries + 1} attempt(s) of {settings.timeout:g} s "
                "(router unreachable, agent down, or unknown engine)",
            )
        finally:
            self.pending.pop(msg_id, None)

    # -- USM -----------------------------------------------------------------------------------

    async def _discover(self, addr: tuple[str, int], settings: PollerSettings, request_id: int) -> Engine:
        msg_id = self._next_msg_id()
        msg, _ = await self._exchange(usm.discovery_request(msg_id, request_id), msg_id, addr, settings)
        try:
            scoped = usm.open_scoped(msg, None)
        except (BerError, usm.UsmError) as exc:
            raise PollError("bad_response", f"SNMPv3 engine discovery: malformed answer ({exc})") from None
        if scoped.pdu_tag != REPORT or not msg.engine_id or len(msg.engine_id) > 32:
            raise PollError("bad_response", "SNMPv3 engine discovery: the agent did not report its engine id")
        engine = Engine(msg.engine_id, msg.boots, msg.engine_time, time.monotonic())
        self.engines[addr] = engine
        return engine

    def _oids(self, names: tuple[str, ...], if_index: int) -> tuple[tuple[tuple[int, ...], ...], tuple[bytes, ...]]:
        """OIDs and their encodings for a request shape (a handful of shapes, shared by all targets)."""
        key = (names, if_index)
        found = self._shapes.get(key)
        if found is None:
            oids = oids_for(names, if_index)
            found = self._shapes[key] = (oids, tuple(oid_body(o) for o in oids))
        return found

    def _keys_for(self, c: V3Credentials, engine_id: bytes) -> usm.Keys:
        key = (c.auth_protocol, c.auth_key, c.priv_key, engine_id)
        keys = self._keys.get(key)
        if keys is None:
            keys = self._keys[key] = usm.keys_for(c.auth_protocol, c.auth_key, c.priv_key, engine_id)
        return keys

    async def get(
        self, rt: Runtime, names: tuple[str, ...], settings: PollerSettings, request_id: int
    ) -> tuple[Values, float]:
        """One authPriv GET of `names`; PollError on timeouts, security refusals, bad answers."""
        t = rt.target
        c = t.credentials
        assert isinstance(c, V3Credentials)
        addr = (t.host, t.port)
        oids, bodies = self._oids(names, t.if_index)
        engine = self.engines.get(addr) or await self._discover(addr, settings, request_id)
        for attempt in range(2):
            keys = self._keys_for(c, engine.engine_id)
            boots, engine_time = engine.now()
            msg_id = self._next_msg_id()
            request = usm.get_request(
                msg_id=msg_id, request_id=request_id, user=c.user.encode(), engine_id=engine.engine_id,
                boots=boots, engine_time=engine_time, keys=keys, salt=self._next_salt(),
                context=c.context.encode(), oid_bodies=bodies,
            )  # fmt: skip
            msg, arrived = await self._exchange(request, msg_id, addr, settings)
            try:
                scoped = usm.open_scoped(msg, keys if msg.flags & usm.FLAG_AUTH else None)
            except usm.UsmError as exc:
                raise PollError("auth", f"SNMPv3 user {c.user}: {exc} [{exc.counter}]") from None
            except BerError as exc:
                raise PollError("bad_response", f"malformed SNMPv3 answer: {exc}") from None
            if scoped.pdu_tag == REPORT:
                counter = scoped.report_counter()
                if attempt == 0 and counter == "notInTimeWindows" and msg.flags & usm.FLAG_AUTH:
                    engine.sync(msg.boots, msg.engine_time)  # rebooted router or drift: take its clock
                    continue
                if attempt == 0 and counter == "unknownEngineIDs":
                    engine = await self._discover(addr, settings, request_id)
                    continue
                raise PollError(
                    "auth", f"SNMPv3 user {c.user} rejected: {counter or 'report'} (check the user and keys)"
                )
            if msg.engine_id != engine.engine_id or not msg.flags & usm.FLAG_AUTH:
                raise PollError("auth", "SNMPv3 answer not authenticated by the router's engine")
            engine.sync(msg.boots, msg.engine_time)
            if scoped.request_id != request_id:
                raise PollError("bad_response", f"answer for request {scoped.request_id}, not {request_id}")
            return _values(names, oids, bodies, scoped), arrived
        raise PollError("auth", f"SNMPv3 user {c.user}: the router keeps refusing our time window")


def _values(
    names: tuple[str, ...], oids: tuple[tuple[int, ...], ...], bodies: tuple[bytes, ...], scoped: usm.ScopedPdu
) -> Values:
    if scoped.error_status:
        idx = scoped.error_index
        what = f" on {OID_NAMES[names[idx - 1]]}" if 0 < idx <= len(names) else ""
        status = ERROR_STATUS.get(scoped.error_status, str(scoped.error_status))
        raise PollError("agent_error", f"agent answered {status}{what}", status=scoped.error_status)
    if len(scoped.varbinds) != len(oids):
        raise PollError("bad_response", f"{len(scoped.varbinds)} values for {len(oids)} requested")
    values: Values = {}
    for name, body, vb in zip(names, bodies, scoped.varbinds, strict=True):
        if vb.oid_body != body:
            raise PollError("bad_response", f"answer names {vb.oid} where {OID_NAMES[name]} was asked")
        values[name] = (vb.tag, vb.value)
    return values
