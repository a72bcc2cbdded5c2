"""Run the playbooks through ansible-runner: one progress line per task result, a per-host summary.

The inventory is the catalog's (`inventory.ansible.build_inventory`), written into the runner's
private data directory next to a second inventory file holding the variables only the catalog
knows (`catalog_vars`), so an inventory rendered earlier (e.g. with Pulumi's addresses) gets
the same firewall rules as one rendered now.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from hdc.errors import UserError
from inventory.ansible import build_inventory
from inventory.loader import load_catalog, resolve_path
from inventory.model import Catalog

from .catalog_vars import derived_group_vars, derived_host_vars
from .monitoring_files import render_monitoring_files

PLAYBOOKS_DIR = Path(__file__).resolve().parent
FALSE_WORDS = frozenset({"false", "no", "off", "0", "n", "f"})


def role_default(role: str, name: str) -> Any:
    """A role's documented default (its defaults/main.yml): one place for values both sides use."""
    defaults = yaml.safe_load((PLAYBOOKS_DIR / "roles" / role / "defaults/main.yml").read_text(encoding="utf-8"))
    return defaults[name]


def _flag(value: Any) -> bool:
    """An Ansible boolean given as an extra variable (`-e hdc_monitor_tls=false` arrives as a string)."""
    return value if isinstance(value, bool) else str(value).strip().lower() not in FALSE_WORDS


RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
    "runner_item_on_failed": "failed",
}


class HostSummary(BaseModel):
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


class RunResult(BaseModel):
    """What a run did: ansible's exit status and the per-host counters of its final stats."""

    rc: int
    status: str
    hosts: dict[str, HostSummary]
    artifacts: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.rc == 0 and not any(h.failed or h.unreachable for h in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())


class Inventory(BaseModel):
    """An inventory ready to run: Ansible's YAML layout plus the catalog it was rendered from."""

    data: dict[str, Any]
    catalog: Catalog
    catalog_dir: Path

    def host_names(self) -> list[str]:
        return sorted(self.data["all"].get("hosts") or {})

    def addresses(self) -> dict[str, str]:
        hosts = self.data["all"].get("hosts") or {}
        return {n: str(v.get("ansible_host", n)) for n, v in hosts.items() if isinstance(v, dict)}


def inventory_from_catalog(
    catalog: str | Path | Catalog,
    addresses: Mapping[str, str] | None = None,
    host_vars: Mapping[str, Mapping[str, Any]] | None = None,
    only_hosts: set[str] | None = None,
) -> Inventory:
    """The inventory a catalog implies; `only_hosts` keeps a subset (hosts that exist so far)."""
    if isinstance(catalog, Catalog):
        cat, source = catalog, resolve_path(catalog.name)
    else:
        cat, source = load_catalog(catalog), resolve_path(catalog)
    data = build_inventory(cat, addresses, host_vars)
    if only_hosts is not None:
        unknown = only_hosts - set(data["all"]["hosts"])
        if unknown:
            raise UserError(f"hosts not in catalog '{cat.name}': {', '.join(sorted(unknown))}")
        data["all"]["hosts"] = {n: v for n, v in data["all"]["hosts"].items() if n in only_hosts}
        for group in data["all"]["children"].values():
            group["hosts"] = {n: None for n in group["hosts"] if n in only_hosts}
    return Inventory(data=data, catalog=cat, catalog_dir=source)


