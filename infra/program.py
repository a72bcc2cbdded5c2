"""The Pulumi program: the whole private cloud of one catalog, per stack.

Order matters only where resources refer to each other: zones first, then every platform's
groups and hosts, then the rules (a flow may point at a platform declared later), then the
archive storage and the outputs the configuration step reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from inventory.ansible import build_inventory, group_name
from inventory.hosts import AddressPlanError, plan_hosts
from inventory.loader import CatalogError
from inventory.model import Catalog

from .buckets import archive_buckets
from .pki import InternalCA
from .platform import HealthPlatform, PlatformArgs
from .security import security_rules
from .settings import SettingsError, StackSettings, read_settings
from .storage import ArchiveStorage, ArchiveStorageArgs, MinioConnection
from .target import CloudTarget, ZoneNet


def make_target(settings: StackSettings) -> CloudTarget:
    """The cloud behind `hdc:target`; add a branch (and a CloudTarget subclass) for another cloud."""
    if settings.target == "openstack":
        from .openstack_target import OpenStackTarget

        return OpenStackTarget(settings)
    raise ValueError(f"hdc:target: unknown target '{settings.target}'")  # pragma: no cover - pydantic refuses


def host_groups(cat: Catalog) -> dict[str, list[str]]:
    """The Ansible groups of each host, as `build_inventory` names them."""
    out: dict[str, list[str]] = {}
    for h in plan_hosts(cat):
        out[h.name] = [
            group_name("platform", h.platform),
            group_name("tier", h.tier.value),
            group_name("zone", h.zone),
            *(group_name("", r) for r in h.roles),
        ]
    return out


@dataclass
class Built:
    """What `build` declared: the components and the stack outputs (tests await them)."""

    platforms: dict[str, HealthPlatform]
    storage: ArchiveStorage | None
    ca: InternalCA
    networks: dict[str, ZoneNet]
    outputs: dict[str, Any]


def _mapping(values: dict[str, pulumi.Output[str]]) -> pulumi.Output[dict[str, str]]:
    """A dict output, empty included (`Output.all()` of nothing would be a list)."""
    if not values:
        return pulumi.Output.from_input({})
    return pulumi.Output.all(**values)


def build(settings: StackSettings, cat: Catalog) -> Built:
    """Declare every resource and export the outputs the configuration step reads."""
    target = make_target(settings)
    hosts = plan_hosts(cat)
    networks = target.zone_networks(cat.datacenter.zones, None)
    ca = InternalCA(
        f"{settings.prefix}-ca", settings.organization, settings.ca_validity_days, settings.cert_validity_days
    )
    platforms: dict[str, HealthPlatform] = {}
    for plat in cat.platforms:
        platforms[plat.id] = HealthPlatform(
            plat.id,
            PlatformArgs(
                platform=plat,
                catalog=cat,
                hosts=hosts,
                networks=networks,
                target=target,
                ca=ca,
                domain=settings.domain,
            ),
        )
    all_groups = {k: v for p in platforms.values() for k, v in p.group_ids.items()}
    rules = security_rules(cat, settings.management_ports)
    for comp in platforms.values():
        comp.add_rules(rules, all_groups, target)

    buckets = archive_buckets(
        cat, settings.records_bucket, settings.audit_bucket, settings.archive_default_retention_days
    )
    storage = None
    if buckets:
        storage = ArchiveStorage(
            f"{settings.prefix}-archive-storage",
            ArchiveStorageArgs(
                buckets=buckets,
                user_name=f"{settings.prefix}-archive",
                connection=MinioConnection.from_config(settings.minio_secure),
                protect=settings.protect_data,
            ),
        )

    handles = {name: h for p in platforms.values() for name, h in p.hosts.items()}
    names = list(handles)
    addresses = pulumi.Output.all(*(handles[n].address for n in names)).apply(
        lambda a: dict(zip(names, a, strict=True))
    )
    groups = host_groups(cat)
    certs = {n: c for p in platforms.values() for n, c in p.certs.items()}
    outputs: dict[str, Any] = {
        "catalog": cat.name,
        "hosts": addresses.apply(lambda a: {n: {"address": a[n], "groups": groups[n]} for n in names}),
        "inventory": addresses.apply(lambda a: build_inventory(cat, a)),
        "public_addresses": _mapping({n: h.public_address for n, h in handles.items() if h.public_address is not None}),
        "ca_cert_pem": ca.cert_pem,
        "host_certificates": _mapping({n: c.cert_pem for n, c in certs.items()}),
        "host_private_keys": pulumi.Output.secret(_mapping({n: c.key_pem for n, c in certs.items()})),
        "security_groups": _mapping(all_groups),
    }
    if storage is not None:
        # {"records": …, "audit": …}: HDC_ARCHIVE_BUCKET_RECORDS / HDC_ARCHIVE_BUCKET_AUDIT of the service
        outputs["archive_buckets"] = storage.buckets
        outputs["archive_default_retention_days"] = settings.archive_default_retention_days
        outputs["archive_access_key"] = storage.access_key
        outputs["archive_secret_key"] = storage.secret_key
    for key, value in outputs.items():
        pulumi.export(key, value)
    return Built(platforms=platforms, storage=storage, ca=ca, networks=networks, outputs=outputs)


def main() -> None:
    """Run by Pulumi; operator mistakes become a RunError (one message, no traceback)."""
    try:
        settings = read_settings()
        build(settings, settings.load_catalog())
    except CatalogError as exc:
        raise pulumi.RunError(f"catalog {settings.catalog!r} has {len(exc.problems)} problem(s):\n{exc}") from None
    except (SettingsError, AddressPlanError, ValueError) as exc:
        raise pulumi.RunError(str(exc)) from None
