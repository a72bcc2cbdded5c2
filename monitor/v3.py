"""SNMPv3 (USM authPriv) GETs through pysnmp 7, normalised to the BER codec's tags.

SNMPv3 needs engine discovery, time windows, key localisation, HMAC and AES: that is pysnmp's
job. Each target is configured in pysnmp's engine once (user, parameters, address); requests
then go straight to its command generator with numeric OIDs, skipping the per-request
configuration and MIB resolution of `get_cmd`, which cost about half of the CPU. Answers are
mapped to the same (tag, value) pairs the v2c hot path produces, so one validation routine
handles both.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES,
    USM_PRIV_CFB256_AES,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
)
from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
from pysnmp.proto import errind, rfc1902, rfc1905

from . import ber
from .poller import OID_NAMES, PollError, Runtime, Values, oids_for
from .settings import PollerSettings
from .targets import V3Credentials

AUTH = {
    "SHA": USM_AUTH_HMAC96_SHA,
    "SHA224": USM_AUTH_HMAC128_SHA224,
    "SHA256": USM_AUTH_HMAC192_SHA256,
    "SHA384": USM_AUTH_HMAC256_SHA384,
    "SHA512": USM_AUTH_HMAC384_SHA512,
}
PRIV = {"AES": USM_PRIV_CFB128_AES, "AES192": USM_PRIV_CFB192_AES, "AES256": USM_PRIV_CFB256_AES}

_AUTH_ERRORS = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.DecryptionError,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.UnsupportedSecurityLevel,
    errind.NotInTimeWindow,
    errind.UnknownSecurityName,
)

# Most specific classes first: pysnmp's application types subclass univ.Integer / OctetString.
_TYPES: tuple[tuple[type, int], ...] = (
    (rfc1905.NoSuchObject, ber.NO_SUCH_OBJECT),
    (rfc1905.NoSuchInstance, ber.NO_SUCH_INSTANCE),
    (rfc1905.EndOfMibView, ber.END_OF_MIB_VIEW),
    (rfc1902.Counter64, ber.COUNTER64),
    (rfc1902.Counter32, ber.COUNTER32),
    (rfc1902.TimeTicks, ber.TIMETICKS),
    (rfc1902.Gauge32, ber.GAUGE32),
    (rfc1902.Unsigned32, ber.GAUGE32),
    (rfc1902.Integer32, ber.INTEGER),
    (rfc1902.IpAddress, ber.IP_ADDRESS),
    (rfc1902.Opaque, ber.OPAQUE),
    (rfc1902.OctetString, ber.OCTET_STRING),
    (rfc1902.ObjectIdentifier, ber.OBJECT_IDENTIFIER),
    (rfc1902.Null, ber.NULL),
)


_LCD = CommandGeneratorLcdConfigurator()
_NULL = rfc1902.Null("")


def new_engine() -> Any:
    return SnmpEngine()


def normalise(value: Any) -> tuple[int, Any]:
    for cls, tag in _TYPES:
        if isinstance(value, cls):
            v: Any = value
            if tag in ber.EXCEPTION_TAGS or tag == ber.NULL:
                return tag, None
            if tag in (ber.OCTET_STRING, ber.IP_ADDRESS, ber.OPAQUE):
                return tag, bytes(v.asOctets())
            if tag == ber.OBJECT_IDENTIFIER:
                return tag, tuple(v)
            return tag, int(v)
    return -1, None


def user_data(c: V3Credentials) -> UsmUserData:
    return UsmUserData(
        c.user,
        authKey=c.auth_key,
        privKey=c.priv_key,
        authProtocol=AUTH[c.auth_protocol],
        privProtocol=PRIV[c.priv_protocol],
    )


async def get(engine: Any, rt: Runtime, names: tuple[str, ...], settings: PollerSettings) -> tuple[Values, float]:
    """One authPriv GET of `names`; PollError on timeouts, authentication failures, bad answers."""
    t = rt.target
    creds = t.credentials
    assert isinstance(creds, V3Credentials)
    if rt.v3_transport is None:
        transport = await UdpTransportTarget.create(
            (t.host, t.port), timeout=settings.timeout, retries=settings.retries
        )
        addr_name, _ = _LCD.configure(engine, user_data(creds), transport, creds.context)
        rt.v3_transport = (addr_name, rfc1902.OctetString(creds.context))
    addr_name, context = rt.v3_transport
    oids = oids_for(names, t.if_index)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[tuple[Any, Any, Any, Any]] = loop.create_future()

    def done(
        _engine: Any, _handle: Any, err_ind: Any, err_status: Any, err_index: Any, var_binds: Any, _ctx: Any
    ) -> None:
        if not future.done():
            future.set_result((err_ind, err_status, err_index, var_binds))

    try:
        cmdgen.GetCommandGenerator().send_varbinds(
            engine, addr_name, None, context, [(rfc1902.ObjectName(o), _NULL) for o in oids], done, None
        )
        err_ind, err_status, err_index, var_binds = await future
    except Exception as exc:  # pysnmp raises on unusual local conditions (bad keys, encoding)
        raise PollError("snmp_error", f"SNMPv3 request failed: {exc}") from None
    arrived = time.monotonic()
    if err_ind:
        if isinstance(err_ind, errind.RequestTimedOut):
            raise PollError(
                "timeout",
                f"no answer after {settings.retries + 1} attempt(s) of {settings.timeout:g} s "
                "(router unreachable, agent down, or unknown engine)",
            )
        if isinstance(err_ind, _AUTH_ERRORS):
            raise PollError("auth", f"SNMPv3 user {creds.user} rejected: {err_ind} (check the user and keys)")
        raise PollError("snmp_error", f"SNMPv3: {err_ind}")
    if err_status:
        idx = int(err_index)
        what = f" on {OID_NAMES[names[idx - 1]]}" if 0 < idx <= len(names) else ""
        raise PollError("agent_error", f"agent answered {err_status.prettyPrint()}{what}", status=int(err_status))
    if len(var_binds) != len(oids):
        raise PollError("bad_response", f"{len(var_binds)} values for {len(oids)} requested")
    values: Values = {}
    for name, oid, (vb_oid, vb_value) in zip(names, oids, var_binds, strict=True):
        if tuple(vb_oid) != oid:
            raise PollError("bad_response", f"answer names {vb_oid} where {OID_NAMES[name]} was asked")
        tag, value = normalise(vb_value)
        if tag < 0:
            raise PollError("bad_type", f"{OID_NAMES[name]}: unsupported value type {type(vb_value).__name__}")
        values[name] = (tag, value)
    return values, arrived
