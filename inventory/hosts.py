"""The machines a catalog implies: one per tier instance, with a stable name and a planned address.

Both the provisioning program (fixed IPs on its ports) and the Ansible inventory read this,
so an address is decided in one place. Addresses are handed out per zone, in catalog
order, from the 10th address of the zone's subnet: append new platforms at the end of the
catalog to keep existing addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from .model import Catalog, Classification, TierName

FIRST_HOST_OFFSET = 10


@dataclass(frozen=True)
class PlannedHost:
    name: str
    platform: str
    tier: TierName
    index: int
    zone: str
    address: IPv4Address
    roles: tuple[str, ...]
    classification: Classification


class AddressPlanError(ValueError):
    """A zone's subnet has too few addresses for the hosts placed in it."""


def plan_hosts(cat: Catalog) -> list[PlannedHost]:
    zones = {z.id: z for z in cat.datacenter.zones}
    next_offset = dict.fromkeys(zones, FIRST_HOST_OFFSET)
    hosts = []
    for plat in cat.platforms:
        for tier in plat.tiers:
            zone = zones[tier.zone]
            for n in range(1, tier.count + 1):
                offset = next_offset[tier.zone]
                if offset >= zone.subnet.num_addresses - 1:
                    raise AddressPlanError(f"zone '{zone.id}' ({zone.subnet}) has no address left for {plat.id}")
                next_offset[tier.zone] = offset + 1
                hosts.append(
                    PlannedHost(
                        name=f"{plat.id}-{tier.name.value}-{n:02d}",
                        platform=plat.id,
                        tier=tier.name,
                        index=n,
                        zone=zone.id,
                        address=zone.subnet.network_address + offset,
                        roles=tuple(tier.roles),
                        classification=plat.classification,
                    )
                )
    return hosts
