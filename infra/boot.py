"""Where a host's boot disk lives: medical platforms boot from an encrypted volume, others from the image.

Boot disks of medical hosts hold logs, caches and temporary files with patient data, so they go
on an encrypted block pool like the data volumes: the tier's own pool when it is encrypted
block storage, else the catalog's first encrypted SSD pool, else its first encrypted block pool.
"""

from __future__ import annotations

from inventory.model import Catalog, Classification, Platform, StoragePool, Tier


class BootPoolError(ValueError):
    """A medical platform has no encrypted block pool for its boot volumes."""


def boot_volume_pool(cat: Catalog, plat: Platform, tier: Tier) -> StoragePool | None:
    """The pool of the tier's boot volumes, or None when hosts boot from the image on local disk."""
    if plat.classification is not Classification.MEDICAL:
        return None
    block = [p for p in cat.datacenter.storage_pools if p.encrypted and p.kind.startswith("block-")]
    own = next((p for p in block if p.id == tier.storage_pool), None)
    chosen = own or next((p for p in block if p.kind == "block-ssd"), None) or (block[0] if block else None)
    if chosen is None:
        raise BootPoolError(
            f"platform '{plat.id}' is medical: its boot disks need an encrypted block storage pool, "
            "and datacenter.storage_pools has none"
        )
    return chosen
