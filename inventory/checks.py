"""Whole-catalog rules: references, duplicates, addressing and link speeds.

Each check yields `(path, message)` pairs; the loader turns paths into file:line.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network

from .hosts import FIRST_HOST_OFFSET
from .model import Catalog, Classification, Exposure, FacilityKind, FacilityStatus, TierName, ZoneKind

Finding = tuple[tuple[str | int, ...], str]


def _duplicates(items: list[str], section: tuple[str | int, ...], what: str) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for i, item_id in enumerate(items):
        if item_id in seen:
            yield (*section, i, "id"), f"duplicate {what} id '{item_id}' (first at index {seen[item_id]})"
        else:
            seen[item_id] = i


def check_ids(cat: Catalog) -> Iterator[Finding]:
    yield from _duplicates([r.id for r in cat.regions], ("regions",), "region")
    yield from _duplicates([f.id for f in cat.facilities], ("facilities",), "facility")
    yield from _duplicates([p.id for p in cat.platforms], ("platforms",), "platform")
    dc = cat.datacenter
    yield from _duplicates([z.id for z in dc.zones], ("datacenter", "zones"), "zone")
    yield from _duplicates([c.id for c in dc.clusters], ("datacenter", "clusters"), "cluster")
    yield from _duplicates([s.id for s in dc.storage_pools], ("datacenter", "storage_pools"), "storage pool")
    yield from _duplicates([b.id for b in cat.backup_classes], ("backup_classes",), "backup class")
    yield from _duplicates([r.id for r in cat.retention_classes], ("retention_classes",), "retention class")


def check_facilities(cat: Catalog) -> Iterator[Finding]:
    regions = {r.id for r in cat.regions}
    by_id = {f.id: f for f in cat.facilities}
    seen_router: dict[tuple[str, int], str] = {}
    for i, fac in enumerate(cat.facilities):
        base: tuple[str | int, ...] = ("facilities", i)
        if fac.region not in regions:
            yield (*base, "region"), f"unknown region '{fac.region}'"
        link = fac.link
        if fac.status is FacilityStatus.CONNECTED:
            if link is None:
                yield (*base, "link"), "a connected facility needs a link"
                continue
            for fld in ("router", "snmp", "uplink"):
                if getattr(link, fld) is None:
                    yield (*base, "link", fld), f"a connected facility's link needs '{fld}'"
        if link is None:
            continue
        if link.router is not None:
            key = (str(link.router), link.snmp_port)
            if key in seen_router:
                yield (
                    (*base, "link", "router"),
                    f"router {key[0]} port {key[1]} is already used by facility '{seen_router[key]}'",
                )
            else:
                seen_router[key] = fac.id
        if link.parent is None:
            continue
        parent = by_id.get(link.parent)
        if parent is None:
            yield (*base, "link", "parent"), f"unknown aggregation site '{link.parent}'"
            continue
        if parent.id == fac.id:
            yield (*base, "link", "parent"), "a facility cannot hang from itself"
            continue
        if parent.kind is not FacilityKind.AGGREGATION_SITE:
            yield (*base, "link", "parent"), f"parent '{parent.id}' is a {parent.kind.value}, not an aggregation site"
        if parent.link is not None and link.bandwidth_mbps > parent.link.bandwidth_mbps:
            yield (
                (*base, "link", "bandwidth_mbps"),
                f"{link.bandwidth_mbps} Mb/s is faster than its parent '{parent.id}' link "
                f"({parent.link.bandwidth_mbps} Mb/s)",
            )
    yield from _parent_cycles(cat)


def _parent_cycles(cat: Catalog) -> Iterator[Finding]:
    # self-parents are reported by check_facilities; here only loops through other sites
    parents = {
        f.id: f.link.parent for f in cat.facilities if f.link is not None and f.link.parent and f.link.parent != f.id
    }
    index = {f.id: i for i, f in enumerate(cat.facilities)}
    reported: set[str] = set()
    for start in parents:
        seen: list[str] = []
        node: str | None = start
        while node is not None and node in parents and node not in seen:
            seen.append(node)
            node = parents[node]
        if node is not None and node in seen and node not in reported:
            cycle = seen[seen.index(node) :]
            reported.update(cycle)
            yield (
                ("facilities", index[node], "link", "parent"),
                "parent links form a loop: " + " -> ".join([*cycle, node]),
            )


def check_datacenter(cat: Catalog) -> Iterator[Finding]:
    zones = cat.datacenter.zones
    vlans: dict[int, str] = {}
    for i, zone in enumerate(zones):
        if zone.vlan in vlans:
            yield ("datacenter", "zones", i, "vlan"), f"VLAN {zone.vlan} is already used by zone '{vlans[zone.vlan]}'"
        else:
            vlans[zone.vlan] = zone.id
    nets: list[tuple[IPv4Network, str]] = []
    for i, zone in enumerate(zones):
        for other, other_id in nets:
            if zone.subnet.overlaps(other):
                yield (
                    ("datacenter", "zones", i, "subnet"),
                    f"{zone.subnet} overlaps {other} of zone '{other_id}'",
                )
        nets.append((zone.subnet, zone.id))
    needed: dict[str, int] = {}
    for plat in cat.platforms:
        for tier in plat.tiers:
            needed[tier.zone] = needed.get(tier.zone, 0) + tier.count
    for i, zone in enumerate(zones):
        usable = zone.subnet.num_addresses - FIRST_HOST_OFFSET - 1
        if needed.get(zone.id, 0) > usable:
            yield (
                ("datacenter", "zones", i, "subnet"),
                f"{zone.subnet} has room for {max(usable, 0)} hosts from offset {FIRST_HOST_OFFSET}, "
                f"but the platforms place {needed[zone.id]} hosts in zone '{zone.id}'",
            )


def check_platforms(cat: Catalog) -> Iterator[Finding]:
    zones = {z.id: z for z in cat.datacenter.zones}
    clusters = {c.id for c in cat.datacenter.clusters}
    pools = {s.id: s for s in cat.datacenter.storage_pools}
    backups = {b.id for b in cat.backup_classes}
    retentions = {r.id for r in cat.retention_classes}
    platforms = {p.id: p for p in cat.platforms}
    for i, plat in enumerate(cat.platforms):
        base: tuple[str | int, ...] = ("platforms", i)
        if plat.backup_class not in backups:
            yield (*base, "backup_class"), f"unknown backup class '{plat.backup_class}'"
        if plat.retention_class is not None and plat.retention_class not in retentions:
            yield (*base, "retention_class"), f"unknown retention class '{plat.retention_class}'"
        if plat.classification is not Classification.PUBLIC and plat.retention_class is None:
            yield (*base, "retention_class"), f"a {plat.classification.value} platform needs a retention class"
        names: set[str] = set()
        for j, tier in enumerate(plat.tiers):
            tbase = (*base, "tiers", j)
            if tier.name in names:
                yield (*tbase, "name"), f"tier '{tier.name.value}' is declared twice"
            names.add(tier.name)
            zone = zones.get(tier.zone)
            if zone is None:
                yield (*tbase, "zone"), f"unknown zone '{tier.zone}'"
            elif zone.kind is ZoneKind.DMZ and tier.name is not TierName.WEB:
                yield (*tbase, "zone"), f"only a web tier may sit in the DMZ, not '{tier.name.value}'"
            elif zone.kind is ZoneKind.DMZ and plat.exposure is not Exposure.PUBLIC:
                yield (*tbase, "zone"), "an internal platform has no tier in the DMZ (set exposure: public)"
            if tier.cluster not in clusters:
                yield (*tbase, "cluster"), f"unknown hypervisor cluster '{tier.cluster}'"
            if tier.storage_pool is not None:
                pool = pools.get(tier.storage_pool)
                if pool is None:
                    yield (*tbase, "storage_pool"), f"unknown storage pool '{tier.storage_pool}'"
                elif plat.classification is Classification.MEDICAL and not pool.encrypted:
                    yield (*tbase, "storage_pool"), f"medical data on unencrypted pool '{pool.id}'"
            if tier.volume_gb and tier.storage_pool is None:
                yield (*tbase, "storage_pool"), "a tier with volume_gb needs a storage_pool"
        if plat.exposure is Exposure.PUBLIC and not any(
            t.name is TierName.WEB and t.zone in zones and zones[t.zone].kind is ZoneKind.DMZ for t in plat.tiers
        ):
            yield (*base, "exposure"), "a public platform needs a web tier in the DMZ"
        for j, flow in enumerate(plat.flows):
            fbase = (*base, "flows", j)
            if plat.tier(flow.from_tier) is None:
                yield (*fbase, "from_tier"), f"platform '{plat.id}' has no tier '{flow.from_tier.value}'"
            target = platforms.get(flow.to_platform or plat.id)
            if target is None:
                yield (*fbase, "to_platform"), f"flow to unknown platform '{flow.to_platform}'"
                continue
            to_tier = target.tier(flow.to_tier)
            if to_tier is None:
                yield (*fbase, "to_tier"), f"platform '{target.id}' has no tier '{flow.to_tier.value}'"
            elif flow.port not in to_tier.ports:
                yield (
                    (*fbase, "port"),
                    f"tier '{target.id}/{to_tier.name.value}' does not listen on port {flow.port} "
                    f"(ports: {', '.join(map(str, to_tier.ports)) or 'none'})",
                )


ALL_CHECKS = (check_ids, check_facilities, check_datacenter, check_platforms)


def run_checks(cat: Catalog) -> list[Finding]:
    return [finding for check in ALL_CHECKS for finding in check(cat)]
