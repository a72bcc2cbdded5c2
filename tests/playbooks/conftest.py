"""Fixtures for the playbook tests: one set of throw-away hosts per session, converged once."""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inventory.hosts import plan_hosts
from inventory.loader import load_catalog
from inventory.secrets import ensure_secrets
from playbooks.runner import Inventory, RunResult, inventory_from_catalog, run_playbook

from .hosts import Lab, hosts_available, lab
from .wheelhouse import ensure_wheelhouse

# The lab catalog's hosts started for real: one of each role and a three-node object store.
TEST_HOSTS = (
    "archive-app-01",
    "archive-db-01",
    "archive-store-01",
    "archive-store-02",
    "archive-store-03",
    "noc-app-01",
)
# Clients with the addresses of two other catalog hosts (bare namespaces, no OS): epr-app-01
# may reach the archive (a flow in the catalog), appointments-web-01 may reach nothing here.
PROBES = ("epr-app-01", "appointments-web-01")

SKIP_REASON = hosts_available()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if SKIP_REASON is None:
        return
    for item in items:
        if item.get_closest_marker("hosts"):
            item.add_marker(pytest.mark.skip(reason=f"throw-away hosts unavailable: {SKIP_REASON}"))


@pytest.fixture(scope="session")
def lab_catalog() -> Any:
    return load_catalog("lab")


@pytest.fixture(scope="session")
def hosts(tmp_path_factory: pytest.TempPathFactory, lab_catalog: Any) -> Iterator[Lab]:
    planned = {h.name: str(h.address) for h in plan_hosts(lab_catalog)}
    with lab(
        tmp_path_factory.mktemp("hosts"),
        {n: planned[n] for n in TEST_HOSTS},
        {n: planned[n] for n in PROBES},
    ) as the_lab:
        yield the_lab


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    return ensure_wheelhouse()


@pytest.fixture(scope="session")
def inventory(hosts: Lab, lab_catalog: Any) -> Inventory:
    conn = hosts.inventory_vars()
    return inventory_from_catalog(lab_catalog, host_vars={n: conn for n in hosts.hosts}, only_hosts=set(hosts.hosts))


@pytest.fixture(scope="session")
def test_vars(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Variables that differ from production: no apt mirror reachable, wheels from the local wheelhouse."""
    from .pki import make_pki

    pki = make_pki(tmp_path_factory.mktemp("pki"), TEST_HOSTS)
    secrets_dir = tmp_path_factory.mktemp("secrets")
    ensure_secrets(load_catalog("lab"), secrets_dir)
    return {
        "hdc_apt_update_cache": False,
        "hdc_python_wheelhouse": str(wheelhouse),
        "hdc_pki_dir": str(pki),
        "hdc_secrets_dir": str(secrets_dir),
        "hdc_object_store_backend": "seaweedfs",
        "hdc_object_store_access_key": "root-" + secrets.token_hex(4),
        "hdc_object_store_secret_key": secrets.token_urlsafe(24),
        "hdc_object_store_archive_access_key": "archive-" + secrets.token_hex(4),
        "hdc_object_store_archive_secret_key": secrets.token_urlsafe(24),
        "hdc_archive_db_password": secrets.token_urlsafe(18),
        "hdc_archive_kek": base64.b64encode(os.urandom(32)).decode(),
        "hdc_archive_index_key": base64.b64encode(os.urandom(32)).decode(),
    }


class Converge:
    """Runs a playbook on the test hosts and keeps every result, with its duration."""

    def __init__(self, inventory: Inventory, extravars: dict[str, Any]) -> None:
        self.inventory = inventory
        self.extravars = extravars
        self.lines: list[str] = []

    def __call__(self, playbook: str, **kw: Any) -> tuple[RunResult, float]:
        start = time.monotonic()
        extravars = {**self.extravars, **kw.pop("extravars", {})}
        result = run_playbook(self.inventory, playbook=playbook, extravars=extravars, on_line=self.lines.append, **kw)
        return result, time.monotonic() - start

    def failures(self) -> str:
        bad = [line for line in self.lines if line.lstrip().startswith(("failed", "unreachable"))]
        return "\n".join(bad or self.lines[-40:])[-5000:]


@pytest.fixture(scope="session")
def converge(inventory: Inventory, test_vars: dict[str, Any]) -> Converge:
    return Converge(inventory, test_vars)
