"""Render the Ansible inventory from the catalog, so `playbooks/` never keeps a list of its own.

Groups: `platform_<id>`, `tier_<name>`, `zone_<id>`, and one group per Ansible role named
in the catalog (`archive_service`, `postgresql`, …). Addresses come from the host plan, or
from provisioning outputs when given (`addresses`, e.g. read from `pulumi stack output`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from .hosts import plan_hosts
from .model import Catalog


def group_name(prefix: str, value: str) -> str:
    return f"{prefix}_{value}".replace("-", "_") if prefix else value.replace("-", "_")


def build_inventory(
    cat: Catalog,
    addresses: Mapping[str, str] | None = None,
    host_vars: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return an inventory in Ansible's YAML layout (all: hosts/children/vars)."""
    addresses = addresses or {}
    host_vars = host_vars or {}
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, None]] = {}
    for h in plan_hosts(cat):
        hosts[h.name] = {
            "ansible_host": addresses.get(h.name, str(h.address)),
            "hdc_platform": h.platform,
            "hdc_tier": h.tier.value,
            "hdc_zone": h.zone,
            "hdc_classification": h.classification.value,
            **host_vars.get(h.name, {}),
        }
        for g in (
            group_name("platform", h.platform),
            group_name("tier", h.tier.value),
            group_name("zone", h.zone),
            *(group_name("", r) for r in h.roles),
        ):
            groups.setdefault(g, {})[h.name] = None
    return {
        "all": {
            "vars": {"hdc_catalog": cat.name},
            "hosts": hosts,
            "children": {g: {"hosts": members} for g, members in sorted(groups.items())},
        }
    }


def render_inventory(cat: Catalog, addresses: Mapping[str, str] | None = None) -> str:
    header = f"# Rendered from catalog '{cat.name}' by `hdc catalog inventory`; do not edit by hand.\n"
    return header + yaml.safe_dump(build_inventory(cat, addresses), sort_keys=False, allow_unicode=True)
