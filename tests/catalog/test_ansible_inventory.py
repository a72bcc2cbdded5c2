"""The Ansible inventory rendered from the catalog is what ansible-inventory itself reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from inventory.ansible import build_inventory
from inventory.hosts import plan_hosts
from inventory.loader import load_catalog

VENV_BIN = Path(sys.executable).parent


def test_hosts_and_groups_follow_the_catalog() -> None:
    cat = load_catalog("lab")
    inv = build_inventory(cat)["all"]
    expected_hosts = sum(t.count for p in cat.platforms for t in p.tiers)
    assert len(inv["hosts"]) == expected_hosts
    assert set(inv["children"]["archive_service"]["hosts"]) == {"archive-app-01", "archive-app-02"}
    assert set(inv["children"]["object_store"]["hosts"]) == {f"archive-store-0{i}" for i in range(1, 5)}
    assert "appointments-web-01" in inv["children"]["zone_dmz"]["hosts"]
    assert inv["hosts"]["archive-app-01"]["ansible_host"] == "10.20.1.10"
    addresses = [h["ansible_host"] for h in inv["hosts"].values()]
    assert len(addresses) == len(set(addresses))


def test_provisioning_addresses_override_the_plan() -> None:
    cat = load_catalog("lab")
    inv = build_inventory(cat, {"archive-app-01": "192.0.2.7"})["all"]
    assert inv["hosts"]["archive-app-01"]["ansible_host"] == "192.0.2.7"
    assert inv["hosts"]["archive-app-02"]["ansible_host"] == "10.20.1.11"


def test_planned_addresses_lie_in_their_zone() -> None:
    cat = load_catalog("tunisia")
    zones = {z.id: z.subnet for z in cat.datacenter.zones}
    for host in plan_hosts(cat):
        assert host.address in zones[host.zone]


def test_ansible_inventory_parses_the_rendered_file(tmp_path: Path) -> None:
    out = tmp_path / "hosts.yml"
    subprocess.run([sys.executable, "-m", "hdc", "catalog", "inventory", "lab", "-o", str(out)], check=True, timeout=60)
    assert yaml.safe_load(out.read_text())["all"]["vars"]["hdc_catalog"] == "lab"
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_HOME": str(tmp_path)}
    listed = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(out), "--list"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    data = json.loads(listed.stdout)
    assert set(data["postgresql"]["hosts"]) == {"archive-db-01"}
    assert data["_meta"]["hostvars"]["noc-app-01"]["hdc_zone"] == "mgmt"


def test_bad_addresses_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "addresses.json"
    bad.write_text("[1, 2]")
    result = subprocess.run(
        [sys.executable, "-m", "hdc", "catalog", "inventory", "lab", "--addresses", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "expected a JSON object" in result.stderr and "Traceback" not in result.stderr
