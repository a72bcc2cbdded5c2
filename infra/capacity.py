"""What a catalog would build, and whether it fits the data center: the engine of `hdc infra plan`.

Works from the catalog alone (no cloud credentials): counts per zone and platform, then
vCPU and RAM per hypervisor cluster (with the cluster's overcommit) and volume space per
storage pool, against their capacity.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from inventory.hosts import FIRST_HOST_OFFSET, AddressPlanError, plan_hosts
from inventory.model import Catalog, Cluster, StoragePool

from .boot import BootPoolError, boot_volume_pool
from .buckets import DEFAULT_RETENTION_DAYS, BucketSpec, archive_buckets, default_bucket_name
from .security import RuleSpec, group_key, is_public_web, security_rules


@dataclass
class ZonePlan:
    id: str
    kind: str
    vlan: int
    subnet: str
    instances: int = 0
    public_addresses: int = 0
    addresses_left: int = 0


@dataclass
class PlatformPlan:
    id: str
    classification: str
    exposure: str
    tiers: list[tuple[str, int, str]]  # (tier, instances, zone)
    instances: int
    volumes: int
    volume_gb: int
    security_groups: int
    rules: int
    server_groups: int
    public_addresses: int
    backup_class: str
    retention_class: str | None


@dataclass
class ClusterUse:
    cluster: Cluster
    vcpu: int = 0
    ram_gb: int = 0
    disk_gb: int = 0
    instances: int = 0
    largest_vcpu: int = 0
    largest_ram_gb: int = 0

    @property
    def vcpu_capacity(self) -> float:
        c = self.cluster
        return c.hosts * c.vcpu_per_host * c.cpu_overcommit

    @property
    def ram_capacity(self) -> float:
        c = self.cluster
        return c.hosts * c.ram_gb_per_host * c.ram_overcommit

    def fits_minus_one_host(self) -> bool:
        """Whether the cluster still holds everything with one host down (for maintenance or failure)."""
        c = self.cluster
        if c.hosts < 2:
            return False
        return (
            self.vcpu <= (c.hosts - 1) * c.vcpu_per_host * c.cpu_overcommit
            and self.ram_gb <= (c.hosts - 1) * c.ram_gb_per_host * c.ram_overcommit
        )


@dataclass
class PoolUse:
    pool: StoragePool
    volumes: int = 0
    gb: int = 0
    boot_volumes: int = 0


@dataclass
class InfraPlan:
    catalog: str
    zones: list[ZonePlan]
    platforms: list[PlatformPlan]
    clusters: list[ClusterUse]
    pools: list[PoolUse]
    buckets: list[BucketSpec]
    rules: list[RuleSpec]
    flavors: list[tuple[int, int, int]]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems


def build_plan(
    cat: Catalog,
    environment: str | None = None,
    records_bucket: str | None = None,
    audit_bucket: str | None = None,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> InfraPlan:
    """Bucket names as the stack would make them: environment defaults to the catalog's name."""
    problems: list[str] = []
    warnings: list[str] = []
    try:
        hosts = plan_hosts(cat)
    except AddressPlanError as exc:
        problems.append(str(exc))
        hosts = []
    rules = security_rules(cat)
    rules_per_group = Counter(r.group for r in rules)
    zones = {
        z.id: ZonePlan(
            z.id, z.kind.value, z.vlan, str(z.subnet), addresses_left=z.subnet.num_addresses - 1 - FIRST_HOST_OFFSET
        )
        for z in cat.datacenter.zones
    }
    clusters = {c.id: ClusterUse(c) for c in cat.datacenter.clusters}
    pools = {p.id: PoolUse(p) for p in cat.datacenter.storage_pools}
    per_zone = Counter(h.zone for h in hosts)
    for zid, n in per_zone.items():
        zones[zid].instances = n
        zones[zid].addresses_left -= n
    platforms: list[PlatformPlan] = []
    for plat in cat.platforms:
        public = 0
        volumes = 0
        volume_gb = 0
        for tier in plat.tiers:
            use = clusters[tier.cluster]
            use.vcpu += tier.flavor.vcpu * tier.count
            use.ram_gb += tier.flavor.ram_gb * tier.count
            use.disk_gb += tier.flavor.disk_gb * tier.count
            use.instances += tier.count
            use.largest_vcpu = max(use.largest_vcpu, tier.flavor.vcpu)
            use.largest_ram_gb = max(use.largest_ram_gb, tier.flavor.ram_gb)
            if tier.flavor.vcpu > use.cluster.vcpu_per_host * use.cluster.cpu_overcommit:
                problems.append(
                    f"platform '{plat.id}' tier '{tier.name.value}': flavor of {tier.flavor.vcpu} vCPU does not fit "
                    f"one host of cluster '{use.cluster.id}' ({use.cluster.vcpu_per_host} vCPU)"
                )
            if tier.flavor.ram_gb > use.cluster.ram_gb_per_host * use.cluster.ram_overcommit:
                problems.append(
                    f"platform '{plat.id}' tier '{tier.name.value}': flavor of {tier.flavor.ram_gb} GB RAM does not "
                    f"fit one host of cluster '{use.cluster.id}' ({use.cluster.ram_gb_per_host} GB)"
                )
            if tier.count > use.cluster.hosts and tier.count > 1:
                warnings.append(
                    f"platform '{plat.id}' tier '{tier.name.value}': {tier.count} instances on {use.cluster.hosts} "
                    f"hosts of '{use.cluster.id}': soft anti-affinity (some instances share a host)"
                )
            try:
                boot_pool = boot_volume_pool(cat, plat, tier)
            except BootPoolError as exc:
                problems.append(str(exc))
                boot_pool = None
            if boot_pool is not None:
                use.disk_gb -= tier.flavor.disk_gb * tier.count  # not on the hypervisor's disk
                pools[boot_pool.id].volumes += tier.count
                pools[boot_pool.id].gb += tier.flavor.disk_gb * tier.count
                pools[boot_pool.id].boot_volumes += tier.count
            if tier.volume_gb and tier.storage_pool:
                pool = pools[tier.storage_pool]
                pool.volumes += tier.count
                pool.gb += tier.volume_gb * tier.count
                volumes += tier.count
                volume_gb += tier.volume_gb * tier.count
            if is_public_web(cat, plat, tier):
                public += tier.count
                zones[tier.zone].public_addresses += tier.count
        tier_keys = [group_key(plat.id, t.name.value) for t in plat.tiers]
        platforms.append(
            PlatformPlan(
                id=plat.id,
                classification=plat.classification.value,
                exposure=plat.exposure.value,
                tiers=[(t.name.value, t.count, t.zone) for t in plat.tiers],
                instances=sum(t.count for t in plat.tiers),
                volumes=volumes,
                volume_gb=volume_gb,
                security_groups=len(plat.tiers),
                rules=sum(rules_per_group[k] for k in tier_keys),
                server_groups=len(plat.tiers),
                public_addresses=public,
                backup_class=plat.backup_class,
                retention_class=plat.retention_class,
            )
        )
    for use in clusters.values():
        c = use.cluster
        if use.vcpu > use.vcpu_capacity:
            problems.append(
                f"cluster '{c.id}': {use.vcpu} vCPU needed, capacity {use.vcpu_capacity:g} "
                f"({c.hosts} hosts × {c.vcpu_per_host} vCPU × overcommit {c.cpu_overcommit:g})"
            )
        if use.ram_gb > use.ram_capacity:
            problems.append(
                f"cluster '{c.id}': {use.ram_gb} GB RAM needed, capacity {use.ram_capacity:g} GB "
                f"({c.hosts} hosts × {c.ram_gb_per_host} GB × overcommit {c.ram_overcommit:g})"
            )
        if use.instances and not use.fits_minus_one_host() and use.vcpu <= use.vcpu_capacity:
            warnings.append(f"cluster '{c.id}': the load does not fit with one host down (no N+1 headroom)")
    for pool in pools.values():
        if pool.gb > pool.pool.capacity_gb:
            problems.append(
                f"storage pool '{pool.pool.id}': {pool.gb:,} GB of volumes needed, capacity {pool.pool.capacity_gb:,} GB"
            )
    for z in zones.values():
        if z.addresses_left < 0:
            problems.append(f"zone '{z.id}' ({z.subnet}): {-z.addresses_left} addresses short")
    flavors = sorted({(t.flavor.vcpu, t.flavor.ram_gb, t.flavor.disk_gb) for p in cat.platforms for t in p.tiers})
    env = environment or cat.name
    try:
        buckets = archive_buckets(
            cat,
            records_bucket or default_bucket_name(env, "records"),
            audit_bucket or default_bucket_name(env, "audit"),
            retention_days,
        )
    except ValueError as exc:
        problems.append(str(exc))
        buckets = []
    return InfraPlan(
        catalog=cat.name,
        zones=list(zones.values()),
        platforms=platforms,
        clusters=list(clusters.values()),
        pools=list(pools.values()),
        buckets=buckets,
        rules=rules,
        flavors=flavors,
        problems=problems,
        warnings=warnings,
    )


