"""Health-data rules as Pulumi policies, importable without the engine so tests call them directly.

Resource policies judge one resource from its own properties (they work during `preview`,
before ids exist); stack policies follow references between resources (a rule's group, a
floating IP's port, a volume's type), which are known once resources are created.
Property names are the engine's camelCase ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network, ip_address, ip_network
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

INSTANCE = "openstack:compute/instance:Instance"
NETWORK = "openstack:networking/network:Network"
SUBNET = "openstack:networking/subnet:Subnet"
PORT = "openstack:networking/port:Port"
FLOATING_IP = "openstack:networking/floatingIp:FloatingIp"
FLOATING_IP_ASSOCIATE = "openstack:networking/floatingIpAssociate:FloatingIpAssociate"
SEC_GROUP = "openstack:networking/secGroup:SecGroup"
SEC_GROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"
VOLUME = "openstack:blockstorage/volume:Volume"
VOLUME_TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
BUCKET = "minio:index/s3Bucket:S3Bucket"
BUCKET_VERSIONING = "minio:index/s3BucketVersioning:S3BucketVersioning"
DYNAMIC = "pulumi-python:dynamic:Resource"

PROTECTED_ZONE_KINDS = frozenset({"data", "management"})
DMZ_WEB_PORTS = frozenset({80, 443})
MANAGEMENT_PORTS = frozenset({22})


# -- helpers ------------------------------------------------------------------------------
def tag_value(props: Mapping[str, Any], key: str) -> str | None:
    """The value of an `hdc-key=value` tag (OpenStack tags are plain strings)."""
    for tag in props.get("tags") or []:
        if isinstance(tag, str) and tag.startswith(f"{key}="):
            return tag.split("=", 1)[1]
    return None


def meta(props: Mapping[str, Any], key: str) -> str | None:
    value = (props.get("metadata") or {}).get(key)
    return value if isinstance(value, str) else None


def _is_public(addr: str) -> bool:
    try:
        return not ip_address(addr).is_private
    except ValueError:
        return False


def _world_open(props: Mapping[str, Any]) -> bool:
    """An ingress rule with no remote restriction at all is as open as 0.0.0.0/0."""
    prefix = props.get("remoteIpPrefix")
    if prefix:
        try:
            return ip_network(str(prefix), strict=False).prefixlen == 0
        except ValueError:
            return True  # unparseable: cannot show it is narrower than the world
    return not props.get("remoteGroupId") and not props.get("remoteAddressGroupId")


def _ports(props: Mapping[str, Any]) -> tuple[int | None, int | None]:
    lo, hi = props.get("portRangeMin"), props.get("portRangeMax")
    return (int(lo) if lo is not None else None, int(hi) if hi is not None else None)


def _by_type(resources: Iterable[PolicyResource], typ: str) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type == typ]


def _by_id(resources: Iterable[PolicyResource], typ: str) -> dict[str, PolicyResource]:
    return {str(r.props["id"]): r for r in resources if r.resource_type == typ and r.props.get("id")}


# -- no public address on data or management tiers ----------------------------------------
def _no_public_address(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    if args.resource_type == FLOATING_IP:
        kind = tag_value(props, "hdc-zone-kind")
        if kind in PROTECTED_ZONE_KINDS:
            report(f"floating IP '{args.name}' gives a public address to a {kind}-zone host", None)
        elif kind is None:
            report(
                f"floating IP '{args.name}' has no hdc-zone-kind tag: cannot show it is not a data/management host",
                None,
            )
    elif args.resource_type == NETWORK:
        kind = tag_value(props, "hdc-zone-kind")
        if kind in PROTECTED_ZONE_KINDS and (props.get("external") or props.get("shared")):
            report(f"network '{args.name}' of a {kind} zone must be neither external nor shared", None)
    elif args.resource_type == INSTANCE:
        kind = meta(props, "hdc_zone_kind")
        if kind in PROTECTED_ZONE_KINDS:
            for key in ("accessIpV4", "accessIpV6"):
                addr = props.get(key)
                if addr and _is_public(str(addr)):
                    report(f"instance '{args.name}' in a {kind} zone has the public address {addr}", None)
            for net in props.get("networks") or []:
                for key in ("fixedIpV4", "fixedIpV6"):
                    addr = net.get(key) if isinstance(net, Mapping) else None
                    if addr and _is_public(str(addr)):
                        report(f"instance '{args.name}' in a {kind} zone has the public address {addr}", None)


no_public_address = ResourceValidationPolicy(
    name="no-public-address-on-data-or-management",
    description="Hosts of the data and management zones never get a public address.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_no_public_address,
)


def _public_addresses_in_dmz(args: StackValidationArgs, report: ReportViolation) -> None:
    ports = _by_id(args.resources, PORT)
    for fip in _by_type(args.resources, FLOATING_IP) + _by_type(args.resources, FLOATING_IP_ASSOCIATE):
        port_id = fip.props.get("portId")
        if not port_id:
            continue
        port = ports.get(str(port_id))
        if port is None:
            report(f"floating IP '{fip.name}' points at port {port_id}, which this stack does not manage", fip.urn)
            continue
        kind = tag_value(port.props, "hdc-zone-kind")
        if kind != "dmz":
            report(
                f"floating IP '{fip.name}' is on port '{port.name}' in a {kind or 'untagged'} zone, not the DMZ",
                fip.urn,
            )


public_addresses_in_dmz = StackValidationPolicy(
    name="public-addresses-only-in-dmz",
    description="A floating IP may only be bound to a port of the DMZ.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_public_addresses_in_dmz,
)


# -- no security group open to the world except DMZ web ports -----------------------------
def _world_ingress_ports(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SEC_GROUP_RULE:
        return
    props = args.props
    if props.get("direction") != "ingress" or not _world_open(props):
        return
    lo, hi = _ports(props)
    if props.get("protocol") != "tcp" or lo is None or lo != hi or lo not in DMZ_WEB_PORTS:
        what = f"{props.get('protocol') or 'any protocol'} {lo}-{hi}" if lo is not None else "every port"
        report(f"rule '{args.name}' opens {what} to the whole world; only TCP 80/443 of DMZ web tiers may be", None)


world_ingress_ports = ResourceValidationPolicy(
    name="no-world-open-ingress-except-web",
    description="Ingress from 0.0.0.0/0 (or from anywhere) is allowed only on TCP 80 and 443.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_world_ingress_ports,
)


def _world_ingress_only_dmz_web(args: StackValidationArgs, report: ReportViolation) -> None:
    groups = _by_id(args.resources, SEC_GROUP)
    for rule in _by_type(args.resources, SEC_GROUP_RULE):
        if rule.props.get("direction") != "ingress" or not _world_open(rule.props):
            continue
        group = groups.get(str(rule.props.get("securityGroupId")))
        if group is None:
            report(f"world-open rule '{rule.name}' is in a group this stack does not manage", rule.urn)
            continue
        kind, tier = tag_value(group.props, "hdc-zone-kind"), tag_value(group.props, "hdc-tier")
        exposure = tag_value(group.props, "hdc-exposure")
        if (kind, tier, exposure) != ("dmz", "web", "public"):
            report(
                f"world-open rule '{rule.name}' is in group '{group.name}' (zone {kind}, tier {tier}, "
                f"exposure {exposure}); only public web tiers in the DMZ may accept the world",
                rule.urn,
            )


world_ingress_only_dmz_web = StackValidationPolicy(
    name="world-ingress-only-on-dmz-web-groups",
    description="Only the security groups of public web tiers in the DMZ accept traffic from the world.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_world_ingress_only_dmz_web,
)


def _management_from_management_zone(args: StackValidationArgs, report: ReportViolation) -> None:
    ports = {int(p) for p in args.get_config().get("managementPorts", MANAGEMENT_PORTS)}
    mgmt: list[IPv4Network] = []
    for subnet in _by_type(args.resources, SUBNET):
        if tag_value(subnet.props, "hdc-zone-kind") == "management" and subnet.props.get("cidr"):
            net = ip_network(str(subnet.props["cidr"]), strict=False)
            if isinstance(net, IPv4Network):
                mgmt.append(net)
    for rule in _by_type(args.resources, SEC_GROUP_RULE):
        props = rule.props
        lo, hi = _ports(props)
        if props.get("direction") != "ingress" or lo is None or hi is None:
            continue
        if not any(lo <= p <= hi for p in ports) or props.get("remoteGroupId"):
            continue
        prefix = props.get("remoteIpPrefix")
        try:
            source = ip_network(str(prefix), strict=False) if prefix else ip_network("0.0.0.0/0")
        except ValueError:
            source = ip_network("0.0.0.0/0")
        if not any(isinstance(source, IPv4Network) and source.subnet_of(m) for m in mgmt):
            report(
                f"rule '{rule.name}' opens management port(s) {lo}-{hi} to {source}, outside the management zone",
                rule.urn,
            )


management_from_management_zone = StackValidationPolicy(
    name="management-only-from-management-zone",
    description="Management ports (SSH; pack config managementPorts) are reachable only from the management zone.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_management_from_management_zone,
    config_schema=PolicyConfigSchema(
        {"managementPorts": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}}}
    ),
)


# -- every volume holding medical data encrypted ------------------------------------------
def encrypted_volume_types(args: StackValidationArgs) -> set[str]:
    names = {
        str(vt.props.get("name"))
        for vt in _by_type(args.resources, VOLUME_TYPE)
        if (vt.props.get("extraSpecs") or {}).get("hdc:encrypted") == "true"
    }
    names.update(str(n) for n in args.get_config().get("encryptedVolumeTypes", []))
    return names


def _medical_volumes_encrypted(args: StackValidationArgs, report: ReportViolation) -> None:
    encrypted = encrypted_volume_types(args)
    for vol in _by_type(args.resources, VOLUME):
        classification = meta(vol.props, "hdc_classification")
        if classification not in {"medical", None}:
            continue
        vtype = vol.props.get("volumeType")
        label = "medical" if classification else "unclassified (treated as medical)"
        if not vtype:
            report(f"{label} volume '{vol.name}' uses the cloud's default volume type, not an encrypted one", vol.urn)
        elif str(vtype) not in encrypted:
            report(f"{label} volume '{vol.name}' uses volume type '{vtype}', which is not encrypted", vol.urn)
    for inst in _by_type(args.resources, INSTANCE):
        if meta(inst.props, "hdc_classification") != "medical":
            continue
        for bd in inst.props.get("blockDevices") or []:
            if bd.get("destinationType") == "volume" and str(bd.get("volumeType")) not in encrypted:
                report(f"medical instance '{inst.name}' boots from an unencrypted volume", inst.urn)


medical_volumes_encrypted = StackValidationPolicy(
    name="medical-volumes-encrypted",
    description="Every volume of a medical platform (or without classification) uses an encrypted volume type.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_medical_volumes_encrypted,
    config_schema=PolicyConfigSchema({"encryptedVolumeTypes": {"type": "array", "items": {"type": "string"}}}),
)


# -- archive buckets with object lock and versioning --------------------------------------
def _bucket_object_lock(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == BUCKET and not args.props.get("objectLocking"):
        report(f"bucket '{args.props.get('bucket') or args.name}' is created without object locking", None)
    if args.resource_type == BUCKET_VERSIONING:
        status = (args.props.get("versioningConfiguration") or {}).get("status")
        if status != "Enabled":
            report(f"versioning of bucket '{args.props.get('bucket')}' is '{status}', not 'Enabled'", None)


bucket_object_lock = ResourceValidationPolicy(
    name="archive-buckets-object-locked",
    description="Archive buckets are created with object locking and versioning enabled.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_bucket_object_lock,
)


def _buckets_versioned_and_retained(args: StackValidationArgs, report: ReportViolation) -> None:
    versioned = {
        str(v.props.get("bucket"))
        for v in _by_type(args.resources, BUCKET_VERSIONING)
        if (v.props.get("versioningConfiguration") or {}).get("status") == "Enabled"
    }
    retained = {
        str(d.props.get("bucket"))
        for d in _by_type(args.resources, DYNAMIC)
        if d.props.get("mode") == "COMPLIANCE" and (d.props.get("years") or d.props.get("days"))
    }
    for bucket in _by_type(args.resources, BUCKET):
        name = str(bucket.props.get("bucket") or bucket.name)
        if name not in versioned:
            report(f"bucket '{name}' has no enabled versioning", bucket.urn)
        if name not in retained:
            report(f"bucket '{name}' has no COMPLIANCE default retention", bucket.urn)


buckets_versioned_and_retained = StackValidationPolicy(
    name="archive-buckets-versioned-and-retained",
    description="Every bucket has versioning enabled and a COMPLIANCE default retention.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_buckets_versioned_and_retained,
)


# -- every platform with a backup class ---------------------------------------------------
def _backup_class(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in {INSTANCE, VOLUME}:
        return
    if not meta(args.props, "hdc_backup_class"):
        what = "instance" if args.resource_type == INSTANCE else "volume"
        report(f"{what} '{args.name}' has no hdc_backup_class: its platform must declare a backup class", None)
    allowed = args.get_config().get("backupClasses")
    value = meta(args.props, "hdc_backup_class")
    if allowed and value and value not in allowed:
        report(f"'{args.name}' has backup class '{value}', not one of {', '.join(allowed)}", None)


backup_class = ResourceValidationPolicy(
    name="every-platform-has-a-backup-class",
    description="Every instance and volume carries its platform's backup class.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_backup_class,
    config_schema=PolicyConfigSchema({"backupClasses": {"type": "array", "items": {"type": "string"}}}),
)


RESOURCE_POLICIES: list[ResourceValidationPolicy] = [
    no_public_address,
    world_ingress_ports,
    bucket_object_lock,
    backup_class,
]
STACK_POLICIES: list[StackValidationPolicy] = [
    public_addresses_in_dmz,
    world_ingress_only_dmz_web,
    management_from_management_zone,
    medical_volumes_encrypted,
    buckets_versioned_and_retained,
]
POLICIES = [*RESOURCE_POLICIES, *STACK_POLICIES]
