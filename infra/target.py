"""The seam between the program and a private cloud: what a target must build, not how.

The OpenStack target (`openstack_target.py`) implements all of it; a Proxmox or vSphere
target would implement the same methods and be chosen with `hdc:target`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import pulumi

from inventory.hosts import PlannedHost
from inventory.model import Flavor, StoragePool, Zone, ZoneKind

from .security import RuleSpec


@dataclass(frozen=True)
class ZoneNet:
    """A zone's network as built: the ids instances and ports attach to."""

    zone: Zone
    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]


@dataclass(frozen=True)
class HostSpec:
    """Everything a target needs to place one planned host."""

    host: PlannedHost
    zone_kind: ZoneKind
    flavor: Flavor
    flavor_id: pulumi.Input[str]
    security_group_id: pulumi.Output[str]
    server_group_id: pulumi.Output[str]
    public: bool
    backup_class: str
    volume_gb: int = 0
    volume_type: pulumi.Input[str] | None = None
    boot_volume_type: pulumi.Input[str] | None = None  # None: boot from the image on the hypervisor's disk
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HostHandle:
    name: str
    id: pulumi.Output[str]
    address: pulumi.Output[str]
    public_address: pulumi.Output[str] | None = None
    volume_id: pulumi.Output[str] | None = None


class CloudTarget(ABC):
    """One private-cloud API. Every method creates resources under `parent` and returns their ids."""

    name: str

    @abstractmethod
    def zone_networks(self, zones: list[Zone], parent: pulumi.Resource | None) -> dict[str, ZoneNet]:
        """One isolated network and subnet per zone, routed together by a core router."""

    @abstractmethod
    def flavor(self, flavor: Flavor, parent: pulumi.Resource | None) -> pulumi.Input[str]:
        """The id of a machine size with exactly these vCPU, RAM and disk."""

    @abstractmethod
    def volume_type(self, pool: StoragePool, parent: pulumi.Resource | None) -> pulumi.Input[str]:
        """The name of the volume type that places volumes on this storage pool."""

    @abstractmethod
    def security_group(
        self, key: str, description: str, tags: list[str], parent: pulumi.Resource
    ) -> pulumi.Output[str]:
        """An empty group (no default rules); returns its id."""

    @abstractmethod
    def security_rule(
        self,
        spec: RuleSpec,
        group_id: pulumi.Input[str],
        remote_group_id: pulumi.Input[str] | None,
        parent: pulumi.Resource,
    ) -> None:
        """One rule exactly as specified."""

    @abstractmethod
    def server_group(self, key: str, policy: str, parent: pulumi.Resource) -> pulumi.Output[str]:
        """A placement group ('anti-affinity' or 'soft-anti-affinity'); returns its id."""

    @abstractmethod
    def host(self, spec: HostSpec, net: ZoneNet, parent: pulumi.Resource) -> HostHandle:
        """A machine with its fixed address, its data volume attached and, if public, a public address."""
