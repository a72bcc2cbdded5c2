"""Variables Ansible needs that only the catalog knows, rendered on the controller.

The catalog is the single source: firewall openings come from the platforms' declared `flows`
(the allowed sources of a flow are the addresses of the source tier's hosts) and from their
exposure, never from a list kept in `playbooks/`. Ports that a role opens for its own peers
(node_exporter to Prometheus, SeaweedFS nodes to each other…) are computed by that role from
inventory groups, since the role owns those ports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from inventory.hosts import PlannedHost, plan_hosts
from inventory.model import Catalog, Exposure, TierName, ZoneKind

ANYWHERE = "0.0.0.0/0"


class FirewallRule(BaseModel):
    """One nftables opening: `protocol` `port` from `sources` (addresses or networks)."""

    model_config = ConfigDict(frozen=True)

    port: int
    protocol: Literal["tcp", "udp"] = "tcp"
    sources: list[str]
    comment: str


def _address(h: PlannedHost, addresses: Mapping[str, str]) -> str:
    return addresses.get(h.name, str(h.address))


def firewall_rules(cat: Catalog, addresses: Mapping[str, str] | None = None) -> dict[str, list[FirewallRule]]:
    """Per host: the openings the catalog declares towards it (flows, then public exposure)."""
    addresses = addresses or {}
    hosts = plan_hosts(cat)
    by_tier: dict[tuple[str, TierName], list[PlannedHost]] = defaultdict(list)
    for h in hosts:
        by_tier[(h.platform, h.tier)].append(h)
    merged: dict[tuple[str, int, str], tuple[set[str], list[str]]] = {}
    for plat in cat.platforms:
        for flow in plat.flows:
            target = flow.to_platform or plat.id
            sources = {_address(h, addresses) for h in by_tier[(plat.id, flow.from_tier)]}
            for dest in by_tier[(target, flow.to_tier)]:
                srcs, why = merged.setdefault((dest.name, flow.port, flow.protocol), (set(), []))
                srcs |= sources
                why.append(f"{plat.id}/{flow.from_tier.value}")
        if plat.exposure is Exposure.PUBLIC:
            for tier in plat.tiers:
                if tier.name is not TierName.WEB:
                    continue
                for dest in by_tier[(plat.id, tier.name)]:
                    for port in tier.ports:
                        srcs, why = merged.setdefault((dest.name, port, "tcp"), (set(), []))
                        srcs.add(ANYWHERE)
                        why.append("public")
    rules: dict[str, list[FirewallRule]] = {h.name: [] for h in hosts}
    for (host, port, proto), (srcs, why) in sorted(merged.items()):
        allowed = [ANYWHERE] if ANYWHERE in srcs else sorted(srcs)
        comment = "from " + ", ".join(sorted(set(why)))
        rules[host].append(FirewallRule(port=port, protocol=proto, sources=allowed, comment=comment))  # type: ignore[arg-type]
    return rules


def admin_sources(cat: Catalog) -> list[str]:
    """Where administrators and the automation connect from: the management zones' subnets."""
    return [str(z.subnet) for z in cat.datacenter.zones if z.kind is ZoneKind.MANAGEMENT]


def derived_host_vars(cat: Catalog, addresses: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`hdc_firewall_allow` for every host the catalog implies, ready for an inventory's host vars."""
    return {
        host: {"hdc_firewall_allow": [r.model_dump() for r in rules]}
        for host, rules in firewall_rules(cat, addresses).items()
    }


def derived_group_vars(cat: Catalog) -> dict[str, Any]:
    return {"hdc_admin_sources": admin_sources(cat), "hdc_catalog": cat.name}
