"""The firewall rules a catalog implies, computed once and read by the program and by `hdc infra plan`.

Least privilege: one security group per platform tier, default rules deleted, and only
  - the platform's declared flows (ingress on the target tier from the source tier's group,
    and the matching egress on the source tier),
  - the management ports (SSH, node exporter; `hdc:managementPorts`) from the management zone to every tier,
  - HTTPS from anywhere to the web tiers of public platforms in the DMZ,
  - egress from every tier to the management zone's infrastructure services (DNS, NTP, proxy),
  - egress to anywhere from management-zone tiers on the ports they need to run the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from inventory.model import Catalog, Exposure, Platform, Tier, ZoneKind

WORLD = "0.0.0.0/0"
# What the management zone reaches on every host: SSH, and the node exporter for monitoring.
DEFAULT_MANAGEMENT_PORTS: tuple[int, ...] = (22, 9100)
PUBLIC_WEB_PORTS: tuple[int, ...] = (443,)
# What every host reaches in the management zone: DNS, NTP, the package/HTTP proxy, syslog.
MANAGEMENT_SERVICES: tuple[tuple[Literal["tcp", "udp"], int], ...] = (
    ("udp", 53),
    ("tcp", 53),
    ("udp", 123),
    ("tcp", 3128),
    ("tcp", 6514),
)
# What management-zone hosts reach anywhere besides the management ports: SNMP on routers, HTTPS APIs.
MANAGEMENT_OUTBOUND: tuple[tuple[Literal["tcp", "udp"], int], ...] = (
    ("udp", 161),
    ("tcp", 443),
)


def group_key(platform_id: str, tier: str) -> str:
    """The name of a tier's security group (also its server group): `<platform>-<tier>`."""
    return f"{platform_id}-{tier}"


@dataclass(frozen=True, order=True)
class RuleSpec:
    """One security-group rule: exactly one of `remote_group` (a group key) or `remote_cidr` is set."""

    group: str
    direction: Literal["ingress", "egress"]
    protocol: Literal["tcp", "udp"]
    port: int
    remote_group: str | None = None
    remote_cidr: str | None = None
    reason: str = ""

    @property
    def name(self) -> str:
        remote = self.remote_group or (self.remote_cidr or "").replace("/", "_")
        return f"{self.group}-{self.direction[:2]}-{self.protocol}{self.port}-{remote}"

    @property
    def world_open(self) -> bool:
        return self.remote_cidr in {WORLD, "::/0"}


def management_cidrs(cat: Catalog) -> list[str]:
    return [str(z.subnet) for z in cat.datacenter.zones if z.kind is ZoneKind.MANAGEMENT]


def _zone_kind(cat: Catalog, tier: Tier) -> ZoneKind:
    return next(z.kind for z in cat.datacenter.zones if z.id == tier.zone)


def is_public_web(cat: Catalog, plat: Platform, tier: Tier) -> bool:
    return plat.exposure is Exposure.PUBLIC and tier.name.value == "web" and _zone_kind(cat, tier) is ZoneKind.DMZ


def security_rules(cat: Catalog, management_ports: Sequence[int] = DEFAULT_MANAGEMENT_PORTS) -> list[RuleSpec]:
    """Every rule of every group, sorted and without duplicates."""
    platforms = {p.id: p for p in cat.platforms}
    mgmt = management_cidrs(cat)
    rules: set[RuleSpec] = set()
    for plat in cat.platforms:
        for flow in plat.flows:
            src = group_key(plat.id, flow.from_tier.value)
            target = platforms[flow.to_platform or plat.id]
            dst = group_key(target.id, flow.to_tier.value)
            why = f"flow {plat.id}/{flow.from_tier.value} -> {target.id}/{flow.to_tier.value}"
            rules.add(RuleSpec(dst, "ingress", flow.protocol, flow.port, remote_group=src, reason=why))
            rules.add(RuleSpec(src, "egress", flow.protocol, flow.port, remote_group=dst, reason=why))
        for tier in plat.tiers:
            key = group_key(plat.id, tier.name.value)
            for cidr in mgmt:
                for port in management_ports:
                    rules.add(RuleSpec(key, "ingress", "tcp", port, remote_cidr=cidr, reason="management"))
                for proto, port in MANAGEMENT_SERVICES:
                    rules.add(RuleSpec(key, "egress", proto, port, remote_cidr=cidr, reason="management services"))
            if is_public_web(cat, plat, tier):
                for port in PUBLIC_WEB_PORTS:
                    rules.add(RuleSpec(key, "ingress", "tcp", port, remote_cidr=WORLD, reason="public web"))
            if _zone_kind(cat, tier) is ZoneKind.MANAGEMENT:
                outbound = [*MANAGEMENT_OUTBOUND, *(("tcp", p) for p in management_ports)]
                for proto, port in outbound:
                    rules.add(RuleSpec(key, "egress", proto, port, remote_cidr=WORLD, reason="network operations"))
    return sorted(rules)


def groups(cat: Catalog) -> list[str]:
    return [group_key(p.id, t.name.value) for p in cat.platforms for t in p.tiers]
