"""The hand-written codec against pysnmp's own encoder/decoder, and against garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto import api, rfc1902

from monitor import ber

P = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
OIDS = (
    (1, 3, 6, 1, 2, 1, 1, 3, 0),
    (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 2),
    (1, 3, 6, 1, 4, 1, 2636, 3, 1, 130, 4294967295),
)


def pysnmp_response(
    request_id: int, values: list[object], community: bytes = b"public", error_status: int = 0
) -> bytes:
    pdu = P.GetResponsePDU()
    P.apiPDU.set_defaults(pdu)
    P.apiPDU.set_request_id(pdu, request_id)
    P.apiPDU.set_error_status(pdu, error_status)
    P.apiPDU.set_varbinds(pdu, [(oid, v) for oid, v in zip(OIDS, values, strict=True)])
    msg = P.Message()
    P.apiMessage.set_defaults(msg)
    P.apiMessage.set_community(msg, community)
    P.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def test_prepared_request_decodes_in_pysnmp_with_each_id() -> None:
    prepared = ber.prepare_get(b"s3cret", OIDS)
    for rid in (ber.REQUEST_ID_MIN, 123456789, ber.REQUEST_ID_MAX):
        msg, rest = decoder.decode(prepared.with_request_id(rid), asn1Spec=P.Message())
        assert rest == b""
        assert bytes(P.apiMessage.get_community(msg)) == b"s3cret"
        pdu = P.apiMessage.get_pdu(msg)
        assert int(P.apiPDU.get_request_id(pdu)) == rid
        assert [tuple(oid) for oid, _ in P.apiPDU.get_varbinds(pdu)] == list(OIDS)
    # DER: the request is exactly what pysnmp would encode
    assert encoder.encode(decoder.decode(prepared.with_request_id(999999999), asn1Spec=P.Message())[0]) == (
        prepared.with_request_id(999999999)
    )
    with pytest.raises(ValueError):
        prepared.with_request_id(1)


def test_response_values_and_types() -> None:
    data = pysnmp_response(
        0x01020304,
        [rfc1902.TimeTicks(4294967295), rfc1902.Counter64(2**64 - 1), rfc1902.OctetString(b"ge-0/0/1")],
        community=b"c",
    )
    resp = ber.decode_response(data)
    assert (resp.version, resp.community, resp.request_id, resp.error_status) == (1, b"c", 0x01020304, 0)
    assert [(vb.oid, vb.tag, vb.value) for vb in resp.varbinds] == [
        (OIDS[0], ber.TIMETICKS, 4294967295),
        (OIDS[1], ber.COUNTER64, 2**64 - 1),
        (OIDS[2], ber.OCTET_STRING, b"ge-0/0/1"),
    ]
    assert ber.request_id_of(data) == 0x01020304


def test_exceptions_and_error_status() -> None:
    from pysnmp.proto import rfc1905

    data = pysnmp_response(5, [rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView], error_status=5)
    resp = ber.decode_response(data)
    assert [vb.exception for vb in resp.varbinds] == ["noSuchObject", "noSuchInstance", "endOfMibView"]
    assert resp.error_status == 5


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:-3], "truncated|runs past"),
        (lambda b: b + b"\x00", "not an SNMP message"),
        (lambda b: b"\x31" + b[1:], "not an SNMP message"),
        (lambda b: b.replace(b"\xa2", b"\xa0", 1), "unexpected PDU type"),
    ],
)
def test_malformed_messages_raise_ber_error(mutate, message) -> None:  # type: ignore[no-untyped-def]
    data = pysnmp_response(7, [rfc1902.Integer(1), rfc1902.Integer(2), rfc1902.Integer(3)])
    with pytest.raises(ber.BerError, match=message):
        ber.decode_response(mutate(data))


def test_out_of_range_counter_is_rejected() -> None:
    good = ber.tlv(ber.COUNTER32, b"\x00\xff\xff\xff\xff")
    bad = ber.tlv(ber.COUNTER32, b"\x01\x00\x00\x00\x00")
    negative = ber.tlv(ber.COUNTER64, b"\xff")
    for value, ok in ((good, True), (bad, False), (negative, False)):
        vb = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OBJECT_IDENTIFIER, ber.oid_body(OIDS[0])) + value)
        pdu = ber.tlv(ber.RESPONSE, ber.encode_integer(9) + b"\x02\x01\x00\x02\x01\x00" + ber.tlv(ber.SEQUENCE, vb))
        msg = ber.tlv(ber.SEQUENCE, ber.encode_integer(1) + ber.tlv(ber.OCTET_STRING, b"x") + pdu)
        if ok:
            assert ber.decode_response(msg).varbinds[0].value == 2**32 - 1
        else:
            with pytest.raises(ber.BerError):
                ber.decode_response(msg)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_crashes(data: bytes) -> None:
    with contextlib.suppress(ber.BerError):
        ber.decode_response(data)
    ber.request_id_of(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**70), st.integers(min_value=-(2**40), max_value=2**40))
def test_oid_and_integer_round_trip(arc: int, value: int) -> None:
    oid = (1, 3, 6, 1, arc, 0)
    assert ber.decode_oid_body(ber.oid_body(oid)) == oid
    enc = ber.encode_integer(value)
    ref = encoder.encode(univ.Integer(value))
    # pyasn1 writes -128, -32768, … with a redundant 0xff byte; X.690 wants the minimal form
    if len(ref) > 3 and ref[2] == 0xFF and ref[3] & 0x80:
        ref = bytes([ref[0], ref[1] - 1]) + ref[3:]
    assert ref == enc
    assert int(decoder.decode(enc, asn1Spec=univ.Integer())[0]) == value


@pytest.mark.parametrize("value", [-128, -129, -32768, -32769, 127, 128, 0, -1])
def test_integers_are_minimal_twos_complement(value: int) -> None:
    enc = ber.encode_integer(value)
    assert int(decoder.decode(enc, asn1Spec=univ.Integer())[0]) == value
    assert len(enc) - 2 == max(1, ((value if value >= 0 else ~value).bit_length() + 8) // 8)
