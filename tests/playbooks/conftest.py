"""Fixtures for the playbook tests: one set of throw-away hosts per session, converged once."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inventory.hosts import plan_hosts
from inventory.loader import load_catalog, resolve_path
from inventory.secrets import ensure_secrets
from playbooks.runner import Inventory, RunResult, inventory_from_catalog, run_playbook

from .hosts import Lab, ensure_rootfs, hosts_available, lab
from .wheelhouse import REPO, ensure_wheelhouse, ensure_wheelhouse_cache

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


# The host image and the wheelhouse take minutes to build on a fresh machine and the tests that
# run first (lint, the driver) need neither: both builds start as soon as the host tests are
# collected. The fixtures call the same functions, which wait on the builds' file locks and
# raise their errors themselves if a build failed here.
_EARLY_BUILDS: list[threading.Thread] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    if SKIP_REASON is not None or not any(item.get_closest_marker("hosts") for item in session.items):
        return
    for build in (ensure_rootfs, ensure_wheelhouse_cache):
        thread = threading.Thread(target=_build_quietly, args=(build,), name=f"early-{build.__name__}", daemon=True)
        thread.start()
        _EARLY_BUILDS.append(thread)


def _build_quietly(build: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # reported by the fixture that needs it
        build()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Never leave a build running behind the session (e.g. after a lint failure with -x)."""
    for thread in _EARLY_BUILDS:
        thread.join()


@pytest.fixture(scope="session")
def lab_catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the lab catalog taken when the session starts.

    The converges copy the catalog to the hosts and derive firewall rules and alert rules from
    it: an edit of the working tree between the two converges (another test, another engineer)
    would be a real change on the second one, i.e. a false idempotence failure.
    """
    snapshot = tmp_path_factory.mktemp("catalog") / "lab"
    shutil.copytree(resolve_path("lab"), snapshot)
    return snapshot


@pytest.fixture(scope="session")
def lab_catalog(lab_catalog_dir: Path) -> Any:
    return load_catalog(lab_catalog_dir)


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
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="session")
def inventory(hosts: Lab, lab_catalog_dir: Path) -> Inventory:
    conn = hosts.inventory_vars()
    return inventory_from_catalog(
        lab_catalog_dir, host_vars={n: conn for n in hosts.hosts}, only_hosts=set(hosts.hosts)
    )


@pytest.fixture(scope="session")
def noc_login() -> dict[str, str]:
    """An operator of the NOC page: the role gets only the hash (as from `hdc monitor operators add`)."""
    from monitor.noc.access import hash_password

    password = secrets.token_urlsafe(15)
    return {"name": "noc-oncall", "password": password, "hash": hash_password(password)}


@pytest.fixture(scope="session")
def test_vars(
    wheelhouse: Path, lab_catalog: Any, noc_login: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Variables that differ from production: no apt mirror reachable, wheels from the local wheelhouse."""
    from .pki import make_pki

    pki = make_pki(tmp_path_factory.mktemp("pki"), TEST_HOSTS)
    secrets_dir = tmp_path_factory.mktemp("secrets")
    ensure_secrets(lab_catalog, secrets_dir)
    # One notification route: Alertmanager's receiver of that name posts to the monitor's webhook.
    # Its Apprise URL (a mail server nobody runs here) is only used once the monitor sends.
    (secrets_dir / "oncall.url").write_text("mailto://127.0.0.1:2525?from=noc@example.org&to=oncall@example.org\n")
    # the monitor's rule file as it is now (Prometheus' rules are rendered from it at each converge)
    rules = tmp_path_factory.mktemp("rules") / "default.yaml"
    shutil.copyfile(REPO / "monitor/rules/default.yaml", rules)
    routes = tmp_path_factory.mktemp("notify") / "routes.yml"
    routes.write_text("version: 1\nroutes:\n  - name: oncall\n    urls: ['file:oncall.url']\n")
    return {
        "hdc_apt_update_cache": False,
        "hdc_python_wheelhouse": str(wheelhouse),
        "hdc_pki_dir": str(pki),
        "hdc_secrets_dir": str(secrets_dir),
        "hdc_monitor_notify_file": str(routes),
        "hdc_monitor_rules_file": str(rules),
        "hdc_object_store_backend": "seaweedfs",
        "hdc_object_store_access_key": "root-" + secrets.token_hex(4),
        "hdc_object_store_secret_key": secrets.token_urlsafe(24),
        "hdc_object_store_archive_access_key": "archive-" + secrets.token_hex(4),
        "hdc_object_store_archive_secret_key": secrets.token_urlsafe(24),
        "hdc_seaweedfs_sse_kek": secrets.token_hex(32),
        "hdc_archive_db_password": secrets.token_urlsafe(18),
        "hdc_archive_kek": base64.b64encode(os.urandom(32)).decode(),
        "hdc_archive_index_key": base64.b64encode(os.urandom(32)).decode(),
        "hdc_monitor_operators": [{"name": noc_login["name"], "role": "operator", "password": noc_login["hash"]}],
        "hdc_alertmanager_webhook_password": secrets.token_urlsafe(18),
    }


