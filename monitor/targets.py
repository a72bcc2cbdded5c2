"""The poll targets a catalog implies, and how N poller instances share them.

The catalog is the only list of facilities: every connected facility becomes a target. One that
cannot be polled (no router, no credentials, an address nobody can poll, an unresolvable secret)
is still a target, carrying its configuration error, so it is exported and logged rather than
silently missing from the NOC's view.

Sharding is rendezvous (highest-random-weight) hashing on the facility id: each instance keeps
the facilities for which its shard number scores highest. Going from N to N+1 instances moves
only the ~1/(N+1) of facilities the new shard wins; nothing else changes hands.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from ipaddress import IPv4Address

from hdc.errors import UserError
from inventory.model import Catalog, Facility, FacilityStatus, SnmpV2c, SnmpV3
from inventory.secrets import SecretError, resolve


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'i/N' with 1 <= i <= N (operators count from one)."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise UserError(f"--shard {text!r}: expected i/N, e.g. 1/4")
        i, n = int(m.group(1)), int(m.group(2))
        if n < 1 or not 1 <= i <= n:
            raise UserError(f"--shard {text!r}: i must be between 1 and N (N >= 1)")
        return cls(i - 1, n)

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"


def _weight(shard_index: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{shard_index}\x00{key}".encode(), digest_size=8).digest(), "big")


def shard_of(key: str, count: int) -> int:
    """The 0-based shard that owns `key` among `count` shards (rendezvous hashing)."""
    return max(range(count), key=lambda i: _weight(i, key))


@dataclass(frozen=True)
class V2cCredentials:
    community: bytes


@dataclass(frozen=True)
class V3Credentials:
    user: str
    auth_protocol: str
    auth_key: str
    priv_protocol: str
    priv_key: str
    context: str = ""


@dataclass(frozen=True)
class Target:
    """One facility uplink to poll. `config_error` set means: export it as unpollable, never poll."""

    facility_id: str
    name: str
    kind: str
    region: str
    host: str
    port: int
    if_index: int
    bandwidth_bps: float | None
    credentials: V2cCredentials | V3Credentials | None
    config_error: str | None = None

    @property
    def labels(self) -> tuple[str, str, str, str]:
        return (self.facility_id, self.name, self.kind, self.region)


def address_problem(addr: IPv4Address) -> str | None:
    """Why an address cannot be a router's management address, or None."""
    if addr.is_unspecified:
        return "is the unspecified address 0.0.0.0"
    if addr.is_multicast:
        return "is a multicast address"
    if addr == IPv4Address("255.255.255.255"):
        return "is the broadcast address"
    if addr.is_reserved:
        return "is in a reserved range (240.0.0.0/4)"
    if addr.is_link_local:
        return "is link-local (169.254.0.0/16)"
    return None


def _credentials(fac: Facility) -> V2cCredentials | V3Credentials:
    assert fac.link is not None and fac.link.snmp is not None
    snmp = fac.link.snmp
    if isinstance(snmp, SnmpV2c):
        return V2cCredentials(resolve(snmp.community_ref).encode())
    assert isinstance(snmp, SnmpV3)
    auth, priv = resolve(snmp.auth_key_ref), resolve(snmp.priv_key_ref)
    for what, value in (("auth key", auth), ("priv key", priv)):
        if len(value) < 8:
            raise SecretError(f"SNMPv3 {what} is shorter than 8 characters (RFC 3414)")
    return V3Credentials(snmp.user, snmp.auth_protocol, auth, snmp.priv_protocol, priv, snmp.context)


def target_for(fac: Facility) -> Target:
    link = fac.link
    host = str(link.router) if link and link.router else ""
    port = link.snmp_port if link else 161
    if_index = link.uplink.if_index if link and link.uplink else 0
    bandwidth = link.bandwidth_mbps * 1e6 if link else None
    base = Target(fac.id, fac.name, fac.kind.value, fac.region, host, port, if_index, bandwidth, None)
    missing = [
        what
        for what, present in (
            ("link", link is not None),
            ("link.router", bool(link and link.router)),
            ("link.snmp", bool(link and link.snmp)),
            ("link.uplink", bool(link and link.uplink)),
        )
        if not present
    ]
    if missing:
        return _with_error(base, f"connected but not pollable: catalog lacks {', '.join(missing)}")
    assert link is not None and link.router is not None
    problem = address_problem(link.router)
    if problem:
        return _with_error(base, f"router address {link.router} {problem}")
    try:
        creds = _credentials(fac)
    except SecretError as exc:
        return _with_error(base, f"credentials: {exc}")
    return Target(fac.id, fac.name, fac.kind.value, fac.region, host, port, if_index, bandwidth, creds)


def _with_error(t: Target, error: str) -> Target:
    return Target(t.facility_id, t.name, t.kind, t.region, t.host, t.port, t.if_index, t.bandwidth_bps, None, error)


def targets_from_catalog(catalog: Catalog, shard: Shard | None = None) -> list[Target]:
    """Every connected facility of this shard as a target (planned facilities are not polled)."""
    out = []
    for fac in catalog.facilities:
        if fac.status is not FacilityStatus.CONNECTED:
            continue
        if shard is not None and shard.count > 1 and shard_of(fac.id, shard.count) != shard.index:
            continue
        out.append(target_for(fac))
    return out
