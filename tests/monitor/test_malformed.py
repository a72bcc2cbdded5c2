"""Answers no real agent should send: each becomes a per-target error, never a crash."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902

from monitor.poller import Poller
from monitor.settings import PollerSettings
from monitor.targets import Target, V2cCredentials

P = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]


def answer(request: bytes, build: Callable[[int, list[tuple[object, object]]], bytes | None]) -> bytes | None:
    msg, _ = decoder.decode(request, asn1Spec=P.Message())
    pdu = P.apiMessage.get_pdu(msg)
    oids = [oid for oid, _ in P.apiPDU.get_varbinds(pdu)]
    return build(int(P.apiPDU.get_request_id(pdu)), [(o, rfc1902.Counter32(1)) for o in oids])


def response(rid: int, varbinds: list[tuple[object, object]], error_status: int = 0, community: bytes = b"c") -> bytes:
    pdu = P.GetResponsePDU()
    P.apiPDU.set_defaults(pdu)
    P.apiPDU.set_request_id(pdu, rid)
    P.apiPDU.set_error_status(pdu, error_status)
    P.apiPDU.set_error_index(pdu, 1 if error_status else 0)
    P.apiPDU.set_varbinds(pdu, varbinds)
    msg = P.Message()
    P.apiMessage.set_defaults(msg)
    P.apiMessage.set_community(msg, community)
    P.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


BEHAVIOURS: dict[str, Callable[[int, list[tuple[object, object]]], bytes | None]] = {
    "generr": lambda rid, vbs: response(rid, vbs, error_status=5),
    "wrong-oid": lambda rid, vbs: response(rid, [((1, 3, 6, 1, 9, 9), v) for _, v in vbs]),
    "truncated": lambda rid, vbs: response(rid, vbs)[:-4],
    "too-few": lambda rid, vbs: response(rid, vbs[:3]),
    "other-community": lambda rid, vbs: response(rid, vbs, community=b"intruder"),
    "garbage": lambda rid, vbs: b"\x30\x03\x02\x01",
    "wrong-types": lambda rid, vbs: response(rid, [(o, rfc1902.OctetString(b"x")) for o, _ in vbs]),
}


class FakeAgents(asyncio.DatagramProtocol):
    def __init__(self, behaviour: Callable[[int, list[tuple[object, object]]], bytes | None]) -> None:
        self.behaviour = behaviour
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = answer(data, self.behaviour)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


async def test_each_bad_answer_is_a_named_error_for_its_target_only() -> None:
    loop = asyncio.get_running_loop()
    servers = []
    targets = []
    for i, (name, behaviour) in enumerate(BEHAVIOURS.items()):
        host = f"127.75.0.{i + 1}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(lambda b=behaviour: FakeAgents(b), local_addr=(host, port))
        servers.append(transport)
        targets.append(Target(name, name, "district_hospital", "north", host, port, 2, 10e6, V2cCredentials(b"c")))
    poller = Poller(targets, PollerSettings(interval=5, timeout=0.5, retries=0))
    try:
        snap = await poller.run_cycle()
    finally:
        poller.close()
        for t in servers:
            t.close()
    reasons = {fid: (st.reason, st.reachable) for fid, st in snap.items()}
    assert reasons == {
        "generr": ("agent_error", True),
        "wrong-oid": ("bad_response", False),
        "truncated": ("bad_response", False),
        "too-few": ("bad_response", False),
        "other-community": ("bad_response", False),
        "garbage": ("timeout", False),  # not attributable to a request: it simply times out
        "wrong-types": ("bad_type", True),
    }, reasons
    assert "genErr" in (snap["generr"].error or "") and "malformed" in (snap["truncated"].error or "")
    assert poller.stats.failed == len(BEHAVIOURS)


def _value_for(oid: tuple[int, ...], now: float) -> object:
    prefix, col = oid[:-2], oid[-2]
    if oid == (1, 3, 6, 1, 2, 1, 1, 3, 0):
        return rfc1902.TimeTicks(int(now * 100) % 2**32)
    if prefix == (1, 3, 6, 1, 2, 1, 2, 2, 1):
        if col in (7, 8):
            return rfc1902.Integer(1)
        if col == 5:
            return rfc1902.Gauge32(100_000_000)
        return rfc1902.Counter32(int(now * 1000) % 2**32)
    if prefix == (1, 3, 6, 1, 2, 1, 31, 1, 1, 1):
        return rfc1902.Gauge32(100) if col == 15 else rfc1902.Counter64(int(now * 125_000))
    return rfc1902.OctetString(b"?")


def too_big_for_discovery(rid: int, vbs: list[tuple[object, object]]) -> bytes:
    if len(vbs) > 13:
        return response(rid, vbs, error_status=1)
    now = __import__("time").time()
    return response(rid, [(o, _value_for(tuple(o), now)) for o, _ in vbs])  # type: ignore[arg-type]


async def test_too_big_discovery_falls_back_to_the_lean_request() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: FakeAgents(too_big_for_discovery), local_addr=("127.75.1.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    t = Target("small-mtu", "Small", "district_hospital", "north", "127.75.1.1", port, 2, 10e6, V2cCredentials(b"c"))
    poller = Poller([t], PollerSettings(interval=5, timeout=0.5, retries=0))
    try:
        st = (await poller.run_cycle())["small-mtu"]
        assert st.reachable and st.link_up and st.error is None and st.speed_bps == 100e6, st
        await asyncio.sleep(0.5)
        st = (await poller.run_cycle())["small-mtu"]
        assert st.in_bps is not None and abs(st.in_bps - 1e6) < 0.05e6, st  # 125,000 octets/s
    finally:
        poller.close()
        transport.close()
