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
        rules[host].append(FirewallRule(port=port, protocol=proto, sources=allowed, comment=comment))
    return rules


def admin_sources(cat: Catalog) -> list[str]:
    """Where administrators and the automation connect from: the management zones' subnets."""
    return [str(z.subnet) for z in cat.datacenter.zones if z.kind is ZoneKind.MANAGEMENT]


_DOW = {"0": "Sun", "1": "Mon", "2": "Tue", "3": "Wed", "4": "Thu", "5": "Fri", "6": "Sat", "7": "Sun"}


def _cron_field(value: str, what: str) -> str:
    """One cron field as systemd calendar syntax: '*', 'N', 'N,M', '*/S', 'A-B', 'A-B/S'."""
    if value == "*":
        return "*"
    out = []
    for part in value.split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            raise ValueError(f"{what} '{value}': step must be a number")
        if base == "*":
            base = "0" if what != "day" and what != "month" else "1"
            out.append(f"{base}/{step}" if step else "*")
            continue
        lo, dash, hi = base.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"{what} '{value}': not a number, range or step")
        rng = f"{int(lo):02d}..{int(hi):02d}" if dash else f"{int(lo):02d}"
        out.append(f"{rng}/{step}" if step else rng)
    return ",".join(out)


def cron_to_on_calendar(expr: str) -> str:
    """A 5-field cron expression as a systemd OnCalendar value (the catalog's backup schedules)."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron '{expr}': expected 5 fields (minute hour day month weekday)")
    minute, hour, day, month, dow = fields
    days = ""
    if dow != "*":
        names = []
        for part in dow.split(","):
            lo, dash, hi = part.partition("-")
            if lo not in _DOW or (dash and hi not in _DOW):
                raise ValueError(f"cron '{expr}': weekday '{dow}' must use 0-7")
            names.append(f"{_DOW[lo]}..{_DOW[hi]}" if dash else _DOW[lo])
        days = ",".join(names) + " "
    return (
        f"{days}*-{_cron_field(month, 'month')}-{_cron_field(day, 'day')} "
        f"{_cron_field(hour, 'hour')}:{_cron_field(minute, 'minute')}:00"
    )


def backup_vars(cat: Catalog) -> dict[str, dict[str, Any]]:
    """Per platform: the backup schedule, retention and offsite flag of its backup class."""
    classes = {b.id: b for b in cat.backup_classes}
    out: dict[str, dict[str, Any]] = {}
    for plat in cat.platforms:
        cls = classes.get(plat.backup_class)
        if cls is None:
            continue
        out[plat.id] = {
            "hdc_backup_on_calendar": cron_to_on_calendar(cls.schedule),
            "hdc_backup_keep_days": cls.keep_days,
            "hdc_backup_offsite": cls.offsite,
        }
    return out


def derived_host_vars(cat: Catalog, addresses: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Per host: `hdc_firewall_allow` and the backup settings of its platform's backup class."""
    backups = backup_vars(cat)
    platform_of = {h.name: h.platform for h in plan_hosts(cat)}
    return {
        host: {"hdc_firewall_allow": [r.model_dump() for r in rules], **backups.get(platform_of[host], {})}
        for host, rules in firewall_rules(cat, addresses).items()
    }


def derived_group_vars(cat: Catalog) -> dict[str, Any]:
    return {"hdc_admin_sources": admin_sources(cat), "hdc_catalog": cat.name}
