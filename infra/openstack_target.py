"""The OpenStack target: Neutron networks and security groups, Nova instances and server groups, Cinder volumes."""

from __future__ import annotations

from ipaddress import IPv4Network

import pulumi
import pulumi_openstack as openstack

from inventory.hosts import FIRST_HOST_OFFSET
from inventory.model import Flavor, StoragePool, Zone

from .security import RuleSpec
from .settings import StackSettings
from .target import CloudTarget, HostHandle, HostSpec, ZoneNet


def flavor_name(f: Flavor) -> str:
    return f"hdc-{f.vcpu}c-{f.ram_gb}g-{f.disk_gb}d"


def zone_tags(zone: Zone) -> list[str]:
    return ["hdc", f"hdc-zone={zone.id}", f"hdc-zone-kind={zone.kind.value}"]


class OpenStackTarget(CloudTarget):
    name = "openstack"

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.prefix = settings.prefix
        self._flavors: dict[tuple[int, int, int], pulumi.Input[str]] = {}
        self._volume_types: dict[str, pulumi.Input[str]] = {}
        self._image_id: pulumi.Output[str] | None = None

    def image_id(self) -> pulumi.Output[str]:
        """The id of `hdc:image` (most recent of that name), looked up once: boot volumes need an id."""
        if self._image_id is None:
            self._image_id = openstack.images.get_image_output(name=self.settings.image, most_recent=True).id
        return self._image_id

    # -- networks -------------------------------------------------------------------------
    def zone_networks(self, zones: list[Zone], parent: pulumi.Resource | None) -> dict[str, ZoneNet]:
        opts = pulumi.ResourceOptions(parent=parent)
        router = openstack.networking.Router(
            f"{self.prefix}-core",
            name=f"{self.prefix}-core",
            description="Routes between the data-center zones; security groups decide what may cross.",
            admin_state_up=True,
            external_network_id=self.settings.external_network_id,
            tags=["hdc"],
            opts=opts,
        )
        nets: dict[str, ZoneNet] = {}
        for zone in zones:
            subnet_net: IPv4Network = zone.subnet
            segments = None
            if self.settings.physical_network:
                segments = [
                    openstack.networking.NetworkSegmentArgs(
                        network_type="vlan",
                        physical_network=self.settings.physical_network,
                        segmentation_id=zone.vlan,
                    )
                ]
            network = openstack.networking.Network(
                f"{self.prefix}-{zone.id}",
                name=f"{self.prefix}-{zone.id}",
                description=f"{zone.name} ({zone.kind.value} zone, VLAN {zone.vlan})",
                admin_state_up=True,
                port_security_enabled=True,
                # external/shared stay unset (false): setting them at all needs admin rights
                segments=segments,
                tags=zone_tags(zone),
                opts=opts,
            )
            # DHCP hands out only the addresses below the planned hosts; hosts get fixed IPs.
            subnet = openstack.networking.Subnet(
                f"{self.prefix}-{zone.id}",
                name=f"{self.prefix}-{zone.id}",
                network_id=network.id,
                cidr=str(subnet_net),
                ip_version=4,
                gateway_ip=str(subnet_net.network_address + 1),
                enable_dhcp=True,
                allocation_pools=[
                    openstack.networking.SubnetAllocationPoolArgs(
                        start=str(subnet_net.network_address + 2),
                        end=str(subnet_net.network_address + FIRST_HOST_OFFSET - 1),
                    )
                ],
                dns_nameservers=self.settings.dns_nameservers or None,
                tags=zone_tags(zone),
                opts=opts,
            )
            openstack.networking.RouterInterface(
                f"{self.prefix}-core-{zone.id}",
                router_id=router.id,
                subnet_id=subnet.id,
                opts=opts,
            )
            nets[zone.id] = ZoneNet(zone=zone, network_id=network.id, subnet_id=subnet.id)
        return nets

    # -- sizes and storage ----------------------------------------------------------------
    def flavor(self, flavor: Flavor, parent: pulumi.Resource | None) -> pulumi.Input[str]:
        key = (flavor.vcpu, flavor.ram_gb, flavor.disk_gb)
        if key not in self._flavors:
            name = flavor_name(flavor)
            if self.settings.manage_flavors:
                self._flavors[key] = openstack.compute.Flavor(
                    name,
                    name=name,
                    vcpus=flavor.vcpu,
                    ram=flavor.ram_gb * 1024,
                    disk=flavor.disk_gb,
                    is_public=False,
                    opts=pulumi.ResourceOptions(parent=parent),
                ).id
            else:
                found = openstack.compute.get_flavor_output(
                    vcpus=flavor.vcpu, ram=flavor.ram_gb * 1024, disk=flavor.disk_gb
                )
                self._flavors[key] = found.id
        return self._flavors[key]

    def volume_type(self, pool: StoragePool, parent: pulumi.Resource | None) -> pulumi.Input[str]:
        existing = self.settings.volume_types.get(pool.id)
        if existing is not None:
            return existing  # made by the cloud admin (with its encryption spec); see docs/infra.md
        if pool.id not in self._volume_types:
            name = f"{self.prefix}-{pool.id}"
            vt = openstack.blockstorage.VolumeTypeV3(
                name,
                name=name,
                description=f"{pool.name} ({pool.kind}{', encrypted' if pool.encrypted else ''})",
                is_public=False,
                extra_specs={
                    "volume_backend_name": pool.id,
                    "hdc:encrypted": "true" if pool.encrypted else "false",
                },
                opts=pulumi.ResourceOptions(parent=parent),
            )
            self._volume_types[pool.id] = vt.name
        return self._volume_types[pool.id]

    # -- security -------------------------------------------------------------------------
    def security_group(
        self, key: str, description: str, tags: list[str], parent: pulumi.Resource
    ) -> pulumi.Output[str]:
        sg = openstack.networking.SecGroup(
            f"{self.prefix}-{key}",
            name=f"{self.prefix}-{key}",
            description=description,
            delete_default_rules=True,
            stateful=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return sg.id

    def security_rule(
        self,
        spec: RuleSpec,
        group_id: pulumi.Input[str],
        remote_group_id: pulumi.Input[str] | None,
        parent: pulumi.Resource,
    ) -> None:
        openstack.networking.SecGroupRule(
            f"{self.prefix}-{spec.name}",
            security_group_id=group_id,
            direction=spec.direction,
            ethertype="IPv4",
            protocol=spec.protocol,
            port_range_min=spec.port,
            port_range_max=spec.port,
            remote_group_id=remote_group_id,
            remote_ip_prefix=spec.remote_cidr,
            description=spec.reason,
            opts=pulumi.ResourceOptions(parent=parent),
        )

    def server_group(self, key: str, policy: str, parent: pulumi.Resource) -> pulumi.Output[str]:
        sg = openstack.compute.ServerGroup(
            f"{self.prefix}-{key}",
            name=f"{self.prefix}-{key}",
            policies=policy,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return sg.id

    # -- machines -------------------------------------------------------------------------
    def host(self, spec: HostSpec, net: ZoneNet, parent: pulumi.Resource) -> HostHandle:
        h = spec.host
        name = f"{self.prefix}-{h.name}"
        opts = pulumi.ResourceOptions(parent=parent)
        port = openstack.networking.Port(
            name,
            name=name,
            network_id=net.network_id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=net.subnet_id, ip_address=str(h.address))],
            security_group_ids=[spec.security_group_id],
            port_security_enabled=True,
            admin_state_up=True,
            tags=spec.tags,
            opts=opts,
        )
        boot_devices = None
        if spec.boot_volume_type is not None:
            boot_devices = [
                openstack.compute.InstanceBlockDeviceArgs(
                    uuid=self.image_id(),
                    source_type="image",
                    destination_type="volume",
                    volume_size=spec.flavor.disk_gb,
                    volume_type=spec.boot_volume_type,
                    boot_index=0,
                    delete_on_termination=True,
                )
            ]
        instance = openstack.compute.Instance(
            name,
            name=h.name,
            flavor_id=spec.flavor_id,
            image_name=None if boot_devices else self.settings.image,
            block_devices=boot_devices,
            key_pair=self.settings.key_pair,
            networks=[openstack.compute.InstanceNetworkArgs(port=port.id)],
            scheduler_hints=[openstack.compute.InstanceSchedulerHintArgs(group=spec.server_group_id)],
            metadata={
                "hdc_platform": h.platform,
                "hdc_tier": h.tier.value,
                "hdc_zone": h.zone,
                "hdc_zone_kind": spec.zone_kind.value,
                "hdc_classification": h.classification.value,
                "hdc_backup_class": spec.backup_class,
                "hdc_roles": ",".join(h.roles),
            },
            tags=spec.tags,
            stop_before_destroy=True,
            opts=opts,
        )
        volume_id = None
        if spec.volume_gb:
            volume = openstack.blockstorage.Volume(
                f"{name}-data",
                name=f"{h.name}-data",
                size=spec.volume_gb,
                volume_type=spec.volume_type,
                description=f"data of {h.name}",
                metadata={
                    "hdc_platform": h.platform,
                    "hdc_tier": h.tier.value,
                    "hdc_classification": h.classification.value,
                    "hdc_backup_class": spec.backup_class,
                },
                opts=pulumi.ResourceOptions(parent=parent, protect=self.settings.protect_data),
            )
            openstack.compute.VolumeAttach(
                f"{name}-data",
                instance_id=instance.id,
                volume_id=volume.id,
                opts=opts,
            )
            volume_id = volume.id
        public = None
        if spec.public:
            fip = openstack.networking.FloatingIp(
                f"{name}-public",
                pool=self.settings.external_network or "public",
                port_id=port.id,
                description=f"public address of {h.name}",
                tags=spec.tags,
                opts=opts,
            )
            public = fip.address
        address = port.all_fixed_ips.apply(lambda ips: ips[0] if ips else "")
        return HostHandle(name=h.name, id=instance.id, address=address, public_address=public, volume_id=volume_id)
