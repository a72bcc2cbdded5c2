"""SNMPv3 messages with the User-based Security Model (RFC 3412, 3414, 3826, 7860), authPriv only.

Why not pysnmp: it costs ~6 ms of CPU per request (pyasn1 objects, its dispatcher), which caps
one monitor at a few hundred v3 routers; the national network will be v3. Here, as for v2c in
`ber.py`, a message is built from bytes and parsed by walking bytes with bound checks. Keys are
derived once per (password, engine) and cached. Supported: HMAC-SHA-1/-224/-256/-384/-512 and
AES-128-CFB — what the catalog's default (`SHA`/`AES`) and most routers use; AES-192/256 (whose
key extension differs between vendors) stay on pysnmp. Anything malformed raises `BerError`;
a failed check raises `UsmError` with the USM counter name, for the poller's `auth` reason.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # AES-CFB128, as RFC 3826 needs it, lives in `decrepit` since cryptography 47
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from .ber import (
    GET_REQUEST,
    INTEGER,
    NO_ERROR,
    OCTET_STRING,
    REPORT,
    RESPONSE,
    SEQUENCE,
    BerError,
    VarBind,
    decode_pdu_body,
    encode_integer,
    null_varbinds,
    read_int,
    read_tlv,
    tlv,
)

#: auth protocol → (hash name, truncated MAC length): RFC 3414 (SHA-1, 96 bits) and RFC 7860.
AUTH: dict[str, tuple[str, int]] = {
    "SHA": ("sha1", 12),
    "SHA224": ("sha224", 16),
    "SHA256": ("sha256", 24),
    "SHA384": ("sha384", 32),
    "SHA512": ("sha512", 48),
}
PRIV = {"AES"}  # AES-128-CFB (RFC 3826)

FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
MAX_SIZE = 65507
USM = 3

#: usmStats counters an agent reports (1.3.6.1.6.3.15.1.1.N.0)
USM_STATS = {
    1: "unsupportedSecLevels",
    2: "notInTimeWindows",
    3: "unknownUserNames",
    4: "unknownEngineIDs",
    5: "wrongDigests",
    6: "decryptionErrors",
}
_USM_STATS_PREFIX = bytes([0x2B, 6, 1, 6, 3, 15, 1, 1])  # 1.3.6.1.6.3.15.1.1 encoded


class UsmError(Exception):
    """The agent (or we) refused the message's security: wrong user, keys, engine or time."""

    def __init__(self, counter: str, message: str) -> None:
        super().__init__(message)
        self.counter = counter


def supported(auth_protocol: str, priv_protocol: str) -> bool:
    return auth_protocol in AUTH and priv_protocol in PRIV


