"""The typed catalog of the data center: facilities and their links, platforms, zones.

This module only describes shapes and single-field rules. Rules that need the whole
catalog (unknown references, duplicates, overlapping subnets…) live in `checks.py`, so
that every problem of a broken catalog is reported at once, with its file and line.
"""

from __future__ import annotations

import re
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
Port = Annotated[int, Field(ge=1, le=65535)]

_ARABIC = re.compile(r"[\u0600-\u06FF]")
_SECRET_REF = re.compile(r"^(env:[A-Z_][A-Z0-9_]*|file:[A-Za-z0-9_./-]+)$")
# Keys that would carry a secret value in clear; the catalog only holds references.
INLINE_SECRET_KEYS = frozenset(
    {"community", "password", "auth_key", "priv_key", "auth_password", "priv_password", "secret", "token"}
)


class Strict(BaseModel):
    """Base for catalog models: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key in INLINE_SECRET_KEYS:
                    raise ValueError(
                        f"'{key}' holds a secret written inline; the catalog keeps only references: "
                        f"use '{key}_ref: env:NAME' or '{key}_ref: file:relative/path'"
                    )
        return data


def _check_secret_ref(value: str) -> str:
    if not _SECRET_REF.match(value):
        raise ValueError(
            "must be a secret reference 'env:NAME' or 'file:relative/path' (the value itself never "
            "goes into the catalog)"
        )
    return value


SecretRef = Annotated[str, Field(description="env:NAME or file:relative/path")]


class SnmpV2c(Strict):
    version: Literal["2c"]
    community_ref: SecretRef

    _ref = field_validator("community_ref")(_check_secret_ref)


class SnmpV3(Strict):
    version: Literal["3"]
    user: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    auth_protocol: Literal["SHA", "SHA224", "SHA256", "SHA384", "SHA512"] = "SHA"
    auth_key_ref: SecretRef
    priv_protocol: Literal["AES", "AES192", "AES256"] = "AES"
    priv_key_ref: SecretRef
    context: str = ""

    _refs = field_validator("auth_key_ref", "priv_key_ref")(_check_secret_ref)


SnmpCredentials = Annotated[SnmpV2c | SnmpV3, Field(discriminator="version")]


class Uplink(Strict):
    """The router interface that carries the facility's link to the national network."""

    if_index: Annotated[int, Field(ge=1, le=2**31 - 1)]
    if_name: str | None = None


class Link(Strict):
    router: IPv4Address | None = Field(None, description="router management address (polled over SNMP)")
    snmp_port: Port = 161
    snmp: SnmpCredentials | None = None
    uplink: Uplink | None = None
    bandwidth_mbps: Annotated[int, Field(gt=0, le=400_000)]
    parent: Slug | None = Field(None, description="aggregation site the link hangs from; none = the core")
    provider: Annotated[str, StringConstraints(min_length=2, max_length=100)] | None = Field(
        None, description="telecom operator carrying the circuit (whom the NOC opens a ticket with)"
    )
    circuit_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]{1,63}$")] | None = Field(
        None, description="the operator's reference for the circuit, quoted in the ticket"
    )

    @field_validator("router")
    @classmethod
    def _pollable(cls, value: IPv4Address | None) -> IPv4Address | None:
        if value is not None and (
            value.is_unspecified or value.is_multicast or value.is_reserved or value == IPv4Address("255.255.255.255")
        ):
            raise ValueError(f"{value} is not a router's unicast address")
        return value


class Contact(Strict):
    """Who the NOC calls at the facility when its link fails (a duty desk, not a person's own line)."""

    name: Annotated[str, StringConstraints(min_length=2, max_length=100)]
    phone: str = Field(description="E.164, e.g. +21671000000")
    email: str | None = None

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str) -> str:
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", value):
            raise ValueError("must be an international number in E.164 form, digits only, e.g. +21671000000")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}", value):
            raise ValueError("must be an e-mail address such as noc@hopital.tn")
        return value


class FacilityKind(StrEnum):
    AGGREGATION_SITE = "aggregation_site"
    UNIVERSITY_HOSPITAL = "university_hospital"
    REGIONAL_HOSPITAL = "regional_hospital"
    DISTRICT_HOSPITAL = "district_hospital"
    SPECIALISED_CENTRE = "specialised_centre"
    PRIMARY_CARE_CENTRE = "primary_care_centre"
    ADMINISTRATION = "administration"


class FacilityStatus(StrEnum):
    CONNECTED = "connected"
    PLANNED = "planned"


class Facility(Strict):
    id: Slug
    name: Annotated[str, StringConstraints(min_length=2, max_length=200)]
    name_ar: Annotated[str, StringConstraints(min_length=2, max_length=200)]
    kind: FacilityKind
    region: Slug
    status: FacilityStatus
    link: Link | None = None
    contact: Contact | None = None

    @field_validator("name_ar")
    @classmethod
    def _arabic_script(cls, value: str) -> str:
        if not _ARABIC.search(value):
            raise ValueError("must be written in Arabic script")
        return value

    @property
    def polled(self) -> bool:
        """A facility the monitor polls: connected, with a router and credentials."""
        return (
            self.status is FacilityStatus.CONNECTED
            and self.link is not None
            and self.link.router is not None
            and self.link.snmp is not None
            and self.link.uplink is not None
        )


