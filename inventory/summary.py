"""The short summary `hdc catalog check` prints for a valid catalog."""

from __future__ import annotations

from collections import Counter

from .model import Catalog


def summarize(cat: Catalog) -> dict[str, object]:
    regions = {r.id: r.name for r in cat.regions}
    return {
        "name": cat.name,
        "facilities": len(cat.facilities),
        "by_status": dict(Counter(f.status.value for f in cat.facilities).most_common()),
        "by_kind": dict(Counter(f.kind.value for f in cat.facilities).most_common()),
        "by_region": {regions.get(k, k): v for k, v in Counter(f.region for f in cat.facilities).most_common()},
        "polled_links": len(cat.polled_facilities()),
        "platforms": len(cat.platforms),
        "by_classification": dict(Counter(p.classification.value for p in cat.platforms).most_common()),
        "hosts": sum(t.count for p in cat.platforms for t in p.tiers),
        "zones": {z.id: f"{z.kind.value} vlan {z.vlan} {z.subnet}" for z in cat.datacenter.zones},
        "clusters": len(cat.datacenter.clusters),
        "storage_pools": len(cat.datacenter.storage_pools),
    }


def render_summary(cat: Catalog) -> str:
    s = summarize(cat)
    lines = [f"catalog '{s['name']}' is valid"]
    lines.append(f"  facilities: {s['facilities']} ({_pairs(s['by_status'])}); polled links: {s['polled_links']}")
    lines.append(f"  by kind:    {_pairs(s['by_kind'])}")
    lines.append(f"  by region:  {_pairs(s['by_region'])}")
    lines.append(f"  platforms:  {s['platforms']} ({_pairs(s['by_classification'])}); hosts: {s['hosts']}")
    zones = s["zones"]
    assert isinstance(zones, dict)
    for zid, desc in zones.items():
        lines.append(f"  zone {zid}: {desc}")
    lines.append(f"  clusters: {s['clusters']}; storage pools: {s['storage_pools']}")
    return "\n".join(lines)


def _pairs(d: object) -> str:
    assert isinstance(d, dict)
    return ", ".join(f"{k} {v}" for k, v in d.items())
