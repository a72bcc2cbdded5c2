"""The policy pack: every mocked resource of both catalogs passes; each policy has a failing case."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from mockcloud import ProgramRun, Recorded
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from infra.policy import rules
from inventory.model import Catalog

OPTS = PolicyResourceOptions(
    protect=False,
    ignore_changes=[],
    delete_before_replace=None,
    aliases=[],
    custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
    additional_secret_outputs=[],
)


def _urn(typ: str, name: str) -> str:
    return f"urn:pulumi:test::hdc::{typ}::{name}"


def resource_args(
    typ: str, name: str, props: dict[str, Any], config: dict[str, Any] | None = None
) -> ResourceValidationArgs:
    return ResourceValidationArgs(typ, props, _urn(typ, name), name, OPTS, None, config or {})


def policy_resource(typ: str, name: str, props: dict[str, Any]) -> PolicyResource:
    return PolicyResource(typ, props, _urn(typ, name), name, OPTS, None, None, [], {})


def check_resource(
    policy: Any, typ: str, name: str, props: dict[str, Any], config: dict[str, Any] | None = None
) -> list[str]:
    found: list[str] = []
    policy.validate(resource_args(typ, name, props, config), lambda msg, urn=None: found.append(msg))
    return found


def check_stack(policy: Any, resources: list[PolicyResource], config: dict[str, Any] | None = None) -> list[str]:
    found: list[str] = []
    policy.validate(StackValidationArgs(resources, config or {}), lambda msg, urn=None: found.append(msg))
    return found


def as_policy_resources(records: list[Recorded]) -> list[PolicyResource]:
    return [policy_resource(r.typ, r.name, r.props) for r in records if r.id]


# -- the whole program passes every policy ------------------------------------------------
def test_every_mocked_resource_passes_the_pack(example: tuple[Catalog, ProgramRun]) -> None:
    _, run = example
    violations: list[str] = []
    for rec in run.cloud.records:
        if not rec.id:
            continue  # components
        for policy in rules.RESOURCE_POLICIES:
            violations += [f"{policy.name}: {m}" for m in check_resource(policy, rec.typ, rec.name, rec.props)]
    resources = as_policy_resources(run.cloud.records)
    for stack_policy in rules.STACK_POLICIES:
        violations += [f"{stack_policy.name}: {m}" for m in check_stack(stack_policy, resources)]
    assert violations == []


def test_a_mistake_in_the_program_output_is_caught(example: tuple[Catalog, ProgramRun]) -> None:
    """SSH opened to the world on a database group: three policies object."""
    _, run = example
    records = [copy.deepcopy(r) for r in run.cloud.records if r.id]
    ssh = next(
        r for r in records if r.typ == rules.SEC_GROUP_RULE and r.props["portRangeMin"] == 22 and "-db" in r.name
    )
    ssh.inputs["remoteIpPrefix"] = ssh.outputs["remoteIpPrefix"] = "0.0.0.0/0"
    assert check_resource(rules.world_ingress_ports, ssh.typ, ssh.name, ssh.props)
    resources = as_policy_resources(records)
    assert check_stack(rules.world_ingress_only_dmz_web, resources)
    assert check_stack(rules.management_from_management_zone, resources)


# -- no public address on data or management tiers ----------------------------------------
def test_no_public_address_passes_dmz_and_private() -> None:
    fip = {"tags": ["hdc", "hdc-zone-kind=dmz"], "portId": "p1"}
    assert check_resource(rules.no_public_address, rules.FLOATING_IP, "web", fip) == []
    inst = {
        "metadata": {"hdc_zone_kind": "data"},
        "accessIpV4": "10.20.2.10",
        "networks": [{"fixedIpV4": "10.20.2.10"}],
    }
    assert check_resource(rules.no_public_address, rules.INSTANCE, "db", inst) == []
    net = {"tags": ["hdc-zone-kind=management"], "external": False, "shared": False}
    assert check_resource(rules.no_public_address, rules.NETWORK, "mgmt", net) == []


@pytest.mark.parametrize(
    ("typ", "props"),
    [
        (rules.FLOATING_IP, {"tags": ["hdc-zone-kind=data"]}),
        (rules.FLOATING_IP, {"tags": ["hdc"]}),
        (rules.INSTANCE, {"metadata": {"hdc_zone_kind": "management"}, "accessIpV4": "41.229.0.7"}),
        (rules.INSTANCE, {"metadata": {"hdc_zone_kind": "data"}, "networks": [{"fixedIpV4": "8.8.4.4"}]}),
        (rules.NETWORK, {"tags": ["hdc-zone-kind=data"], "external": True}),
    ],
)
def test_no_public_address_fails(typ: str, props: dict[str, Any]) -> None:
    assert check_resource(rules.no_public_address, typ, "x", props)


def test_public_addresses_only_in_dmz() -> None:
    dmz_port = policy_resource(rules.PORT, "web", {"id": "p-dmz", "tags": ["hdc-zone-kind=dmz"]})
    db_port = policy_resource(rules.PORT, "db", {"id": "p-db", "tags": ["hdc-zone-kind=data"]})
    good = policy_resource(rules.FLOATING_IP, "fip", {"id": "f1", "portId": "p-dmz", "tags": ["hdc-zone-kind=dmz"]})
    # the floating IP's own tag claims DMZ, but its port is a database's: the stack policy follows the id
    bad = policy_resource(rules.FLOATING_IP, "fip2", {"id": "f2", "portId": "p-db", "tags": ["hdc-zone-kind=dmz"]})
    stray = policy_resource(rules.FLOATING_IP_ASSOCIATE, "assoc", {"id": "a", "portId": "unknown"})
    assert check_stack(rules.public_addresses_in_dmz, [dmz_port, db_port, good]) == []
    assert len(check_stack(rules.public_addresses_in_dmz, [dmz_port, db_port, good, bad, stray])) == 2


# -- no security group open to the world except DMZ web ports -----------------------------
def _rule(**kw: Any) -> dict[str, Any]:
    return {"direction": "ingress", "protocol": "tcp", "ethertype": "IPv4", **kw}


def test_world_ingress_ports() -> None:
    ok = [
        _rule(portRangeMin=443, portRangeMax=443, remoteIpPrefix="0.0.0.0/0"),
        _rule(portRangeMin=5432, portRangeMax=5432, remoteGroupId="sg-app"),
        _rule(direction="egress", portRangeMin=22, portRangeMax=22, remoteIpPrefix="0.0.0.0/0"),
    ]
    for props in ok:
        assert check_resource(rules.world_ingress_ports, rules.SEC_GROUP_RULE, "r", props) == []
    bad = [
        _rule(portRangeMin=22, portRangeMax=22, remoteIpPrefix="0.0.0.0/0"),
        _rule(portRangeMin=1, portRangeMax=65535, remoteIpPrefix="0.0.0.0/0"),
        _rule(protocol="udp", portRangeMin=443, portRangeMax=443, remoteIpPrefix="::/0"),
        _rule(portRangeMin=5432, portRangeMax=5432),  # no remote at all = anywhere
        _rule(protocol=None),
        _rule(portRangeMin=5432, portRangeMax=5432, remoteIpPrefix="not-an-address"),
    ]
    for props in bad:
        assert check_resource(rules.world_ingress_ports, rules.SEC_GROUP_RULE, "r", props), props


def test_world_ingress_only_on_dmz_web_groups() -> None:
    web = policy_resource(
        rules.SEC_GROUP, "web", {"id": "sg-web", "tags": ["hdc-zone-kind=dmz", "hdc-tier=web", "hdc-exposure=public"]}
    )
    app = policy_resource(
        rules.SEC_GROUP, "app", {"id": "sg-app", "tags": ["hdc-zone-kind=application", "hdc-tier=app"]}
    )
    on_web = policy_resource(
        rules.SEC_GROUP_RULE,
        "r1",
        _rule(securityGroupId="sg-web", portRangeMin=443, portRangeMax=443, remoteIpPrefix="0.0.0.0/0"),
    )
    on_app = policy_resource(
        rules.SEC_GROUP_RULE,
        "r2",
        _rule(securityGroupId="sg-app", portRangeMin=443, portRangeMax=443, remoteIpPrefix="0.0.0.0/0"),
    )
    assert check_stack(rules.world_ingress_only_dmz_web, [web, app, on_web]) == []
    assert check_stack(rules.world_ingress_only_dmz_web, [web, app, on_web, on_app])


def test_management_only_from_management_zone() -> None:
    mgmt = policy_resource(
        rules.SUBNET, "mgmt", {"id": "s", "cidr": "10.20.3.0/24", "tags": ["hdc-zone-kind=management"]}
    )
    good = policy_resource(
        rules.SEC_GROUP_RULE, "ssh", _rule(portRangeMin=22, portRangeMax=22, remoteIpPrefix="10.20.3.0/24")
    )
    narrower = policy_resource(
        rules.SEC_GROUP_RULE, "ssh2", _rule(portRangeMin=22, portRangeMax=22, remoteIpPrefix="10.20.3.7/32")
    )
    assert check_stack(rules.management_from_management_zone, [mgmt, good, narrower]) == []
    from_app = policy_resource(
        rules.SEC_GROUP_RULE, "ssh3", _rule(portRangeMin=22, portRangeMax=22, remoteIpPrefix="10.20.1.0/24")
    )
    wide_range = policy_resource(
        rules.SEC_GROUP_RULE, "all", _rule(portRangeMin=1, portRangeMax=1024, remoteIpPrefix="10.0.0.0/8")
    )
    assert len(check_stack(rules.management_from_management_zone, [mgmt, good, from_app, wide_range])) == 2
    exporter = policy_resource(
        rules.SEC_GROUP_RULE, "ne", _rule(portRangeMin=9100, portRangeMax=9100, remoteIpPrefix="10.20.1.0/24")
    )
    assert check_stack(rules.management_from_management_zone, [mgmt, exporter]) == []
    assert check_stack(rules.management_from_management_zone, [mgmt, exporter], {"managementPorts": [22, 9100]})


# -- every volume holding medical data encrypted ------------------------------------------
def test_medical_volumes_encrypted() -> None:
    enc = policy_resource(
        rules.VOLUME_TYPE, "ssd", {"id": "t1", "name": "hdc-lab-ssd", "extraSpecs": {"hdc:encrypted": "true"}}
    )
    plain = policy_resource(
        rules.VOLUME_TYPE, "hdd", {"id": "t2", "name": "hdc-lab-hdd", "extraSpecs": {"hdc:encrypted": "false"}}
    )
    medical_ok = policy_resource(
        rules.VOLUME, "v1", {"id": "v1", "volumeType": "hdc-lab-ssd", "metadata": {"hdc_classification": "medical"}}
    )
    admin_plain = policy_resource(
        rules.VOLUME,
        "v2",
        {"id": "v2", "volumeType": "hdc-lab-hdd", "metadata": {"hdc_classification": "administrative"}},
    )
    assert check_stack(rules.medical_volumes_encrypted, [enc, plain, medical_ok, admin_plain]) == []
    medical_plain = policy_resource(
        rules.VOLUME, "v3", {"id": "v3", "volumeType": "hdc-lab-hdd", "metadata": {"hdc_classification": "medical"}}
    )
    medical_default = policy_resource(rules.VOLUME, "v4", {"id": "v4", "metadata": {"hdc_classification": "medical"}})
    unclassified = policy_resource(rules.VOLUME, "v5", {"id": "v5", "volumeType": "hdc-lab-hdd"})
    boot = policy_resource(
        rules.INSTANCE,
        "i",
        {
            "id": "i",
            "metadata": {"hdc_classification": "medical"},
            "blockDevices": [{"destinationType": "volume", "volumeType": "hdc-lab-hdd"}],
        },
    )
    found = check_stack(
        rules.medical_volumes_encrypted, [enc, plain, medical_plain, medical_default, unclassified, boot]
    )
    assert len(found) == 4
    # a type encrypted by the cloud admin, declared in the pack's config, is accepted
    assert (
        check_stack(rules.medical_volumes_encrypted, [medical_plain], {"encryptedVolumeTypes": ["hdc-lab-hdd"]}) == []
    )


# -- archive buckets with object lock and versioning --------------------------------------
def test_bucket_object_lock() -> None:
    rec = "hdc-lab-archive-records"
    assert check_resource(rules.bucket_object_lock, rules.BUCKET, rec, {"bucket": rec, "objectLocking": True}) == []
    assert check_resource(rules.bucket_object_lock, rules.BUCKET, rec, {"bucket": rec, "objectLocking": False})
    assert check_resource(rules.bucket_object_lock, rules.BUCKET, rec, {"bucket": rec})
    enabled = {"bucket": rec, "versioningConfiguration": {"status": "Enabled"}}
    assert check_resource(rules.bucket_object_lock, rules.BUCKET_VERSIONING, rec, enabled) == []
    versioning = {"bucket": rec, "versioningConfiguration": {"status": "Suspended"}}
    assert check_resource(rules.bucket_object_lock, rules.BUCKET_VERSIONING, rec, versioning)


def _archive_bucket(name: str, days: int | None = 3650, mode: str = "COMPLIANCE") -> list[PolicyResource]:
    """A bucket as the program declares it: bucket, versioning, and (unless None) its default retention."""
    out = [
        policy_resource(rules.BUCKET, name, {"id": name, "bucket": name, "objectLocking": True}),
        policy_resource(
            rules.BUCKET_VERSIONING,
            name,
            {"id": name, "bucket": name, "versioningConfiguration": {"status": "Enabled"}},
        ),
    ]
    if days is not None:
        props = {"id": name, "bucket": name, "mode": mode, "days": days, "years": 0}
        out.append(policy_resource(rules.DYNAMIC, f"{name}-retention", props))
    return out


def test_buckets_versioned_and_retained() -> None:
    records, audit = "hdc-lab-archive-records", "hdc-lab-archive-audit"
    both = _archive_bucket(records) + _archive_bucket(audit)
    assert check_stack(rules.buckets_versioned_and_retained, both) == []
    # the audit bucket without its default retention: named
    missing = _archive_bucket(records) + _archive_bucket(audit, days=None)
    assert [m for m in check_stack(rules.buckets_versioned_and_retained, missing)] == [
        f"bucket '{audit}' has no COMPLIANCE default retention"
    ]
    bare = [policy_resource(rules.BUCKET, audit, {"id": audit, "bucket": audit, "objectLocking": True})]
    assert len(check_stack(rules.buckets_versioned_and_retained, bare)) == 2
    governance = _archive_bucket(records, mode="GOVERNANCE") + _archive_bucket(audit)
    assert check_stack(rules.buckets_versioned_and_retained, governance)
    zero = _archive_bucket(records, days=0) + _archive_bucket(audit)
    assert check_stack(rules.buckets_versioned_and_retained, zero)


def test_the_programs_archive_buckets_are_checked(example: tuple[Catalog, ProgramRun]) -> None:
    """Object locking off, versioning suspended or the retention gone on the program's buckets: refused."""
    _, run = example
    records = [copy.deepcopy(r) for r in run.cloud.records if r.id]
    buckets = [r for r in records if r.typ == rules.BUCKET]
    assert sorted(b.props["bucket"].rsplit("-", 1)[1] for b in buckets) == ["audit", "records"]
    unlocked = buckets[0]
    unlocked.inputs["objectLocking"] = unlocked.outputs["objectLocking"] = False
    assert check_resource(rules.bucket_object_lock, unlocked.typ, unlocked.name, unlocked.props)
    versioning = next(r for r in records if r.typ == rules.BUCKET_VERSIONING)
    versioning.inputs["versioningConfiguration"] = versioning.outputs["versioningConfiguration"] = {
        "status": "Suspended"
    }
    assert check_resource(rules.bucket_object_lock, versioning.typ, versioning.name, versioning.props)
    without_retention = [r for r in run.cloud.records if r.id and r.typ != rules.DYNAMIC]
    problems = check_stack(rules.buckets_versioned_and_retained, as_policy_resources(without_retention))
    assert len(problems) == 2 and all("no COMPLIANCE default retention" in p for p in problems)


def test_backup_class() -> None:
    ok = {"metadata": {"hdc_backup_class": "gold"}}
    assert check_resource(rules.backup_class, rules.INSTANCE, "i", ok) == []
    assert check_resource(rules.backup_class, rules.VOLUME, "v", ok, {"backupClasses": ["gold", "silver"]}) == []
    assert check_resource(rules.backup_class, rules.INSTANCE, "i", {"metadata": {}})
    assert check_resource(rules.backup_class, rules.VOLUME, "v", {})
    assert check_resource(
        rules.backup_class, rules.VOLUME, "v", {"metadata": {"hdc_backup_class": "tin"}}, {"backupClasses": ["gold"]}
    )


def test_the_pack_lists_every_policy_once() -> None:
    names = [p.name for p in rules.POLICIES]
    assert len(names) == len(set(names)) == 9
