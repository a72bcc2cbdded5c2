"""The Pulumi program on both example catalogs, under mocks: resources, rules, outputs."""

from __future__ import annotations

import json
from ipaddress import ip_address, ip_network

import pytest
import yaml
from cryptography import x509
from mockcloud import ProgramRun, ensure_event_loop, longest_retention_days

from archive_service.settings import ArchiveSettings
from infra.storage import ARCHIVE_CALLS
from inventory.hosts import plan_hosts
from inventory.model import Catalog, Exposure, ZoneKind

SG = "openstack:networking/secGroup:SecGroup"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
PORT = "openstack:networking/port:Port"
INSTANCE = "openstack:compute/instance:Instance"
VOLUME = "openstack:blockstorage/volume:Volume"
SERVER_GROUP = "openstack:compute/serverGroup:ServerGroup"


def _name_of_group(run: ProgramRun) -> dict[str, str]:
    """Security-group id -> '<platform>-<tier>' from the group's tags (not from the program's names)."""
    out = {}
    for r in run.of_type(SG):
        tags = dict(t.split("=", 1) for t in r.props["tags"] if "=" in t)
        out[r.id] = f"{tags['hdc-platform']}-{tags['hdc-tier']}"
    return out


def test_every_platform_gets_its_resources(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    components = {r.name: r for r in run.of_type("hdc:infra:HealthPlatform")}
    assert set(components) == {p.id for p in cat.platforms}
    for plat in cat.platforms:
        children = run.children(components[plat.id].urn)
        by_type: dict[str, list] = {}
        for c in children:
            by_type.setdefault(c.typ, []).append(c)
        hosts = sum(t.count for t in plat.tiers)
        assert len(by_type[SG]) == len(plat.tiers), plat.id
        assert len(by_type[SERVER_GROUP]) == len(plat.tiers), plat.id
        assert len(by_type[INSTANCE]) == hosts, plat.id
        assert len(by_type[PORT]) == hosts, plat.id
        assert len(by_type["tls:index/locallySignedCert:LocallySignedCert"]) == hosts
        volumes = sum(t.count for t in plat.tiers if t.volume_gb)
        assert len(by_type.get(VOLUME, [])) == volumes, plat.id
        assert len(by_type.get("openstack:compute/volumeAttach:VolumeAttach", [])) == volumes
        public = sum(t.count for t in plat.tiers if plat.exposure is Exposure.PUBLIC and t.name.value == "web")
        assert len(by_type.get("openstack:networking/floatingIp:FloatingIp", [])) == public


def test_shared_resources_hang_from_the_stack(example: tuple[Catalog, ProgramRun]) -> None:
    """Flavors and volume types serve every platform: their URNs must not depend on one of them."""
    _, run = example
    shared = run.of_type("openstack:compute/flavor:Flavor") + run.of_type(
        "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
    )
    assert shared
    assert all("HealthPlatform" not in r.urn for r in shared)


def test_instances_sit_on_planned_addresses_with_catalog_sizes(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    planned = {h.name: h for h in plan_hosts(cat)}
    flavors = {r.id: r.props for r in run.of_type("openstack:compute/flavor:Flavor")}
    tiers = {(p.id, t.name.value): t for p in cat.platforms for t in p.tiers}
    instances = {r.props["name"]: r.props for r in run.of_type(INSTANCE)}
    assert set(instances) == set(planned)
    ports = {r.id: r.props for r in run.of_type(PORT)}
    groups = _name_of_group(run)
    for name, props in instances.items():
        h = planned[name]
        port = ports[props["networks"][0]["port"]]
        assert port["fixedIps"][0]["ipAddress"] == str(h.address)
        assert props["accessIpV4"] == str(h.address)
        assert [groups[g] for g in port["securityGroupIds"]] == [f"{h.platform}-{h.tier.value}"]
        tier = tiers[(h.platform, h.tier.value)]
        flavor = flavors[props["flavorId"]]
        assert (flavor["vcpus"], flavor["ram"], flavor["disk"]) == (
            tier.flavor.vcpu,
            tier.flavor.ram_gb * 1024,
            tier.flavor.disk_gb,
        )
        assert props["metadata"]["hdc_backup_class"]


def test_server_groups_spread_each_tier(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    hosts_per_cluster = {c.id: c.hosts for c in cat.datacenter.clusters}
    policies = {r.props["name"].split("-", 2)[2]: r.props["policies"] for r in run.of_type(SERVER_GROUP)}
    for plat in cat.platforms:
        for t in plat.tiers:
            expected = "anti-affinity" if t.count <= hosts_per_cluster[t.cluster] else "soft-anti-affinity"
            assert policies[f"{plat.id}-{t.name.value}"] == expected
    groups = {r.id for r in run.of_type(SERVER_GROUP)}
    for inst in run.of_type(INSTANCE):
        assert inst.props["schedulerHints"][0]["group"] in groups


def test_zone_networks_subnets_and_router(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    subnets = {r.props["cidr"]: r.props for r in run.of_type("openstack:networking/subnet:Subnet")}
    assert set(subnets) == {str(z.subnet) for z in cat.datacenter.zones}
    planned = [h.address for h in plan_hosts(cat)]
    for s in subnets.values():
        pool = s["allocationPools"][0]
        net = ip_network(s["cidr"])
        assert ip_address(pool["start"]) in net and ip_address(pool["end"]) in net
        # DHCP never hands out a planned host address
        assert not any(ip_address(pool["start"]) <= a <= ip_address(pool["end"]) for a in planned)
    assert len(run.of_type("openstack:networking/router:Router")) == 1
    assert len(run.of_type("openstack:networking/routerInterface:RouterInterface")) == len(cat.datacenter.zones)
    for net in run.of_type("openstack:networking/network:Network"):
        assert not net.props.get("external") and not net.props.get("shared")
        assert net.props["portSecurityEnabled"] is True


def test_security_rules_are_exactly_the_declared_flows(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    groups = _name_of_group(run)
    mgmt = {str(z.subnet) for z in cat.datacenter.zones if z.kind is ZoneKind.MANAGEMENT}
    zone_kind = {z.id: z.kind for z in cat.datacenter.zones}
    # Independently of infra.security: what the catalog declares.
    flows_in = set()
    flows_out = set()
    for p in cat.platforms:
        for f in p.flows:
            src = f"{p.id}-{f.from_tier.value}"
            dst = f"{f.to_platform or p.id}-{f.to_tier.value}"
            flows_in.add((dst, f.protocol, f.port, src))
            flows_out.add((src, f.protocol, f.port, dst))
    every_group = {f"{p.id}-{t.name.value}" for p in cat.platforms for t in p.tiers}
    ssh = {(g, "tcp", port, cidr) for g in every_group for cidr in mgmt for port in (22, 9100)}  # hdc:managementPorts
    web = {
        (f"{p.id}-{t.name.value}", "tcp", 443, "0.0.0.0/0")
        for p in cat.platforms
        for t in p.tiers
        if p.exposure is Exposure.PUBLIC and t.name.value == "web" and zone_kind[t.zone] is ZoneKind.DMZ
    }
    got_in_groups, got_in_cidrs, got_out_groups, got_out_cidrs = set(), set(), set(), set()
    for r in run.of_type(RULE):
        p = r.props
        assert p["portRangeMin"] == p["portRangeMax"], "one port per rule"
        assert p["ethertype"] == "IPv4"
        group = groups[p["securityGroupId"]]
        if p.get("remoteGroupId"):
            item = (group, p["protocol"], p["portRangeMin"], groups[p["remoteGroupId"]])
            (got_in_groups if p["direction"] == "ingress" else got_out_groups).add(item)
        else:
            item = (group, p["protocol"], p["portRangeMin"], p["remoteIpPrefix"])
            (got_in_cidrs if p["direction"] == "ingress" else got_out_cidrs).add(item)
    assert got_in_groups == flows_in
    assert got_out_groups == flows_out
    assert got_in_cidrs == ssh | web
    # Egress to addresses: only to the management zone's services, or from management hosts.
    mgmt_groups = {
        f"{p.id}-{t.name.value}" for p in cat.platforms for t in p.tiers if zone_kind[t.zone] is ZoneKind.MANAGEMENT
    }
    for group, _proto, _port, cidr in got_out_cidrs:
        assert cidr in mgmt or group in mgmt_groups
    # no default rules: every group is emptied by the program
    assert all(r.props["deleteDefaultRules"] for r in run.of_type(SG))


def test_outputs_render_a_valid_inventory(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    inv = yaml.safe_load(yaml.safe_dump(run.outputs["inventory"]))
    hosts = inv["all"]["hosts"]
    planned = {h.name: h for h in plan_hosts(cat)}
    assert set(hosts) == set(planned)
    for name, h in planned.items():
        assert hosts[name]["ansible_host"] == str(h.address)
        assert run.outputs["hosts"][name]["address"] == str(h.address)
        for group in run.outputs["hosts"][name]["groups"]:
            assert name in inv["all"]["children"][group]["hosts"]
    children = inv["all"]["children"]
    for plat in cat.platforms:
        assert set(children[f"platform_{plat.id.replace('-', '_')}"]["hosts"]) == {
            n for n, h in planned.items() if h.platform == plat.id
        }
    roles = {r for p in cat.platforms for t in p.tiers for r in t.roles}
    assert roles <= set(children)
    public = run.outputs["public_addresses"]
    assert all(ip_address(a).is_global or a.startswith("203.0.113.") for a in public.values())
    assert set(public) == {n for n in planned if planned[n].tier.value == "web"}


def test_certificates_chain_to_the_internal_ca(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    ca = x509.load_pem_x509_certificate(run.outputs["ca_cert_pem"].encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    certs = run.outputs["host_certificates"]
    keys = run.outputs["host_private_keys"]
    planned = {h.name: h for h in plan_hosts(cat)}
    assert set(certs) == set(planned) == set(keys)
    for name in list(planned)[:25]:
        cert = x509.load_pem_x509_certificate(certs[name].encode())
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert name in san.get_values_for_type(x509.DNSName)
        assert ip_address(str(planned[name].address)) in san.get_values_for_type(x509.IPAddress)
        assert "PRIVATE KEY" in keys[name]


def test_medical_volumes_use_the_encrypted_pool_type(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    types = {r.props["name"]: r.props for r in run.of_type("openstack:blockstorage/volumeTypeV3:VolumeTypeV3")}
    pools = {p.id: p for p in cat.datacenter.storage_pools}
    tiers = {(p.id, t.name.value): t for p in cat.platforms for t in p.tiers}
    for vol in run.of_type(VOLUME):
        m = vol.props["metadata"]
        tier = tiers[(m["hdc_platform"], m["hdc_tier"])]
        assert vol.props["size"] == tier.volume_gb
        assert vol.protect, "data volumes are protected (hdc:protectData defaults to true)"
        vt = types[vol.props["volumeType"]]
        assert vt["extraSpecs"]["volume_backend_name"] == tier.storage_pool
        assert vt["extraSpecs"]["hdc:encrypted"] == ("true" if pools[tier.storage_pool].encrypted else "false")


def test_archive_storage_is_the_archive_services_two_buckets(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    env = run_env(run)
    expected = {"records": f"hdc-{env}-archive-records", "audit": f"hdc-{env}-archive-audit"}
    assert run.outputs["archive_buckets"] == expected
    assert (
        run.outputs["archive_default_retention_days"]
        == ArchiveSettings.model_fields["bucket_default_retention_days"].default
        == 3650
    )
    buckets = {r.props["bucket"]: r for r in run.of_type("minio:index/s3Bucket:S3Bucket")}
    assert set(buckets) == set(expected.values())
    assert all(b.props["objectLocking"] is True and b.props["forceDestroy"] is False for b in buckets.values())
    # records outlive the stack: protected against replacement, retained by `pulumi destroy`
    assert all(b.protect and b.retain_on_delete for b in buckets.values())
    versioning = {r.props["bucket"]: r.props for r in run.of_type("minio:index/s3BucketVersioning:S3BucketVersioning")}
    retention = {r.props["bucket"]: r.props for r in run.of_type("pulumi-python:dynamic:Resource")}
    lifecycle = {r.props["bucket"]: r.props for r in run.of_type("minio:index/ilmPolicy:IlmPolicy")}
    assert set(versioning) == set(retention) == set(lifecycle) == set(buckets)
    # the longest retention any version can get from the catalog, counted with leap days
    longest = longest_retention_days([r.years for r in cat.retention_classes])
    for name in expected.values():
        assert versioning[name]["versioningConfiguration"]["status"] == "Enabled"
        assert (retention[name]["mode"], retention[name]["days"], retention[name]["years"]) == ("COMPLIANCE", 3650, 0)
        assert retention[name]["endpoint"] == "127.0.0.1:9000"
        (rule,) = lifecycle[name]["rules"]
        assert rule["status"] == "Enabled"
        assert rule["noncurrentVersionExpirationDays"] >= max(longest, 3650) + 30
        assert "expirationDays" not in rule or not rule["expirationDays"], "current versions never expire"
    (policy,) = run.of_type("minio:index/iamPolicy:IamPolicy")
    doc = json.loads(policy.props["policy"])
    granted = {a for s in doc["Statement"] for a in s["Action"]}
    resources = {res for s in doc["Statement"] for res in s["Resource"]}
    assert granted == {a for c in ARCHIVE_CALLS for a in c.actions}
    assert {"s3:PutObject", "s3:GetObjectVersion", "s3:DeleteObjectVersion", "s3:PutObjectRetention"} <= granted
    assert not granted & {"s3:*", "*", "s3:BypassGovernanceRetention", "s3:DeleteBucket", "s3:DeleteObject"}
    assert not granted & {"s3:CreateBucket", "s3:PutBucketObjectLockConfiguration", "s3:PutBucketPolicy"}
    assert not any("*" in a for a in granted)
    names = set(expected.values())
    assert resources == {f"arn:aws:s3:::{b}" for b in names} | {f"arn:aws:s3:::{b}/*" for b in names}
    (attach,) = run.of_type("minio:index/iamUserPolicyAttachment:IamUserPolicyAttachment")
    (user,) = run.of_type("minio:index/iamUser:IamUser")
    assert attach.props["userName"] == user.props["name"] == run.outputs["archive_access_key"]
    assert len(run.outputs["archive_secret_key"]) == 40


def run_env(run: ProgramRun) -> str:
    (router,) = run.of_type("openstack:networking/router:Router")
    return router.props["name"].removeprefix("hdc-").removesuffix("-core")


def test_secrets_never_appear_in_plain_inputs(example: tuple[Catalog, ProgramRun]) -> None:
    """The MinIO password reaches the retention resource only as a Pulumi secret."""
    _, run = example
    for r in run.of_type("pulumi-python:dynamic:Resource"):
        raw = r.inputs["secret_key"]
        assert isinstance(raw, dict) and raw.get("4dabf18193072939515e22adb298388d"), "secret_key must be a secret"


def test_inventory_from_stack_outputs(example: tuple[Catalog, ProgramRun]) -> None:
    """What `hdc infra inventory` renders from `pulumi stack output`: Ansible-readable, real addresses."""
    from hdc.errors import UserError
    from infra.inventory_out import inventory_from_outputs

    cat, run = example
    text = inventory_from_outputs(cat, run.outputs)
    assert text.startswith("# Rendered from catalog")
    inv = yaml.safe_load(text)
    assert inv == yaml.safe_load(yaml.safe_dump(run.outputs["inventory"]))
    partial = dict(run.outputs["hosts"])
    partial.pop(next(iter(partial)))
    with pytest.raises(UserError, match="not in the stack yet"):
        inventory_from_outputs(cat, {"hosts": partial})
    with pytest.raises(UserError, match="no 'hosts' output"):
        inventory_from_outputs(cat, {})


def test_outputs_are_mappings_even_when_empty() -> None:
    """A catalog without public platforms still exports `public_addresses` as a mapping."""
    import pulumi
    from mockcloud import MockCloud

    from infra.program import _mapping

    ensure_event_loop()

    pulumi.runtime.set_mocks(MockCloud(), project="hdc", stack="lab", preview=False)
    seen: list[object] = []

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        return _mapping({}).apply(seen.append)

    check()
    assert seen == [{}]


def test_medical_hosts_boot_from_encrypted_volumes(example: tuple[Catalog, ProgramRun]) -> None:
    cat, run = example
    platforms = {p.id: p for p in cat.platforms}
    tiers = {(p.id, t.name.value): t for p in cat.platforms for t in p.tiers}
    encrypted = {
        r.props["name"]
        for r in run.of_type("openstack:blockstorage/volumeTypeV3:VolumeTypeV3")
        if r.props["extraSpecs"]["hdc:encrypted"] == "true"
    }
    image_ids = {c.args["name"]: None for c in run.cloud.calls if c.token == "openstack:images/getImage:getImage"}
    assert list(image_ids) == ["debian-12"], "the image is looked up once"
    for inst in run.of_type(INSTANCE):
        m = inst.props["metadata"]
        tier = tiers[(m["hdc_platform"], m["hdc_tier"])]
        if platforms[m["hdc_platform"]].classification.value == "medical":
            (bd,) = inst.props["blockDevices"]
            assert (bd["sourceType"], bd["destinationType"], bd["bootIndex"]) == ("image", "volume", 0)
            assert bd["volumeSize"] == tier.flavor.disk_gb and bd["volumeType"] in encrypted
            assert bd["deleteOnTermination"] is True and not inst.props.get("imageName")
        else:
            assert inst.props["imageName"] == "debian-12" and not inst.props.get("blockDevices")
