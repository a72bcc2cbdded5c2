"""Which archive buckets a catalog implies: the archive service's two buckets, records and audit.

The archive service (`archive_service/store.py`) owns the layout: exactly two object-locked,
versioned buckets (`HDC_ARCHIVE_BUCKET_RECORDS`, `HDC_ARCHIVE_BUCKET_AUDIT`) with a default
COMPLIANCE retention of `HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS` as a safety net; every
object version carries its own retain-until date from the record class schedule. Kept free of
Pulumi so `hdc infra plan` and the program name and size the buckets the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from inventory.model import Catalog

ARCHIVE_ROLE = "archive_service"
# The archive's own default (`ArchiveSettings.bucket_default_retention_days`); the stack setting
# `hdc:archiveDefaultRetentionDays` must equal the service's value (see docs/infra.md).
DEFAULT_RETENTION_DAYS = 3650
# Noncurrent versions are kept this many days past the longest retention before expiry; the
# object lock already forbids deleting a version still under retention or legal hold.
NONCURRENT_GRACE_DAYS = 30
BUCKET_ROLES = ("records", "audit")
# S3 bucket naming rules (lower case, digits, dots, hyphens; 3-63; letter or digit at both ends).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class BucketSpec:
    role: str  # "records" or "audit"
    name: str
    default_retention_days: int
    noncurrent_expiry_days: int


def archive_platforms(cat: Catalog) -> list[str]:
    return [p.id for p in cat.platforms if any(ARCHIVE_ROLE in t.roles for t in p.tiers)]


def default_bucket_name(environment: str, role: str) -> str:
    return f"hdc-{environment}-archive-{role}"


def check_bucket_name(name: str, key: str) -> str:
    """The name if S3 accepts it; else ValueError naming the setting."""
    if not _BUCKET_NAME.match(name) or ".." in name or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        raise ValueError(
            f"{key}: '{name}' is not a valid bucket name (3-63 characters: lower-case letters, digits, "
            "dots and hyphens, starting and ending with a letter or digit)"
        )
    return name


def days_in_years(years: int) -> int:
    """Upper bound of the days in `years` calendar years counted from any date (leap days included)."""
    return 365 * years + -(-years // 4)


def noncurrent_expiry_days(cat: Catalog, default_retention_days: int) -> int:
    """Never before the longest retention (catalog classes, bucket default), plus the grace period."""
    longest = max([days_in_years(r.years) for r in cat.retention_classes] + [default_retention_days])
    return longest + NONCURRENT_GRACE_DAYS


def archive_buckets(
    cat: Catalog, records: str, audit: str, default_retention_days: int = DEFAULT_RETENTION_DAYS
) -> list[BucketSpec]:
    """The records and audit buckets, or none when no platform of the catalog runs the archive."""
    if not archive_platforms(cat):
        return []
    if default_retention_days < 1:
        raise ValueError(f"hdc:archiveDefaultRetentionDays: {default_retention_days} must be at least 1")
    names = {
        "records": check_bucket_name(records, "hdc:archiveBucketRecords"),
        "audit": check_bucket_name(audit, "hdc:archiveBucketAudit"),
    }
    if records == audit:
        raise ValueError(f"hdc:archiveBucketRecords and hdc:archiveBucketAudit must differ (both '{records}')")
    expiry = noncurrent_expiry_days(cat, default_retention_days)
    return [BucketSpec(role, names[role], default_retention_days, expiry) for role in BUCKET_ROLES]
