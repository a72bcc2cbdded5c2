"""A minimal, strict BER codec for SNMPv2c GetRequest / Response: the poller's hot path.

pysnmp builds and parses every message through pyasn1 objects, which costs ~1.5 ms of CPU per
request; a poller of thousands of links cannot afford that. Here a request is encoded once per
target (only its 4-byte request-id changes) and a response is parsed by walking bytes with
bound checks. Anything malformed raises `BerError` — the caller turns it into a per-target
error, never a crash. SNMPv3 messages around the same PDUs are in `usm.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

# Universal and SNMP application tags.
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82
GET_REQUEST = 0xA0
GET_NEXT_REQUEST = 0xA1
RESPONSE = 0xA2
REPORT = 0xA8

EXCEPTION_TAGS = {NO_SUCH_OBJECT: "noSuchObject", NO_SUCH_INSTANCE: "noSuchInstance", END_OF_MIB_VIEW: "endOfMibView"}
TAG_NAMES = {
    INTEGER: "INTEGER",
    OCTET_STRING: "OCTET STRING",
    NULL: "NULL",
    OBJECT_IDENTIFIER: "OBJECT IDENTIFIER",
    IP_ADDRESS: "IpAddress",
    COUNTER32: "Counter32",
    GAUGE32: "Gauge32",
    TIMETICKS: "TimeTicks",
    OPAQUE: "Opaque",
    COUNTER64: "Counter64",
    **EXCEPTION_TAGS,
}
_UNSIGNED_MAX = {COUNTER32: 2**32 - 1, GAUGE32: 2**32 - 1, TIMETICKS: 2**32 - 1, COUNTER64: 2**64 - 1}

# Request ids are kept in a range whose 4-byte encoding is minimal, so the prepared request
# stays valid DER whatever the id.
REQUEST_ID_MIN = 0x0080_0000
REQUEST_ID_MAX = 0x7FFF_FFFF

ERROR_STATUS = {
    0: "noError",
    1: "tooBig",
    2: "noSuchName",
    3: "badValue",
    4: "readOnly",
    5: "genErr",
    6: "noAccess",
    7: "wrongType",
    8: "wrongLength",
    9: "wrongEncoding",
    10: "wrongValue",
    11: "noCreation",
    12: "inconsistentValue",
    13: "resourceUnavailable",
    14: "commitFailed",
    15: "undoFailed",
    16: "authorizationError",
    17: "notWritable",
    18: "inconsistentName",
}


class BerError(ValueError):
    """A message that is not a well-formed SNMP response."""


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(body)) + body


def encode_integer(value: int) -> bytes:
    length = (value if value >= 0 else ~value).bit_length() // 8 + 1  # minimal two's complement
    return tlv(INTEGER, value.to_bytes(length, "big", signed=True))


def parse_oid(text: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in text.strip().lstrip(".").split("."))
    except ValueError:
        raise BerError(f"not an OID: {text!r}") from None
    if len(parts) < 2 or parts[0] > 2 or (parts[0] < 2 and parts[1] >= 40) or any(p < 0 for p in parts):
        raise BerError(f"not an OID: {text!r}")
    return parts


def oid_body(oid: tuple[int, ...]) -> bytes:
    """The content octets of an OBJECT IDENTIFIER."""
    out = bytearray()
    arcs = (oid[0] * 40 + oid[1], *oid[2:])
    for arc in arcs:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def decode_oid_body(body: bytes) -> tuple[int, ...]:
    if not body or body[-1] & 0x80:
        raise BerError("truncated OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for i, byte in enumerate(body):
        if value == 0 and byte == 0x80 and (i == 0 or not body[i - 1] & 0x80):
            raise BerError("non-minimal OBJECT IDENTIFIER arc")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return (*head, *arcs[1:])


def oid_str(oid: tuple[int, ...]) -> str:
    return ".".join(map(str, oid))


@dataclass(frozen=True, slots=True)
class PreparedGet:
    """A v2c GetRequest encoded once; `with_request_id` patches only the id."""

    template: bytes
    id_offset: int
    oid_bodies: tuple[bytes, ...]  # shared between targets asking for the same OIDs

    def with_request_id(self, request_id: int) -> bytes:
        if not REQUEST_ID_MIN <= request_id <= REQUEST_ID_MAX:
            raise ValueError("request id out of the prepared range")
        o = self.id_offset
        return self.template[:o] + request_id.to_bytes(4, "big") + self.template[o + 4 :]


NO_ERROR = b"\x02\x01\x00\x02\x01\x00"  # error-status 0, error-index 0


def null_varbinds(oid_bodies: tuple[bytes, ...]) -> bytes:
    """The VarBindList of a GET: each encoded OID with a NULL value (v2c and v3 alike)."""
    return tlv(SEQUENCE, b"".join(tlv(SEQUENCE, tlv(OBJECT_IDENTIFIER, b) + b"\x05\x00") for b in oid_bodies))


def prepare_get(
    community: bytes,
    oids: tuple[tuple[int, ...], ...],
    version: int = 1,
    pdu_tag: int = GET_REQUEST,
    bodies: tuple[bytes, ...] | None = None,
) -> PreparedGet:
    """Encode a GetRequest (version 1 = SNMPv2c, 0 = SNMPv1) for `oids` with a placeholder id;
    pass `bodies` (the encoded OIDs) to share them between targets."""
    if bodies is None:
        bodies = tuple(oid_body(o) for o in oids)
    rid = tlv(INTEGER, REQUEST_ID_MIN.to_bytes(4, "big"))
    pdu_body = rid + NO_ERROR + null_varbinds(bodies)
    pdu = tlv(pdu_tag, pdu_body)
    head = encode_integer(version) + tlv(OCTET_STRING, community)
    message = tlv(SEQUENCE, head + pdu)
    # The id's 4 value bytes sit right after the PDU header and the INTEGER tag+length (2 bytes).
    pdu_header_len = len(pdu) - len(pdu_body)
    id_offset = len(message) - len(pdu) + pdu_header_len + 2
    assert message[id_offset : id_offset + 4] == REQUEST_ID_MIN.to_bytes(4, "big")
    return PreparedGet(message, id_offset, bodies)


def _read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Return (tag, content start, content end) of the TLV at `pos`, checked against `end`."""
    if pos + 2 > end:
        raise BerError("truncated message")
    tag = buf[pos]
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4:
            raise BerError("unsupported BER length")
        if pos + n > end:
            raise BerError("truncated length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise BerError("length runs past the end of the message")
    return tag, pos, pos + length


def _int(buf: bytes, start: int, end: int) -> int:
    if start == end:
        raise BerError("empty INTEGER")
    return int.from_bytes(buf[start:end], "big", signed=True)


Value = int | bytes | tuple[int, ...] | None


@dataclass(frozen=True)
class VarBind:
    oid_body: bytes  # raw content octets: compared to the request's, decoded only on demand
    tag: int
    value: Value

    @property
    def oid(self) -> tuple[int, ...]:
        return decode_oid_body(self.oid_body)

    @property
    def exception(self) -> str | None:
        return EXCEPTION_TAGS.get(self.tag)


@dataclass(frozen=True)
class Response:
    version: int
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[VarBind]


def request_id_of(buf: bytes) -> int | None:
    """The request-id of a datagram, cheaply and leniently (a truncated answer still names its
    request, so the error goes to the right target); None if it is not a Response."""
    try:
        n = len(buf)
        _, start, _ = _read_header(buf, 0)
        _, _, p = _read_tlv(buf, start, n)  # version
        _, _, p = _read_tlv(buf, p, n)  # community
        tag, pstart, _ = _read_header(buf, p)
        if tag != RESPONSE:
            return None
        tag, s, e = _read_tlv(buf, pstart, n)
        return _int(buf, s, e) if tag == INTEGER else None
    except BerError:
        return None


def _read_header(buf: bytes, pos: int) -> tuple[int, int, int]:
    """Tag, content start and declared end of the TLV at `pos`; the declared end may lie past the
    buffer (a truncated constructed value), the header itself may not."""
    if pos + 2 > len(buf):
        raise BerError("truncated message")
    first = buf[pos + 1]
    n = first & 0x7F if first >= 0x80 else 0
    if first >= 0x80 and (n == 0 or n > 4):
        raise BerError("unsupported BER length")
    start = pos + 2 + n
    if start > len(buf):
        raise BerError("truncated length")
    length = int.from_bytes(buf[pos + 2 : start], "big") if n else first
    return buf[pos], start, start + length


def decode_response(buf: bytes) -> Response:
    """Parse an SNMPv1/v2c Response-PDU strictly; raise BerError on anything malformed."""
    tag, start, end = _read_tlv(buf, 0, len(buf))
    if tag != SEQUENCE or end != len(buf):
        raise BerError("not an SNMP message")
    tag, s, e = _read_tlv(buf, start, end)
    if tag != INTEGER:
        raise BerError("bad version field")
    version = _int(buf, s, e)
    tag, s, p = _read_tlv(buf, e, end)
    if tag != OCTET_STRING:
        raise BerError("bad community field")
    community = buf[s:p]
    tag, pstart, pend = _read_tlv(buf, p, end)
    if tag != RESPONSE:
        raise BerError(f"unexpected PDU type 0x{tag:02x}")
    if pend != end:
        raise BerError("trailing bytes after the PDU")
    request_id, error_status, error_index, varbinds = decode_pdu_body(buf, pstart, pend)
    return Response(version, community, request_id, error_status, error_index, varbinds)


def decode_pdu_body(buf: bytes, pstart: int, pend: int) -> tuple[int, int, int, list[VarBind]]:
    """Request id, error status, error index and varbinds of the PDU whose content is buf[pstart:pend]
    (shared by the v2c message and the SNMPv3 scoped PDU)."""
    fields = []
    p = pstart
    for _ in range(3):
        tag, s, p = _read_tlv(buf, p, pend)
        if tag != INTEGER:
            raise BerError("bad PDU header")
        fields.append(_int(buf, s, p))
    tag, vstart, vend = _read_tlv(buf, p, pend)
    if tag != SEQUENCE or vend != pend:
        raise BerError("bad varbind list")
    varbinds = []
    p = vstart
    while p < vend:
        tag, s, p = _read_tlv(buf, p, vend)
        if tag != SEQUENCE:
            raise BerError("bad varbind")
        otag, os_, oe = _read_tlv(buf, s, p)
        if otag != OBJECT_IDENTIFIER or oe == os_:
            raise BerError("bad varbind name")
        vtag, vs, ve = _read_tlv(buf, oe, p)
        if ve != p:
            raise BerError("trailing bytes in a varbind")
        varbinds.append(VarBind(buf[os_:oe], vtag, _value(buf, vtag, vs, ve)))
    return fields[0], fields[1], fields[2], varbinds


# for the SNMPv3 codec (usm.py), which walks the same TLVs
read_tlv = _read_tlv
read_int = _int


def _value(buf: bytes, tag: int, s: int, e: int) -> Value:
    if tag == INTEGER:
        return _int(buf, s, e)
    if tag in _UNSIGNED_MAX:
        if s == e or e - s > 9:
            raise BerError(f"bad {TAG_NAMES[tag]} length")
        value = int.from_bytes(buf[s:e], "big", signed=False)
        if buf[s] & 0x80:
            # Some agents send negative encodings for counters; a valid unsigned value never does.
            raise BerError(f"negative {TAG_NAMES[tag]}")
        if value > _UNSIGNED_MAX[tag]:
            raise BerError(f"{TAG_NAMES[tag]} out of range")
        return value
    if tag in (OCTET_STRING, IP_ADDRESS, OPAQUE):
        return buf[s:e]
    if tag == OBJECT_IDENTIFIER:
        return decode_oid_body(buf[s:e])
    if tag == NULL or tag in EXCEPTION_TAGS:
        if e != s:
            raise BerError("NULL with content")
        return None
    raise BerError(f"unknown value type 0x{tag:02x}")
