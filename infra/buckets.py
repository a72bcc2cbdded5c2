"""Which archive buckets a catalog implies: one per retention class, on the platform running the archive.

Kept free of Pulumi so `hdc infra plan` and the archive service can name buckets the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from inventory.model import Catalog, RetentionClass

ARCHIVE_ROLE = "archive_service"
# Noncurrent versions are kept this many days past the retention period before expiry; the
# object lock already forbids deleting them earlier.
NONCURRENT_GRACE_DAYS = 30


@dataclass(frozen=True)
class BucketSpec:
    name: str
    retention: RetentionClass

    @property
    def retention_days(self) -> int:
        return self.retention.years * 365

    @property
    def noncurrent_expiry_days(self) -> int:
        return self.retention_days + NONCURRENT_GRACE_DAYS


def archive_platforms(cat: Catalog) -> list[str]:
    return [p.id for p in cat.platforms if any(ARCHIVE_ROLE in t.roles for t in p.tiers)]


def bucket_name(prefix: str, retention_id: str) -> str:
    name = f"{prefix}-{retention_id}".lower()
    if not 3 <= len(name) <= 63:
        raise ValueError(f"bucket name '{name}' must be 3-63 characters (shorten hdc:bucketPrefix)")
    return name


def archive_buckets(cat: Catalog, prefix: str) -> list[BucketSpec]:
    """No archive platform in the catalog, no buckets; retention classes of 0 years get none either."""
    if not archive_platforms(cat):
        return []
    return [BucketSpec(bucket_name(prefix, r.id), r) for r in cat.retention_classes if r.years > 0]