def _pct(used: float, capacity: float) -> str:
    return f"{100 * used / capacity:.0f}%" if capacity else "-"


def render_plan(plan: InfraPlan) -> str:
    """The text `hdc infra plan` prints."""
    out: list[str] = []
    total_instances = sum(p.instances for p in plan.platforms)
    total_volumes = sum(p.volumes for p in plan.platforms)
    total_gb = sum(p.volume_gb for p in plan.platforms)
    out.append(
        f"catalog '{plan.catalog}': {len(plan.zones)} zones, {len(plan.platforms)} platforms, "
        f"{total_instances} instances, {total_volumes} volumes ({total_gb:,} GB), "
        f"{sum(p.security_groups for p in plan.platforms)} security groups, {len(plan.rules)} rules, "
        f"{len(plan.flavors)} flavors, {len(plan.buckets)} archive buckets"
    )
    out.append("")
    out.append("Zones (each: 1 network, 1 subnet, 1 interface on the core router)")
    for z in plan.zones:
        out.append(
            f"  {z.id:<12} {z.kind:<12} vlan {z.vlan:<5} {z.subnet:<18} instances {z.instances:>4}"
            f"  public addresses {z.public_addresses:>3}  addresses left {max(z.addresses_left, 0)}"
        )
    out.append("")
    out.append("Platforms (per tier: 1 security group, 1 server group with anti-affinity)")
    width = max((len(p.id) for p in plan.platforms), default=8)
    for p in plan.platforms:
        tiers = " ".join(f"{t}×{n}@{z}" for t, n, z in p.tiers)
        out.append(
            f"  {p.id:<{width}} {p.classification:<14} {p.exposure:<8} instances {p.instances:>3}  "
            f"volumes {p.volumes:>3} ({p.volume_gb:>7,} GB)  groups {p.security_groups}  rules {p.rules:>3}  "
            f"public {p.public_addresses}  backup {p.backup_class}  retention {p.retention_class or '-'}  [{tiers}]"
        )
    if plan.buckets:
        out.append("")
        b0 = plan.buckets[0]
        out.append(
            "Archive storage (MinIO; the archive service's buckets: object lock, versioning, "
            f"COMPLIANCE default {b0.default_retention_days} days, noncurrent versions expire after "
            f"{b0.noncurrent_expiry_days} days)"
        )
        for b in plan.buckets:
            out.append(f"  {b.role:<8} {b.name:<40} HDC_ARCHIVE_BUCKET_{b.role.upper()}")
    out.append("")
    out.append("Capacity")
    for c in plan.clusters:
        cl = c.cluster
        out.append(
            f"  cluster {cl.id:<14} vCPU {c.vcpu:>6} / {c.vcpu_capacity:>8g} ({_pct(c.vcpu, c.vcpu_capacity):>4})"
            f"  RAM {c.ram_gb:>7,} / {c.ram_capacity:>9,.0f} GB ({_pct(c.ram_gb, c.ram_capacity):>4})"
            f"  local boot disks {c.disk_gb:,} GB  instances {c.instances}"
            f"  [{cl.hosts} hosts × {cl.vcpu_per_host} vCPU × {cl.cpu_overcommit:g}, {cl.ram_gb_per_host} GB × "
            f"{cl.ram_overcommit:g}]"
        )
    for s in plan.pools:
        pool = s.pool
        enc = "encrypted" if pool.encrypted else "NOT encrypted"
        out.append(
            f"  pool    {pool.id:<14} {pool.kind:<10} {enc:<13} volumes {s.volumes:>4} "
            f"(boot {s.boot_volumes:>3})  "
            f"{s.gb:>9,} / {pool.capacity_gb:>9,} GB ({_pct(s.gb, pool.capacity_gb):>4})"
        )
    for w in plan.warnings:
        out.append(f"warning: {w}")
    if plan.problems:
        out.append("")
        out.append(f"DOES NOT FIT: {len(plan.problems)} problem(s)")
        out.extend(f"  - {p}" for p in plan.problems)
    else:
        out.append("")
        out.append("fits: every cluster and storage pool has room for this catalog")
    return "\n".join(out)


def render_rules(rules: list[RuleSpec]) -> str:
    """Every rule, grouped by security group: what an auditor compares with the declared flows."""
    out = ["Firewall rules (security group: direction protocol/port remote — why)"]
    for group, items in rules_by_group(rules).items():
        out.append(f"  {group}")
        for r in items:
            remote = f"group {r.remote_group}" if r.remote_group else r.remote_cidr
            out.append(f"    {r.direction:<7} {r.protocol}/{r.port:<5} {remote}  — {r.reason}")
    return "\n".join(out)


def rules_by_group(rules: list[RuleSpec]) -> dict[str, list[RuleSpec]]:
    out: dict[str, list[RuleSpec]] = defaultdict(list)
    for r in rules:
        out[r.group].append(r)
    return dict(out)
