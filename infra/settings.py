"""Stack settings (`hdc:*` in Pulumi.<stack>.yaml), validated at the edge so a typo names its key.

Only non-secret settings live here; provider credentials come from `pulumi config set --secret`
(`openstack:password`, `minio:minioPassword`) or the providers' environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inventory.loader import load_catalog
from inventory.model import Catalog

from .buckets import DEFAULT_RETENTION_DAYS, default_bucket_name

if TYPE_CHECKING:
    import pulumi

INFRA_DIR = Path(__file__).resolve().parent
TARGETS = ("openstack",)


class SettingsError(ValueError):
    """A stack setting is missing or invalid; the message names the `hdc:` key."""


class StackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    catalog: str = Field(description="catalog name ('lab', 'tunisia') or path, relative to infra/")
    target: Literal["openstack"] = "openstack"
    environment: str = Field("lab", pattern=r"^[a-z0-9-]{1,20}$")
    image: str = Field("debian-12", alias="image")
    key_pair: str | None = Field(None, alias="keyPair")
    external_network: str | None = Field(None, alias="externalNetwork", description="floating-IP pool name")
    external_network_id: str | None = Field(None, alias="externalNetworkId", description="router gateway network")
    physical_network: str | None = Field(
        None, alias="physicalNetwork", description="provider network for VLAN segments (admin only)"
    )
    dns_nameservers: list[str] = Field(default_factory=list, alias="dnsNameservers")
    domain: str = "hdc.internal"
    manage_flavors: bool = Field(True, alias="manageFlavors")
    volume_types: dict[str, str] = Field(
        default_factory=dict, alias="volumeTypes", description="storage pool id -> existing volume type name"
    )
    archive_bucket_records: str | None = Field(
        None, alias="archiveBucketRecords", description="HDC_ARCHIVE_BUCKET_RECORDS; default hdc-<env>-archive-records"
    )
    archive_bucket_audit: str | None = Field(
        None, alias="archiveBucketAudit", description="HDC_ARCHIVE_BUCKET_AUDIT; default hdc-<env>-archive-audit"
    )
    archive_default_retention_days: int = Field(
        DEFAULT_RETENTION_DAYS,
        alias="archiveDefaultRetentionDays",
        ge=1,
        le=36500,
        description="default COMPLIANCE retention of both buckets = HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS",
    )
    minio_secure: bool = Field(True, alias="minioSecure")
    ca_validity_days: int = Field(3650, alias="caValidityDays", ge=30, le=7300)
    cert_validity_days: int = Field(365, alias="certValidityDays", ge=1, le=825)
    organization: str = "Ministry of Health"
    management_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: [22, 9100],
        alias="managementPorts",
        description="TCP ports open from the management zone",
    )
    protect_data: bool = Field(True, alias="protectData", description="protect data volumes and buckets from deletion")

    @property
    def prefix(self) -> str:
        """Every cloud resource name starts with this, so stacks can share a project."""
        return f"hdc-{self.environment}"

    @property
    def records_bucket(self) -> str:
        return self.archive_bucket_records or default_bucket_name(self.environment, "records")

    @property
    def audit_bucket(self) -> str:
        return self.archive_bucket_audit or default_bucket_name(self.environment, "audit")

    def load_catalog(self) -> Catalog:
        path = Path(self.catalog)
        if not path.is_absolute() and (INFRA_DIR / path).exists():
            path = INFRA_DIR / path
        return load_catalog(path)


_KEYS = {
    "catalog": str,
    "target": str,
    "environment": str,
    "image": str,
    "keyPair": str,
    "externalNetwork": str,
    "externalNetworkId": str,
    "physicalNetwork": str,
    "dnsNameservers": list,
    "domain": str,
    "manageFlavors": bool,
    "volumeTypes": dict,
    "archiveBucketRecords": str,
    "archiveBucketAudit": str,
    "archiveDefaultRetentionDays": int,
    "minioSecure": bool,
    "caValidityDays": int,
    "certValidityDays": int,
    "organization": str,
    "managementPorts": list,
    "protectData": bool,
}


def read_settings(config: pulumi.Config | None = None) -> StackSettings:
    """Read `hdc:*` from the stack's config; raise SettingsError naming the key on a bad value."""
    import pulumi  # the `infra` extra; only the Pulumi program calls this

    cfg = config or pulumi.Config("hdc")
    raw: dict[str, Any] = {}
    for key, kind in _KEYS.items():
        try:
            if kind is bool:
                value: Any = cfg.get_bool(key)
            elif kind is int:
                value = cfg.get_int(key)
            elif kind in (list, dict):
                value = cfg.get_object(key)
            else:
                value = cfg.get(key)
        except Exception as exc:  # pulumi raises ConfigTypeError with the key in the message
            raise SettingsError(f"hdc:{key}: {exc}") from None
        if value is not None:
            raw[key] = value
    if cfg.get("bucketPrefix") is not None:
        raise SettingsError(
            "hdc:bucketPrefix is no longer used: the archive has two buckets, named by hdc:archiveBucketRecords "
            "and hdc:archiveBucketAudit (defaults hdc-<environment>-archive-records / -audit)"
        )
    raw.setdefault("environment", pulumi.get_stack())
    if "catalog" not in raw:
        raise SettingsError("hdc:catalog is not set: `pulumi config set hdc:catalog lab` (a name or a path)")
    try:
        return StackSettings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        alias = next((k for k in _KEYS if k == field or _snake(k) == field), field)
        raise SettingsError(f"hdc:{alias}: {err['msg']}") from None


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
