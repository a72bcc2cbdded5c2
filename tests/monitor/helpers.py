"""Catalogs written for the monitor tests: their own addresses and ports, never the lab's."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

import yaml

from hdc.procs import free_port
from inventory.loader import load_catalog
from inventory.model import Catalog

DATACENTER = {
    "datacenter": {
        "name": "Test DC",
        "zones": [{"id": "mgmt", "kind": "management", "name": "Management", "vlan": 130, "subnet": "10.99.3.0/24"}],
        "clusters": [{"id": "kvm", "name": "KVM", "hosts": 1, "vcpu_per_host": 8, "ram_gb_per_host": 32}],
    }
}
AR = "مستشفى"


def facility(
    fid: str,
    host: str,
    port: int,
    *,
    if_index: int = 2,
    bandwidth: int = 100,
    v3: bool = False,
    community_ref: str = "file:snmp/community",
    kind: str = "regional_hospital",
    region: str = "north",
    status: str = "connected",
) -> dict[str, Any]:
    snmp: dict[str, Any]
    if v3:
        snmp = {
            "version": "3",
            "user": "noc",
            "auth_protocol": "SHA",
            "auth_key_ref": "file:snmp/v3-auth",
            "priv_protocol": "AES",
            "priv_key_ref": "file:snmp/v3-priv",
        }
    else:
        snmp = {"version": "2c", "community_ref": community_ref}
    return {
        "id": fid,
        "name": f"Hôpital {fid}",
        "name_ar": f"{AR} {fid}",
        "kind": kind,
        "region": region,
        "status": status,
        "link": {
            "router": host,
            "snmp_port": port,
            "snmp": snmp,
            "uplink": {"if_index": if_index},
            "bandwidth_mbps": bandwidth,
        },
    }


def write_catalog(root: Path, facilities: list[dict[str, Any]], name: str = "test-net") -> Catalog:
    root.mkdir(parents=True, exist_ok=True)
    head = {
        "name": name,
        "regions": [
            {"id": "north", "name": "North", "name_ar": "الشمال"},
            {"id": "south", "name": "South", "name_ar": "الجنوب"},
        ],
        "backup_classes": [{"id": "bronze", "schedule": "0 2 * * 0", "keep_days": 14}],
    }
    (root / "catalog.yaml").write_text(yaml.safe_dump(head, allow_unicode=True), encoding="utf-8")
    (root / "datacenter.yaml").write_text(yaml.safe_dump(DATACENTER), encoding="utf-8")
    (root / "facilities.yaml").write_text(
        yaml.safe_dump({"facilities": facilities}, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return load_catalog(root)


def udp_port() -> int:
    return free_port(kind=socket.SOCK_DGRAM)


def write_secrets(base: Path) -> dict[str, str]:
    """Random values for the references the test catalogs use (generated now, never stored)."""
    values = {name: secrets.token_urlsafe(12) for name in ("community", "v3-auth", "v3-priv", "other-community")}
    (base / "snmp").mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (base / "snmp" / name).write_text(value + "\n", encoding="utf-8")
    return values
