"""`hdc configure` against the throw-away hosts (after test_site.py converged them).

Also the MinIO variant of object_store, which CI can only check: `--check` on the store hosts,
its binary announced by an internal mirror (a file server in the switch namespace).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hdc.procs import ManagedProcess, wait_until
from playbooks.runner import inventory_from_catalog

from .conftest import TEST_HOSTS
from .hosts import CONTROLLER_ADDRESS, Lab

pytestmark = [
    pytest.mark.hosts,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

HDC = str(Path(sys.executable).parent / "hdc")


@pytest.fixture(scope="module")
def files(
    hosts: Lab, lab_catalog_dir: Path, test_vars: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict:
    d = tmp_path_factory.mktemp("cli")
    conn = hosts.inventory_vars()
    # The hosts site.yml converged, as they were: the firewall rules derive from the inventory's
    # hosts (flow sources), so one more host would be a real change on a converged host.
    inv = inventory_from_catalog(lab_catalog_dir, host_vars=dict.fromkeys(TEST_HOSTS, conn), only_hosts=set(TEST_HOSTS))
    (d / "inventory.yml").write_text(yaml.safe_dump(inv.data, sort_keys=False))
    # ...plus epr-app-01, a probe: an address where nothing answers SSH
    names = {*TEST_HOSTS, "epr-app-01"}
    inv = inventory_from_catalog(lab_catalog_dir, host_vars=dict.fromkeys(names, conn), only_hosts=names)
    (d / "with-unreachable.yml").write_text(yaml.safe_dump(inv.data, sort_keys=False))
    (d / "vars.yml").write_text(yaml.safe_dump(test_vars))
    return {
        "inventory": d / "inventory.yml",
        "unreachable": d / "with-unreachable.yml",
        "vars": d / "vars.yml",
        "dir": d,
        "catalog": str(lab_catalog_dir),
    }


def hdc_configure(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HDC, "configure", *args], capture_output=True, text=True, timeout=timeout)


def test_configure_reports_per_task_and_per_host(files: dict, hosts: Lab) -> None:
    # one role on one host (the rest of the baseline is converged twice by test_site.py)
    r = hdc_configure("-i", str(files["inventory"]), "-c", files["catalog"], "--limit", "noc-app-01", "--playbook", "baseline.yml",
                      "--tags", "node_exporter", "-e", f"@{files['vars']}")  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "PLAY Harden and observe every host" in r.stdout
    assert "noc-app-01               node_exporter : Install node_exporter" in r.stdout
    assert "base : " not in r.stdout
    assert "per-host summary" in r.stdout
    row = next(line for line in r.stdout.splitlines() if "│ noc-app-01" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[0] == "noc-app-01" and cells[2:5] == ["0", "0", "0"]  # changed, failed, unreachable
    assert "done: 0 change(s)" in r.stdout


def test_configure_fails_with_unreachable_host(files: dict) -> None:
    r = hdc_configure("-i", str(files["unreachable"]), "-c", files["catalog"], "--limit", "epr-app-01", "--playbook", "baseline.yml",
                      "-e", f"@{files['vars']}", timeout=120)  # fmt: skip
    assert r.returncode != 0
    assert "unreachable epr-app-01" in " ".join(r.stdout.split())
    row = next(line for line in r.stdout.splitlines() if "│ epr-app-01" in line)
    assert [c.strip() for c in row.split("│") if c.strip()][4] == "1"


@pytest.fixture(scope="module")
def mirror(hosts: Lab, files: dict) -> Any:
    """An internal mirror announcing a MinIO binary (check mode only asks for its headers)."""
    root = files["dir"] / "mirror"
    root.mkdir()
    (root / "minio").write_text("placeholder: check mode requests headers only\n")
    proc = ManagedProcess(
        name="mirror",
        argv=["ip", "netns", "exec", hosts.switch, sys.executable, "-m", "http.server", "8000",
              "--bind", CONTROLLER_ADDRESS, "--directory", str(root)],
        log_path=files["dir"] / "mirror.log",
    ).start()  # fmt: skip
    wait_until(
        lambda: hosts.exec_in("switch", ["curl", "-sfI", f"http://{CONTROLLER_ADDRESS}:8000/minio"]).returncode == 0,
        15,
        "mirror",
    )
    yield f"http://{CONTROLLER_ADDRESS}:8000/minio"
    proc.stop()


def test_minio_variant_in_check_mode(files: dict, hosts: Lab, mirror: str) -> None:
    r = hdc_configure("-i", str(files["inventory"]), "-c", files["catalog"], "--limit", "object_store", "--check",
                      "--tags", "object_store", "-e", f"@{files['vars']}", "-e", "hdc_object_store_backend=minio",
                      "-e", f"hdc_minio_download_url={mirror}")  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr
    out = " ".join(r.stdout.split())
    for task in (
        "MinIO binary from the configured source",
        "MinIO environment (erasure-coded pool over every node and drive)",
        "MinIO unit",
    ):
        assert f"changed archive-store-01 object_store : {task}" in out, task
    # check mode changed nothing: SeaweedFS still serves, no MinIO on disk
    assert hosts.in_host("archive-store-01", ["test", "-e", "/usr/local/bin/minio"]).returncode == 1
    assert hosts.in_host("archive-store-01", ["systemctl", "is-active", "seaweedfs"]).stdout.strip() == "active"