class Region(Strict):
    id: Slug
    name: str
    name_ar: str


class Classification(StrEnum):
    MEDICAL = "medical"
    ADMINISTRATIVE = "administrative"
    PUBLIC = "public"


class Exposure(StrEnum):
    INTERNAL = "internal"
    PUBLIC = "public"


class TierName(StrEnum):
    WEB = "web"
    APP = "app"
    DB = "db"
    STORE = "store"
    WORKER = "worker"


class Flavor(Strict):
    vcpu: Annotated[int, Field(ge=1, le=256)]
    ram_gb: Annotated[int, Field(ge=1, le=4096)]
    disk_gb: Annotated[int, Field(ge=10, le=16384)]


class Tier(Strict):
    name: TierName
    zone: Slug
    count: Annotated[int, Field(ge=1, le=64)] = 1
    flavor: Flavor
    volume_gb: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    ports: list[Port] = Field(default_factory=list, description="ports this tier listens on")
    cluster: Slug
    storage_pool: Slug | None = None
    roles: list[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]] = Field(
        default_factory=list, description="Ansible roles applied to this tier's hosts"
    )


class Flow(Strict):
    """One allowed connection: from a tier of this platform to a tier of a platform (itself by default)."""

    from_tier: TierName
    to_platform: Slug | None = None
    to_tier: TierName
    port: Port
    protocol: Literal["tcp", "udp"] = "tcp"


class Platform(Strict):
    id: Slug
    name: str
    name_ar: str | None = None
    description: str = ""
    classification: Classification
    exposure: Exposure = Exposure.INTERNAL
    tiers: Annotated[list[Tier], Field(min_length=1)]
    flows: list[Flow] = Field(default_factory=list)
    backup_class: Slug
    retention_class: Slug | None = None

    def tier(self, name: str) -> Tier | None:
        return next((t for t in self.tiers if t.name == name), None)


class ZoneKind(StrEnum):
    DMZ = "dmz"
    APPLICATION = "application"
    DATA = "data"
    MANAGEMENT = "management"
    BACKUP = "backup"


class Zone(Strict):
    id: Slug
    kind: ZoneKind
    name: str
    vlan: Annotated[int, Field(ge=1, le=4094)]
    subnet: IPv4Network

    @field_validator("subnet", mode="before")
    @classmethod
    def _strict_subnet(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                IPv4Network(value, strict=True)
            except ValueError as exc:
                raise ValueError(f"not a network address: {exc}") from None
        return value


class Cluster(Strict):
    id: Slug
    name: str
    hosts: Annotated[int, Field(ge=1, le=1000)]
    vcpu_per_host: Annotated[int, Field(ge=1, le=1024)]
    ram_gb_per_host: Annotated[int, Field(ge=1, le=65536)]
    cpu_overcommit: Annotated[float, Field(ge=1.0, le=16.0)] = 4.0
    ram_overcommit: Annotated[float, Field(ge=1.0, le=2.0)] = 1.0


class StoragePool(Strict):
    id: Slug
    name: str
    kind: Literal["block-ssd", "block-hdd", "object"]
    capacity_gb: Annotated[int, Field(ge=1)]
    encrypted: bool = True


class DataCenter(Strict):
    name: str
    zones: Annotated[list[Zone], Field(min_length=1)]
    clusters: Annotated[list[Cluster], Field(min_length=1)]
    storage_pools: list[StoragePool] = Field(default_factory=list)


class BackupClass(Strict):
    id: Slug
    schedule: str = Field(description="cron expression")
    keep_days: Annotated[int, Field(ge=1)]
    offsite: bool = False


class RetentionClass(Strict):
    id: Slug
    years: Annotated[int, Field(ge=0, le=200)]
    after: Literal["last_document", "creation", "closure"] = "last_document"


class Catalog(Strict):
    """A whole catalog, as loaded from one directory of YAML files."""

    name: Slug
    description: str = ""
    regions: list[Region] = Field(default_factory=list)
    facilities: list[Facility] = Field(default_factory=list)
    platforms: list[Platform] = Field(default_factory=list)
    datacenter: DataCenter
    backup_classes: list[BackupClass] = Field(default_factory=list)
    retention_classes: list[RetentionClass] = Field(default_factory=list)

    def facility(self, facility_id: str) -> Facility | None:
        return next((f for f in self.facilities if f.id == facility_id), None)

    def platform(self, platform_id: str) -> Platform | None:
        return next((p for p in self.platforms if p.id == platform_id), None)

    def polled_facilities(self) -> list[Facility]:
        return [f for f in self.facilities if f.polled]
