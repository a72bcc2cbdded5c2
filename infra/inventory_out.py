"""Render the Ansible inventory from a stack's outputs: the addresses the cloud really gave."""

from __future__ import annotations

from collections.abc import Mapping

from hdc.errors import UserError
from inventory.ansible import render_inventory
from inventory.hosts import plan_hosts
from inventory.model import Catalog


def addresses_from_outputs(outputs: Mapping[str, object]) -> dict[str, str]:
    hosts = outputs.get("hosts")
    if not isinstance(hosts, Mapping) or not hosts:
        raise UserError("the stack has no 'hosts' output: run `hdc infra up` first")
    out: dict[str, str] = {}
    for name, value in hosts.items():
        address = value.get("address") if isinstance(value, Mapping) else None
        if not isinstance(address, str) or not address:
            raise UserError(f"stack output hosts.{name} has no address")
        out[str(name)] = address
    return out


def inventory_from_outputs(cat: Catalog, outputs: Mapping[str, object]) -> str:
    """The inventory text; every host the catalog plans must be in the stack (else: not yet deployed)."""
    addresses = addresses_from_outputs(outputs)
    missing = sorted({h.name for h in plan_hosts(cat)} - set(addresses))
    if missing:
        shown = ", ".join(missing[:10]) + (" …" if len(missing) > 10 else "")
        raise UserError(
            f"{len(missing)} host(s) of catalog '{cat.name}' are not in the stack yet ({shown}): run `hdc infra up`"
        )
    return render_inventory(cat, addresses)