@lru_cache(maxsize=4096)
def password_to_key(password: str, hash_name: str) -> bytes:
    """RFC 3414 A.2: hash of the password repeated to 1 MiB (slow by design: cached)."""
    pw = password.encode()
    if not pw:
        raise ValueError("empty SNMPv3 key")
    return hashlib.new(hash_name, (pw * (1_048_576 // len(pw) + 1))[:1_048_576]).digest()


@lru_cache(maxsize=4096)
def localized_key(password: str, hash_name: str, engine_id: bytes) -> bytes:
    ku = password_to_key(password, hash_name)
    return hashlib.new(hash_name, ku + engine_id + ku).digest()


@dataclass(frozen=True, slots=True)
class Keys:
    hash_name: str
    mac_len: int
    auth: bytes
    priv: bytes  # 16 bytes for AES-128


def keys_for(auth_protocol: str, auth_key: str, priv_key: str, engine_id: bytes) -> Keys:
    hash_name, mac_len = AUTH[auth_protocol]
    auth = localized_key(auth_key, hash_name, engine_id)
    priv = localized_key(priv_key, hash_name, engine_id)
    if len(priv) < 16:
        raise ValueError("localized privacy key shorter than an AES-128 key")
    return Keys(hash_name, mac_len, auth, priv[:16])


def _aes(key: bytes, boots: int, engine_time: int, salt: bytes, data: bytes, encrypt: bool) -> bytes:
    iv = struct.pack(">II", boots, engine_time) + salt
    cipher = Cipher(algorithms.AES(key), CFB(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _octets(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def _message(msg_id: int, flags: int, sec_params: bytes, msg_data: bytes) -> tuple[bytes, int]:
    """The whole message and the offset of the sec params blob inside it."""
    global_data = tlv(
        SEQUENCE, encode_integer(msg_id) + encode_integer(MAX_SIZE) + _octets(bytes([flags])) + encode_integer(USM)
    )
    head = encode_integer(3) + global_data
    sec = _octets(sec_params)
    body = head + sec + msg_data
    whole = tlv(SEQUENCE, body)
    offset = len(whole) - len(body) + len(head) + (len(sec) - len(sec_params))
    return whole, offset


def _pdu(request_id: int, oid_bodies: tuple[bytes, ...]) -> bytes:
    return tlv(GET_REQUEST, encode_integer(request_id) + NO_ERROR + null_varbinds(oid_bodies))


def _usm_params(
    engine_id: bytes, boots: int, engine_time: int, user: bytes, mac_len: int, salt: bytes
) -> tuple[bytes, int]:
    """UsmSecurityParameters with a zeroed MAC of `mac_len` bytes, and where that MAC starts in it."""
    before = _octets(engine_id) + encode_integer(boots) + encode_integer(engine_time) + _octets(user)
    mac = _octets(bytes(mac_len))
    body = before + mac + _octets(salt)
    blob = tlv(SEQUENCE, body)
    return blob, len(blob) - len(body) + len(before) + len(mac) - mac_len


def discovery_request(msg_id: int, request_id: int) -> bytes:
    """noAuthNoPriv, reportable, empty engine id and user: the agent answers with a Report that
    carries its engine id, boots and time (RFC 3414 §4)."""
    sec, _ = _usm_params(b"", 0, 0, b"", 0, b"")
    scoped = tlv(SEQUENCE, _octets(b"") + _octets(b"") + _pdu(request_id, ()))
    return _message(msg_id, FLAG_REPORTABLE, sec, scoped)[0]


def get_request(
    *,
    msg_id: int,
    request_id: int,
    user: bytes,
    engine_id: bytes,
    boots: int,
    engine_time: int,
    keys: Keys,
    salt: bytes,
    context: bytes,
    oid_bodies: tuple[bytes, ...],
) -> bytes:
    """An authPriv GetRequest, encrypted then signed."""
    scoped = tlv(SEQUENCE, _octets(engine_id) + _octets(context) + _pdu(request_id, oid_bodies))
    encrypted = _octets(_aes(keys.priv, boots, engine_time, salt, scoped, encrypt=True))
    sec, mac_in_sec = _usm_params(engine_id, boots, engine_time, user, keys.mac_len, salt)
    whole, sec_at = _message(msg_id, FLAG_AUTH | FLAG_PRIV | FLAG_REPORTABLE, sec, encrypted)
    mac_at = sec_at + mac_in_sec
    mac = hmac.new(keys.auth, whole, keys.hash_name).digest()[: keys.mac_len]
    return whole[:mac_at] + mac + whole[mac_at + keys.mac_len :]


@dataclass(frozen=True, slots=True)
class Incoming:
    """An SNMPv3 message as received: header, security parameters and (still sealed) data."""

    msg_id: int
    flags: int
    engine_id: bytes
    boots: int
    engine_time: int
    user: bytes
    mac: bytes
    mac_at: int  # where the MAC sits in `raw` (to check it over the message with zeros there)
    salt: bytes
    data_tag: int
    data: bytes  # encrypted octets (priv) or the plaintext scoped PDU's TLV
    raw: bytes


def parse(buf: bytes) -> Incoming:
    """Outer structure of an SNMPv3/USM message; raises BerError on anything malformed."""
    n = len(buf)
    tag, start, end = read_tlv(buf, 0, n)
    if tag != SEQUENCE or end != n:
        raise BerError("not an SNMP message")
    tag, s, p = read_tlv(buf, start, end)
    if tag != INTEGER or read_int(buf, s, p) != 3:
        raise BerError("not an SNMPv3 message")
    tag, gs, ge = read_tlv(buf, p, end)
    if tag != SEQUENCE:
        raise BerError("bad msgGlobalData")
    tag, s, q = read_tlv(buf, gs, ge)
    if tag != INTEGER:
        raise BerError("bad msgID")
    msg_id = read_int(buf, s, q)
    tag, s, q = read_tlv(buf, q, ge)  # msgMaxSize
    if tag != INTEGER:
        raise BerError("bad msgMaxSize")
    tag, s, q = read_tlv(buf, q, ge)
    if tag != OCTET_STRING or q - s != 1:
        raise BerError("bad msgFlags")
    flags = buf[s]
    tag, s, q = read_tlv(buf, q, ge)
    if tag != INTEGER or read_int(buf, s, q) != USM or q != ge:
        raise BerError("not the user-based security model")
    tag, ss, se = read_tlv(buf, ge, end)
    if tag != OCTET_STRING:
        raise BerError("bad msgSecurityParameters")
    tag, us, ue = read_tlv(buf, ss, se)
    if tag != SEQUENCE or ue != se:
        raise BerError("bad UsmSecurityParameters")
    fields: list[tuple[int, int]] = []
    q = us
    for want in (OCTET_STRING, INTEGER, INTEGER, OCTET_STRING, OCTET_STRING, OCTET_STRING):
        tag, s, q = read_tlv(buf, q, ue)
        if tag != want:
            raise BerError("bad UsmSecurityParameters field")
        fields.append((s, q))
    if q != ue:
        raise BerError("trailing bytes in UsmSecurityParameters")
    data_tag, ds, de = read_tlv(buf, se, end)
    if de != end:
        raise BerError("trailing bytes after msgData")
    (e0, e1), (b0, b1), (t0, t1), (u0, u1), (m0, m1), (p0, p1) = fields
    return Incoming(
        msg_id=msg_id,
        flags=flags,
        engine_id=buf[e0:e1],
        boots=read_int(buf, b0, b1),
        engine_time=read_int(buf, t0, t1),
        user=buf[u0:u1],
        mac=buf[m0:m1],
        mac_at=m0,
        salt=buf[p0:p1],
        data_tag=data_tag,
        data=buf[ds:de] if data_tag == OCTET_STRING else buf[se:de],
        raw=buf,
    )


@dataclass(frozen=True, slots=True)
class ScopedPdu:
    pdu_tag: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[VarBind]

    def report_counter(self) -> str:
        """The usmStats counter a Report names ('' if none)."""
        for vb in self.varbinds:
            body = vb.oid_body
            if body.startswith(_USM_STATS_PREFIX) and len(body) >= len(_USM_STATS_PREFIX) + 1:
                return USM_STATS.get(body[len(_USM_STATS_PREFIX)], "usmStats")
        return ""


def open_scoped(msg: Incoming, keys: Keys | None) -> ScopedPdu:
    """Check the MAC (when the message is authenticated), decrypt, and parse the scoped PDU."""
    if msg.flags & FLAG_AUTH:
        if keys is None:
            raise UsmError("wrongDigests", "authenticated answer without keys to check it")
        if len(msg.mac) != keys.mac_len:
            raise UsmError("wrongDigests", "answer's MAC has the wrong length")
        zeroed = msg.raw[: msg.mac_at] + bytes(keys.mac_len) + msg.raw[msg.mac_at + keys.mac_len :]
        want = hmac.new(keys.auth, zeroed, keys.hash_name).digest()[: keys.mac_len]
        if not hmac.compare_digest(want, msg.mac):
            raise UsmError("wrongDigests", "answer's MAC does not match (wrong authentication key?)")
    if msg.flags & FLAG_PRIV:
        if keys is None or msg.data_tag != OCTET_STRING or len(msg.salt) != 8:
            raise UsmError("decryptionErrors", "encrypted answer that cannot be decrypted")
        plain = _aes(keys.priv, msg.boots, msg.engine_time, msg.salt, msg.data, encrypt=False)
    else:
        if msg.data_tag != SEQUENCE:
            raise BerError("plaintext scoped PDU expected")
        plain = msg.data
    try:
        tag, start, end = read_tlv(plain, 0, len(plain))
    except BerError:
        raise UsmError("decryptionErrors", "answer does not decrypt to a scoped PDU (wrong privacy key?)") from None
    if tag != SEQUENCE:
        raise UsmError("decryptionErrors", "answer does not decrypt to a scoped PDU (wrong privacy key?)")
    tag, _, p = read_tlv(plain, start, end)  # contextEngineID
    tag2, _, p = read_tlv(plain, p, end)  # contextName
    if tag != OCTET_STRING or tag2 != OCTET_STRING:
        raise BerError("bad scoped PDU")
    pdu_tag, ps, pe = read_tlv(plain, p, end)
    if pdu_tag not in (RESPONSE, REPORT):
        raise BerError(f"unexpected PDU type 0x{pdu_tag:02x}")
    # CFB has no padding, but some agents pad the scoped PDU; bytes after it are ignored
    request_id, status, index, varbinds = decode_pdu_body(plain, ps, pe)
    return ScopedPdu(pdu_tag, request_id, status, index, varbinds)
