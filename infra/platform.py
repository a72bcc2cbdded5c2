"""One health platform as a Pulumi component: per tier a security group, a server group and its hosts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from inventory.hosts import PlannedHost
from inventory.model import Catalog, Platform, ZoneKind

from .boot import boot_volume_pool
from .pki import InternalCA, IssuedCert
from .security import RuleSpec, group_key, is_public_web
from .target import CloudTarget, HostHandle, HostSpec, ZoneNet


@dataclass
class PlatformArgs:
    """What a platform needs from the rest of the program; all of it derived from the catalog."""

    platform: Platform
    catalog: Catalog
    hosts: list[PlannedHost]
    networks: Mapping[str, ZoneNet]
    target: CloudTarget
    ca: InternalCA
    domain: str


def platform_tags(plat: Platform, tier: str, zone_kind: ZoneKind) -> list[str]:
    return [
        "hdc",
        f"hdc-platform={plat.id}",
        f"hdc-tier={tier}",
        f"hdc-zone-kind={zone_kind.value}",
        f"hdc-classification={plat.classification.value}",
        f"hdc-exposure={plat.exposure.value}",
        f"hdc-backup-class={plat.backup_class}",
    ]


class HealthPlatform(pulumi.ComponentResource):
    """Everything of one platform; rules are added afterwards, once every platform's groups exist."""

    group_ids: dict[str, pulumi.Output[str]]
    hosts: dict[str, HostHandle]
    certs: dict[str, IssuedCert]

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hdc:infra:HealthPlatform", name, None, opts)
        plat = args.platform
        cat = args.catalog
        target = args.target
        zones = {z.id: z for z in cat.datacenter.zones}
        clusters = {c.id: c for c in cat.datacenter.clusters}
        pools = {p.id: p for p in cat.datacenter.storage_pools}
        self.platform_id = plat.id
        self.group_ids = {}
        self.hosts = {}
        self.certs = {}
        for tier in plat.tiers:
            key = group_key(plat.id, tier.name.value)
            zone_kind = zones[tier.zone].kind
            tags = platform_tags(plat, tier.name.value, zone_kind)
            self.group_ids[key] = target.security_group(
                key, f"{plat.name}: {tier.name.value} tier ({tier.zone} zone)", tags, self
            )
            # Hard anti-affinity cannot place more instances than the cluster has hosts.
            policy = "anti-affinity" if tier.count <= clusters[tier.cluster].hosts else "soft-anti-affinity"
            server_group_id = target.server_group(key, policy, self)
            # Flavors and volume types are shared by platforms: they hang from the stack, not from
            # whichever platform asked first (a parent is part of the URN; removing it would replace them).
            flavor_id = target.flavor(tier.flavor, None)
            volume_type = target.volume_type(pools[tier.storage_pool], None) if tier.storage_pool else None
            boot_pool = boot_volume_pool(cat, plat, tier)
            boot_volume_type = target.volume_type(boot_pool, None) if boot_pool else None
            for host in (h for h in args.hosts if h.platform == plat.id and h.tier is tier.name):
                spec = HostSpec(
                    host=host,
                    zone_kind=zone_kind,
                    flavor=tier.flavor,
                    flavor_id=flavor_id,
                    security_group_id=self.group_ids[key],
                    server_group_id=server_group_id,
                    public=is_public_web(cat, plat, tier),
                    backup_class=plat.backup_class,
                    volume_gb=tier.volume_gb,
                    volume_type=volume_type,
                    boot_volume_type=boot_volume_type,
                    tags=tags,
                )
                handle = target.host(spec, args.networks[host.zone], self)
                self.hosts[host.name] = handle
                self.certs[host.name] = args.ca.issue(
                    host.name, [f"{host.name}.{args.domain}", host.name], [str(host.address)], self
                )
        self.register_outputs(
            {
                "hosts": {name: h.address for name, h in self.hosts.items()},
                "security_groups": self.group_ids,
            }
        )

    def add_rules(
        self, rules: list[RuleSpec], group_ids: Mapping[str, pulumi.Output[str]], target: CloudTarget
    ) -> None:
        """Create this platform's groups' rules; remote groups may belong to other platforms."""
        for rule in rules:
            if rule.group not in self.group_ids:
                continue
            remote = group_ids[rule.remote_group] if rule.remote_group else None
            target.security_rule(rule, self.group_ids[rule.group], remote, self)
