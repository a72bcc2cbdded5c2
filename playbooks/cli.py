"""`hdc configure`: converge hosts with the playbooks, through ansible-runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from hdc.errors import UserError

from .runner import Inventory, RunResult, inventory_from_catalog, inventory_from_file, run_playbook


def parse_extra_vars(items: list[str]) -> dict[str, Any]:
    """`key=value`, a JSON/YAML mapping, or `@file.yml`, as ansible-playbook's -e accepts."""
    out: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:])
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise UserError(f"--extra-vars {item}: cannot read {path}: {exc.strerror}") from None
            except yaml.YAMLError as exc:
                raise UserError(f"--extra-vars {item}: not valid YAML: {exc}") from None
            if not isinstance(loaded, dict):
                raise UserError(f"--extra-vars {item}: the file must hold a mapping of variables")
            out.update(loaded)
        elif item.lstrip().startswith("{"):
            try:
                loaded = json.loads(item)
            except json.JSONDecodeError as exc:
                raise UserError(f"--extra-vars: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(loaded, dict):
                raise UserError("--extra-vars: JSON must be an object")
            out.update(loaded)
        else:
            key, sep, value = item.partition("=")
            if not sep or not key.strip().isidentifier():
                raise UserError(f"--extra-vars '{item}': expected key=value, a JSON object or @file.yml")
            out[key.strip()] = value
    return out


def load_addresses(path: Path | None) -> dict[str, str] | None:
    """Host name -> address, e.g. provisioning outputs (`pulumi stack output --json`)."""
    if path is None:
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"--addresses {path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"--addresses {path}: not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UserError(f"--addresses {path}: expected a mapping of host name to address")
    return {str(k): v for k, v in data.items()}


def summary_table(result: RunResult) -> Table:
    table = Table(title="hdc configure: per-host summary")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for host, s in sorted(result.hosts.items()):
        style = "red" if s.failed or s.unreachable else ("yellow" if s.changed else "green")
        table.add_row(host, str(s.ok), str(s.changed), str(s.failed), str(s.unreachable), str(s.skipped), style=style)
    return table


def configure(
    inventory: Annotated[
        Path | None, typer.Option("--inventory", "-i", help="inventory rendered by `hdc catalog inventory`")
    ] = None,
    catalog: Annotated[
        str | None, typer.Option("--catalog", "-c", help="catalog name or path (renders the inventory)")
    ] = None,
    addresses: Annotated[Path | None, typer.Option(help="YAML/JSON map host -> address (provisioning outputs)")] = None,
    limit: Annotated[str | None, typer.Option("--limit", "-l", help="Ansible host pattern")] = None,
    check: Annotated[bool, typer.Option("--check", help="dry run: report what would change")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="show file differences")] = False,
    extra_vars: Annotated[
        list[str] | None, typer.Option("--extra-vars", "-e", help="key=value, JSON, or @file.yml; repeatable")
    ] = None,
    playbook: Annotated[str, typer.Option(help="playbook under playbooks/")] = "site.yml",
    tags: Annotated[str | None, typer.Option(help="only tasks with these tags (comma-separated)")] = None,
    forks: Annotated[int, typer.Option(min=1, max=200, help="hosts configured in parallel")] = 10,
) -> None:
    """Converge the data center's hosts with Ansible (site.yml), from the catalog's inventory."""
    if inventory is None and catalog is None:
        raise UserError("give --inventory FILE (from `hdc catalog inventory`) or --catalog NAME")
    if inventory is not None and addresses is not None:
        raise UserError("--addresses applies to --catalog; an --inventory file already holds the addresses")
    inv: Inventory = (
        inventory_from_file(inventory, catalog)
        if inventory is not None
        else inventory_from_catalog(catalog or "", load_addresses(addresses))
    )
    console = Console(highlight=False)
    mode = " (check mode)" if check else ""
    console.print(f"hdc configure: {playbook} on {len(inv.host_names())} host(s) of catalog '{inv.catalog.name}'{mode}")
    result = run_playbook(
        inv,
        playbook=playbook,
        limit=limit,
        check=check,
        diff=diff,
        extravars=parse_extra_vars(extra_vars or []),
        tags=tags,
        forks=forks,
        on_line=lambda line: console.print(line, markup=False),
    )
    console.print(summary_table(result))
    if not result.succeeded:
        console.print(f"[red]failed[/red]: ansible-playbook exited {result.rc} ({result.status})")
        raise typer.Exit(code=result.rc or 1)
    console.print(f"done: {result.changed} change(s)")