def inventory_from_file(path: Path, catalog: str | Path | None = None) -> Inventory:
    """Read an inventory rendered by `hdc catalog inventory` (or edited from it), naming problems."""
    if not path.is_file():
        raise UserError(f"inventory {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"inventory {where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise UserError(f"inventory {path}: expected a mapping with an 'all' group (Ansible's YAML layout)")
    hosts = data["all"].get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        raise UserError(f"inventory {path}: 'all.hosts' must list at least one host")
    for name, hv in hosts.items():
        if not isinstance(hv, dict) or "ansible_host" not in hv:
            raise UserError(f"inventory {path}: host '{name}' has no 'ansible_host' address")
    name = catalog or (data["all"].get("vars") or {}).get("hdc_catalog")
    if not name:
        raise UserError(f"inventory {path}: 'all.vars.hdc_catalog' is missing; pass --catalog to name the catalog")
    return Inventory(data=data, catalog=load_catalog(name), catalog_dir=resolve_path(name))


def check_limit(inv_dir: Path, limit: str) -> list[str]:
    """The hosts `limit` selects, using Ansible's own pattern rules; an empty match is an error."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        manager = InventoryManager(loader=DataLoader(), sources=[str(inv_dir)])
        manager.subset(limit)
        selected = [h.name for h in manager.get_hosts("all")]
    if not selected:
        groups = ", ".join(sorted(g for g in manager.groups if g not in ("all", "ungrouped")))
        raise UserError(f"--limit '{limit}' matches no host of the inventory (groups: {groups})")
    return selected


def write_inventory(inv: Inventory, target: Path, extravars: Mapping[str, Any] | None = None) -> Path:
    """Write the inventory and its catalog-derived variables into `target` (a directory)."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "10-hosts.yml").write_text(yaml.safe_dump(inv.data, sort_keys=False), encoding="utf-8")
    derived_hosts = derived_host_vars(inv.catalog, inv.addresses())
    present = set(inv.host_names())
    extravars = extravars or {}
    monitors = [inv.addresses()[h] for h in sorted(inv.data["all"]["children"].get("monitor", {}).get("hosts") or {})]
    # `hdc monitor run --listen ADDR:PORT` serves the NOC page, the runbooks and Alertmanager's
    # webhook receiver (POST /api/alertmanager/webhook) on the exporter's port (monitor role),
    # over HTTPS with the internal CA's certificate unless hdc_monitor_tls is false.
    port = int(extravars.get("hdc_monitor_port", role_default("monitor", "hdc_monitor_port")))
    scheme = "https" if _flag(extravars.get("hdc_monitor_tls", role_default("monitor", "hdc_monitor_tls"))) else "http"
    where = monitors[0] if monitors else "localhost"
    noc = str(extravars.get("hdc_noc_url", f"{scheme}://{where}:{port}"))
    # Alertmanager logs in as the monitor's webhook operator (alertmanager role: the password
    # file) and trusts the internal CA (the file the same role copies from hdc_pki_dir).
    auth = None
    if extravars.get("hdc_alertmanager_webhook_password"):
        auth = (
            str(
                extravars.get(
                    "hdc_alertmanager_webhook_user", role_default("alertmanager", "hdc_alertmanager_webhook_user")
                )
            ),
            str(
                extravars.get(
                    "hdc_alertmanager_webhook_password_file",
                    role_default("alertmanager", "hdc_alertmanager_webhook_password_file"),
                )
            ),
        )
    ca_file = None
    if extravars.get("hdc_pki_dir"):
        ca_file = str(
            extravars.get("hdc_alertmanager_ca_file", role_default("alertmanager", "hdc_alertmanager_ca_file"))
        )
    files = render_monitoring_files(
        inv.catalog,
        target.parent / "files",
        noc_url=noc,
        webhook_url=str(extravars.get("hdc_alertmanager_webhook_url", f"{noc.rstrip('/')}/api/alertmanager/webhook")),
        rules_path=extravars.get("hdc_monitor_rules_file"),
        notify_path=extravars.get("hdc_monitor_notify_file"),
        webhook_auth=auth,
        webhook_ca_file=ca_file,
    )
    derived = {
        "all": {
            "vars": {
                **derived_group_vars(inv.catalog),
                "hdc_catalog_dir": str(inv.catalog_dir.resolve()),
                **files,
            },
            "hosts": {n: v for n, v in derived_hosts.items() if n in present},
        }
    }
    (target / "20-catalog-vars.yml").write_text(yaml.safe_dump(derived, sort_keys=False), encoding="utf-8")
    return target


def _line(event: Mapping[str, Any]) -> str | None:
    kind = event.get("event", "")
    data = event.get("event_data") or {}
    if kind == "playbook_on_play_start":
        return f"PLAY {data.get('play', '')}"
    if kind not in RESULT_EVENTS:
        return None
    status = RESULT_EVENTS[kind]
    res = data.get("res") or {}
    if status == "ok" and res.get("changed"):
        status = "changed"
    role = f"{data['role']} : " if data.get("role") else ""
    line = f"  {status:<11} {data.get('host', '?'):<24} {role}{data.get('task', '')}"
    if status in ("failed", "unreachable"):
        for part in (res.get("msg"), res.get("stderr"), res.get("module_stderr")):
            text = str(part or "").strip()
            if text:
                line += f"\n{'':14}{' | '.join(text.splitlines()[-3:])[:400]}"
        if data.get("ignore_errors"):
            line += " (ignored)"
    return line


def run_playbook(
    inventory: Inventory,
    playbook: str = "site.yml",
    limit: str | None = None,
    check: bool = False,
    diff: bool = False,
    extravars: Mapping[str, Any] | None = None,
    tags: str | None = None,
    forks: int = 10,
    on_line: Callable[[str], None] | None = print,
    keep_artifacts: Path | None = None,
) -> RunResult:
    """Run `playbook` (relative to playbooks/) on `inventory`; progress goes to `on_line`."""
    try:
        import ansible_runner
    except ImportError:
        raise UserError(
            "Ansible is not installed in this environment: install the configuration extra "
            "(`pip install 'hdc[configure]'`; `make setup` does it on a workstation)"
        ) from None

    if not (PLAYBOOKS_DIR / playbook).is_file():
        raise UserError(f"playbook '{playbook}' not found in {PLAYBOOKS_DIR}")
    private = Path(tempfile.mkdtemp(prefix="hdc-configure-"))
    try:
        inv_dir = write_inventory(inventory, private / "inventory", extravars)
        # The extra variables hold the vault's secrets: in a file only root reads, which
        # ansible-runner passes as `-e @file`; given as a dict it would put them on
        # ansible-playbook's command line (visible to every local user) and in its artifacts.
        (private / "env").mkdir(mode=0o700)
        fd = os.open(private / "env/extravars", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(extravars or {}), fh)
        if limit:
            check_limit(inv_dir, limit)
        cmdline = []
        if check:
            cmdline.append("--check")
        if diff:
            cmdline.append("--diff")
        bindir = str(Path(sys.executable).parent)
        envvars = {
            "ANSIBLE_CONFIG": str(PLAYBOOKS_DIR / "ansible.cfg"),
            "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
            "ANSIBLE_NOCOLOR": "1",
        }

        def handler(event: dict[str, Any]) -> bool:
            if on_line is not None:
                line = _line(event)
                if line is not None:
                    on_line(line)
            return True

        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(PLAYBOOKS_DIR),
            playbook=playbook,
            inventory=str(inv_dir),
            limit=limit,
            tags=tags,
            forks=forks,
            cmdline=" ".join(cmdline) or None,
            envvars=envvars,
            event_handler=handler,
            quiet=True,
            suppress_env_files=True,
        )
        stats = runner.stats or {}
        hosts: dict[str, HostSummary] = {}
        for key, field in (
            ("ok", "ok"),
            ("changed", "changed"),
            ("failures", "failed"),
            ("dark", "unreachable"),
            ("skipped", "skipped"),
            ("rescued", "rescued"),
            ("ignored", "ignored"),
        ):
            for host, count in (stats.get(key) or {}).items():
                setattr(hosts.setdefault(host, HostSummary()), field, int(count))
        rc = int(runner.rc if runner.rc is not None else 1)
        if rc != 0 and on_line is not None and not hosts:
            out = runner.stdout.read() if runner.stdout else ""
            on_line(out.strip()[-2000:])
        artifacts = None
        if keep_artifacts is not None:
            shutil.copytree(private / "artifacts", keep_artifacts, dirs_exist_ok=True)
            artifacts = str(keep_artifacts)
        return RunResult(rc=rc, status=str(runner.status), hosts=hosts, artifacts=artifacts)
    finally:
        shutil.rmtree(private, ignore_errors=True)
