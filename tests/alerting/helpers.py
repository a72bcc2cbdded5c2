"""Builders shared by the alerting tests: LinkState snapshots and synthetic catalogs."""

from __future__ import annotations

from typing import Any

from inventory.model import Catalog
from monitor.state import LinkState, OperStatus


def up(fid: str, now: float, utilisation: float | None = 0.1, errors: float | None = 0.0) -> LinkState:
    return LinkState(
        facility_id=fid,
        reachable=True,
        oper_status=OperStatus.UP,
        admin_up=True,
        consecutive_failures=0,
        last_poll=now,
        last_success=now,
        in_bps=1e6,
        out_bps=1e6,
        utilisation=utilisation,
        in_errors_per_s=errors,
        out_errors_per_s=0.0 if errors is not None else None,
        in_discards_per_s=0.0,
        out_discards_per_s=0.0,
    )


def down(fid: str, now: float) -> LinkState:
    """The router answers; the uplink is operationally down."""
    return LinkState(
        facility_id=fid,
        reachable=True,
        oper_status=OperStatus.DOWN,
        admin_up=True,
        consecutive_failures=0,
        last_poll=now,
        last_success=now,
        in_bps=0.0,
        out_bps=0.0,
        utilisation=0.0,
        in_errors_per_s=0.0,
        out_errors_per_s=0.0,
        in_discards_per_s=0.0,
        out_discards_per_s=0.0,
    )


def unreachable(fid: str, now: float, failures: int) -> LinkState:
    return LinkState(
        facility_id=fid,
        reachable=False,
        oper_status=OperStatus.UNKNOWN,
        admin_up=True,
        consecutive_failures=failures,
        last_poll=now,
        last_success=now - 60 * failures,
        in_bps=None,
        out_bps=None,
        utilisation=None,
        in_errors_per_s=None,
        out_errors_per_s=None,
        in_discards_per_s=None,
        out_discards_per_s=None,
        error="timeout",
    )


def fac(fid: str, region: str, kind: str, parent: str | None, i: int) -> dict[str, Any]:
    return {
        "id": fid,
        "name": f"Établissement {fid}",
        "name_ar": f"مؤسسة {i}",
        "kind": kind,
        "region": region,
        "status": "connected",
        "link": {
            "router": f"127.0.{20 + i // 250}.{1 + i % 250}",
            "snmp_port": 16161,
            "snmp": {"version": "2c", "community_ref": "file:lab/snmp-community"},
            "uplink": {"if_index": 2},
            "bandwidth_mbps": 100,
            "parent": parent,
        },
    }


def storm_catalog(n: int) -> Catalog:
    """One region with an aggregation site and `n` primary-care centres behind it, plus a second region."""
    facilities = [fac("pop-gafsa", "gafsa", "aggregation_site", None, 0)]
    facilities += [fac(f"csb-gafsa-{i:03d}", "gafsa", "primary_care_centre", "pop-gafsa", i + 1) for i in range(n)]
    facilities.append(fac("hr-tozeur", "tozeur", "regional_hospital", None, n + 1))
    return Catalog.model_validate(
        {
            "name": "storm",
            "regions": [
                {"id": "gafsa", "name": "Gafsa", "name_ar": "قفصة"},
                {"id": "tozeur", "name": "Tozeur", "name_ar": "توزر"},
            ],
            "facilities": facilities,
            "datacenter": {
                "name": "dc",
                "zones": [{"id": "app", "kind": "application", "name": "a", "vlan": 10, "subnet": "10.0.0.0/24"}],
                "clusters": [{"id": "c1", "name": "c", "hosts": 1, "vcpu_per_host": 8, "ram_gb_per_host": 32}],
            },
        }
    )