class Converge:
    """Runs a playbook on the test hosts and keeps every result, with its duration and events."""

    def __init__(self, inventory: Inventory, extravars: dict[str, Any], workdir: Path) -> None:
        self.inventory = inventory
        self.extravars = extravars
        self.workdir = workdir
        self.lines: list[str] = []
        self.runs = 0

    def __call__(self, playbook: str, **kw: Any) -> tuple[RunResult, float]:
        start = time.monotonic()
        self.runs += 1
        extravars = {**self.extravars, **kw.pop("extravars", {})}
        result = run_playbook(
            self.inventory,
            playbook=playbook,
            extravars=extravars,
            on_line=self.lines.append,
            keep_artifacts=self.workdir / f"run{self.runs}",
            **kw,
        )
        return result, time.monotonic() - start

    @staticmethod
    def _events(result: RunResult) -> Iterator[dict[str, Any]]:
        paths = Path(result.artifacts or "").glob("*/job_events/*.json")
        for path in sorted(paths, key=lambda p: int(p.name.split("-")[0])):
            yield json.loads(path.read_text())

    @classmethod
    def slowest(cls, result: RunResult, count: int = 12) -> list[str]:
        """The tasks that took longest (summed over hosts): where converge time goes."""
        spent: dict[str, float] = {}
        for event in cls._events(result):
            data = event.get("event_data") or {}
            if event.get("event") in ("runner_on_ok", "runner_on_failed") and data.get("duration"):
                task = f"{data.get('role', '')}: {data.get('task', '')}"
                spent[task] = spent.get(task, 0.0) + float(data["duration"])
        ranked = sorted(spent.items(), key=lambda kv: -kv[1])[:count]
        return [f"{seconds:6.1f} s host-time  {task}" for task, seconds in ranked]

    @classmethod
    def changes(cls, result: RunResult) -> list[str]:
        """Each changed task of a run: host, task and its diff (run with diff=True to get one)."""
        out = []
        for event in cls._events(result):
            data = event.get("event_data") or {}
            res = data.get("res") or {}
            if event.get("event") != "runner_on_ok" or not res.get("changed"):
                continue
            diffs = res.get("diff") or []
            text = json.dumps(diffs if isinstance(diffs, list) else [diffs], indent=1)[:3000]
            out.append(f"{data.get('host')}: {data.get('task')}\n{text}")
        return out

    def failures(self) -> str:
        bad = [line for line in self.lines if line.lstrip().startswith(("failed", "unreachable"))]
        return "\n".join(bad or self.lines[-40:])[-5000:]


@pytest.fixture(scope="session")
def converge(inventory: Inventory, test_vars: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Converge:
    return Converge(inventory, test_vars, tmp_path_factory.mktemp("converge"))
