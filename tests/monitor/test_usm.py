"""The lean SNMPv3/USM codec: RFC key vectors, pysnmp as a second opinion, and agents that misbehave.

Interoperability with real agents (Net-SNMP snmpd, snmpsim) is in test_snmpd.py and
test_poller_snmpsim.py, which go through this codec by default. Here: what a real agent does
rarely (reboot, clock drift, a new engine id) or never (wrong MAC, wrong key, garbage).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyasn1.type import univ
from pysnmp.proto.secmod.rfc3414 import localkey

from monitor import usm
from monitor.ber import COUNTER32, REPORT, RESPONSE, SEQUENCE, encode_integer, oid_body, tlv
from monitor.poller import Poller
from monitor.settings import PollerSettings
from monitor.targets import Target, V3Credentials

from .test_snmpd import Snmpd, running, target

ENGINE = bytes.fromhex("80001f8880aabbccddeeff0011")


# --- keys ----------------------------------------------------------------------------------------


def test_rfc3414_sha_key_vector() -> None:
    # RFC 3414 A.3.2: password "maplesyrup", engine id 00…02
    engine = bytes.fromhex("000000000000000000000002")
    assert usm.password_to_key("maplesyrup", "sha1").hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert usm.localized_key("maplesyrup", "sha1", engine).hex() == "6695febc9288e36282235fc7151f128497b38f3f"


@pytest.mark.parametrize("proto", ["SHA224", "SHA256", "SHA384", "SHA512"])
def test_sha2_keys_agree_with_pysnmp(proto: str) -> None:
    name, _ = usm.AUTH[proto]
    ours = usm.localized_key("a-long-auth-key-9", name, ENGINE)
    theirs = bytes(localkey.password_to_key(b"a-long-auth-key-9", univ.OctetString(ENGINE), getattr(hashlib, name)))
    assert ours == theirs


def test_only_what_the_codec_covers_is_lean() -> None:
    assert usm.supported("SHA", "AES") and usm.supported("SHA512", "AES")
    assert not usm.supported("SHA", "AES256") and not usm.supported("MD5", "AES")


# --- a fake authoritative engine, built from the codec's own primitives ----------------------------

USER, AUTH_KEY, PRIV_KEY = b"noc", "auth-key-for-tests", "priv-key-for-tests"
KEYS = usm.keys_for("SHA", AUTH_KEY, PRIV_KEY, ENGINE)


def message(msg_id: int, flags: int, sec: bytes, data: bytes, keys: usm.Keys | None) -> bytes:
    """An agent's answer (the inverse of `usm.get_request`), MAC'd with `keys` when flags say so."""
    whole, _ = usm._message(msg_id, flags, sec, data)
    if flags & usm.FLAG_AUTH and keys is not None:
        msg = usm.parse(whole)
        mac = hmac.new(keys.auth, whole, keys.hash_name).digest()[: keys.mac_len]
        whole = whole[: msg.mac_at] + mac + whole[msg.mac_at + keys.mac_len :]
    return whole


def sec_params(boots: int, time_: int, user: bytes, mac_len: int, salt: bytes) -> bytes:
    return usm._usm_params(ENGINE, boots, time_, user, mac_len, salt)[0]


def scoped(pdu_tag: int, request_id: int, varbinds: list[tuple[bytes, bytes]]) -> bytes:
    vbs = b"".join(tlv(SEQUENCE, tlv(0x06, o) + v) for o, v in varbinds)
    pdu = tlv(pdu_tag, encode_integer(request_id) + b"\x02\x01\x00\x02\x01\x00" + tlv(SEQUENCE, vbs))
    return tlv(SEQUENCE, usm._octets(ENGINE) + usm._octets(b"") + pdu)


def report(msg_id: int, request_id: int, counter: int, boots: int, time_: int, auth: bool) -> bytes:
    body = scoped(REPORT, request_id, [(oid_body((1, 3, 6, 1, 6, 3, 15, 1, 1, counter, 0)), tlv(COUNTER32, b"\x01"))])
    flags = usm.FLAG_AUTH if auth else 0
    return message(msg_id, flags, sec_params(boots, time_, USER if auth else b"", 12 if auth else 0, b""), body, KEYS)


def response(msg: usm.Incoming, request_id: int, oid_bodies: list[bytes], boots: int, time_: int,
             keys: usm.Keys = KEYS, rid_offset: int = 0) -> bytes:  # fmt: skip
    body = scoped(RESPONSE, request_id + rid_offset, [(o, tlv(COUNTER32, b"\x05")) for o in oid_bodies])
    salt = b"\x00\x00\x00\x00\x00\x00\x00\x07"
    data = usm._octets(usm._aes(keys.priv, boots, time_, salt, body, encrypt=True))
    return message(msg.msg_id, usm.FLAG_AUTH | usm.FLAG_PRIV, sec_params(boots, time_, USER, 12, salt), data, keys)


class FakeEngine(asyncio.DatagramProtocol):
    """Answers discovery, checks the request like an agent would, then lets `behave` answer."""

    def __init__(self, behave: Callable[[FakeEngine, usm.Incoming, int, list[bytes]], bytes | None]) -> None:
        self.behave = behave
        self.boots, self.time = 3, 1000
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = usm.parse(data)
        if not msg.engine_id:  # discovery
            out: bytes | None = report(msg.msg_id, 0, 4, self.boots, self.time, auth=False)
        else:
            self.requests += 1
            zeroed = msg.raw[: msg.mac_at] + bytes(12) + msg.raw[msg.mac_at + 12 :]
            assert hmac.compare_digest(hmac.new(KEYS.auth, zeroed, "sha1").digest()[:12], msg.mac)
            plain = usm._aes(KEYS.priv, msg.boots, msg.engine_time, msg.salt, msg.data, encrypt=False)
            # request id and OIDs, walked with the codec's own reader
            _, s, e = usm.read_tlv(plain, 0, len(plain))
            _, _, p = usm.read_tlv(plain, s, e)
            _, _, p = usm.read_tlv(plain, p, e)
            _, ps, pe = usm.read_tlv(plain, p, e)
            _, rs, re_ = usm.read_tlv(plain, ps, pe)
            rid = int.from_bytes(plain[rs:re_], "big")
            _, _, q = usm.read_tlv(plain, re_, pe)
            _, _, q = usm.read_tlv(plain, q, pe)
            _, vs, ve = usm.read_tlv(plain, q, pe)
            oids = []
            while vs < ve:
                _, s2, vs = usm.read_tlv(plain, vs, ve)
                _, os_, oe = usm.read_tlv(plain, s2, vs)
                oids.append(plain[os_:oe])
            out = self.behave(self, msg, rid, oids)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


def ok(agent: FakeEngine, msg: usm.Incoming, rid: int, oids: list[bytes]) -> bytes:
    return response(msg, rid, oids, agent.boots, agent.time)


def rebooted_once(agent: FakeEngine, msg: usm.Incoming, rid: int, oids: list[bytes]) -> bytes:
    if agent.requests == 1:  # the router rebooted since discovery: boots moved on
        agent.boots += 1
        return report(msg.msg_id, rid, 2, agent.boots, 5, auth=True)
    assert msg.boots == agent.boots, "the client did not take the router's new boots"
    return response(msg, rid, oids, agent.boots, 6)


def wrong_mac(agent: FakeEngine, msg: usm.Incoming, rid: int, oids: list[bytes]) -> bytes:
    good = bytearray(response(msg, rid, oids, agent.boots, agent.time))
    parsed = usm.parse(bytes(good))
    good[parsed.mac_at] ^= 0xFF
    return bytes(good)


OTHER = usm.keys_for("SHA", AUTH_KEY, "another-priv-key", ENGINE)


def wrong_priv(agent: FakeEngine, msg: usm.Incoming, rid: int, oids: list[bytes]) -> bytes:
    keys = usm.Keys(KEYS.hash_name, KEYS.mac_len, KEYS.auth, OTHER.priv)  # MAC right, content unreadable
    return response(msg, rid, oids, agent.boots, agent.time, keys=keys)


BEHAVIOURS: dict[str, tuple[Callable[..., bytes | None], str, str]] = {
    # the fake answers Counter32 for every OID: reaching the type check proves the answer passed
    # the MAC, decryption, request id and OID checks
    "ok": (ok, "bad_type", "is Counter32, expected INTEGER"),
    "rebooted": (rebooted_once, "bad_type", "is Counter32, expected INTEGER"),
    "unknown-user": (lambda a, m, r, o: report(m.msg_id, r, 3, a.boots, a.time, auth=False), "auth", "unknownUserNames"),
    "wrong-digest-report": (lambda a, m, r, o: report(m.msg_id, r, 5, a.boots, a.time, auth=False), "auth", "wrongDigests"),
    "wrong-mac": (wrong_mac, "auth", "MAC does not match"),
    "wrong-priv": (wrong_priv, "auth", "decryptionErrors"),
    "other-request-id": (lambda a, m, r, o: response(m, r, o, a.boots, a.time, rid_offset=1), "bad_response", "answer for request"),
    "garbage": (lambda a, m, r, o: b"\x30\x03\x02\x01\x03", "timeout", "no answer"),
    "truncated": (lambda a, m, r, o: response(m, r, o, a.boots, a.time)[:-7], "timeout", "no answer"),
    "silent": (lambda a, m, r, o: None, "timeout", "no answer"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BEHAVIOURS))
async def test_each_misbehaviour_is_a_per_target_error(name: str) -> None:
    loop = asyncio.get_running_loop()
    agent = FakeEngine(BEHAVIOURS[name][0])
    transport, _ = await loop.create_datagram_endpoint(lambda: agent, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    creds = V3Credentials(USER.decode(), "SHA", AUTH_KEY, "AES", PRIV_KEY)
    t = Target("fake", "fake", "university_hospital", "r", "127.0.0.1", port, 2, 1e8, creds)
    poller = Poller([t], PollerSettings(interval=5, timeout=0.4, retries=0))
    try:
        snap = await poller.run_cycle()
    finally:
        poller.close()
        transport.close()
    _, reason, words = BEHAVIOURS[name]
    state = snap["fake"]
    assert state.reason == reason, (state.reason, state.error)
    assert state.reachable == (reason == "bad_type")
    assert words in (state.error or "")


# --- the real agent: a reboot between polls ------------------------------------------------------


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Snmpd]:
    yield from running(Snmpd(tmp_path))


async def test_snmpd_restart_the_poller_follows_the_new_engine(agent: Snmpd) -> None:
    creds = V3Credentials("monitor", "SHA", agent.auth, "AES", agent.priv)
    poller = Poller([target(agent, creds, "r")], PollerSettings(interval=5, timeout=1, retries=1))
    try:
        first = (await poller.run_cycle())["r"]
        assert first.reachable, first.error
        lean = poller._v3_lean
        assert lean is not None, "SHA/AES must go through the lean codec"
        assert [e.engine_id for e in lean.engines.values()] == [engine_id(agent)]
        agent.proc.stop()
        agent.proc.start()
        agent.proc.wait_ready(agent.ready, timeout=20)
        second = (await poller.run_cycle())["r"]
        assert second.reachable, second.error
        # this snmpd comes back with a new engine id: the client re-discovered it (unknownEngineIDs)
        assert [e.engine_id for e in lean.engines.values()] == [engine_id(agent)]
    finally:
        poller.close()


def engine_id(agent: Snmpd) -> bytes:
    """snmpEngineID.0 as Net-SNMP's own client reads it (a second opinion on discovery)."""
    out = subprocess.run(
        ["snmpget", "-v3", "-l", "authPriv", "-u", "monitor", "-a", "SHA", "-A", agent.auth, "-x", "AES",
         "-X", agent.priv, "-On", "-Ov", "-Ox", f"127.0.0.1:{agent.port}", "1.3.6.1.6.3.10.2.1.1.0"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    return bytes.fromhex(out.replace("Hex-STRING:", "").replace(" ", "").strip())
