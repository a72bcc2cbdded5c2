"""`hdc infra …`: plan from the catalog alone; preview, up and destroy through the Pulumi engine."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from hdc.errors import UserError
from inventory.loader import load_catalog

from .buckets import DEFAULT_RETENTION_DAYS
from .capacity import build_plan, render_plan, render_rules

app = typer.Typer(help="Provision the private cloud from the catalog (Pulumi).", no_args_is_help=True)


@app.command("plan")
def plan(
    catalog: str = typer.Option("lab", "--catalog", "-c", help="catalog name (lab, tunisia) or path"),
    environment: str | None = typer.Option(
        None, "--environment", "-e", help="stack environment in resource names (default: the catalog's name)"
    ),
    records_bucket: str | None = typer.Option(
        None, "--records-bucket", help="hdc:archiveBucketRecords (default hdc-<environment>-archive-records)"
    ),
    audit_bucket: str | None = typer.Option(
        None, "--audit-bucket", help="hdc:archiveBucketAudit (default hdc-<environment>-archive-audit)"
    ),
    retention_days: int = typer.Option(
        DEFAULT_RETENTION_DAYS, "--retention-days", min=1, help="hdc:archiveDefaultRetentionDays"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
    rules: bool = typer.Option(False, "--rules", help="also list every firewall rule, per security group"),
) -> None:
    """What the program would build per zone and platform, and whether it fits the clusters and pools."""
    result = build_plan(load_catalog(catalog), environment, records_bucket, audit_bucket, retention_days)
    if as_json:
        data = {
            "catalog": result.catalog,
            "fits": result.fits,
            "problems": result.problems,
            "warnings": result.warnings,
            "zones": [asdict(z) for z in result.zones],
            "platforms": [asdict(p) for p in result.platforms],
            "clusters": [
                {
                    "id": c.cluster.id,
                    "vcpu": c.vcpu,
                    "vcpu_capacity": c.vcpu_capacity,
                    "ram_gb": c.ram_gb,
                    "ram_capacity_gb": c.ram_capacity,
                    "local_boot_disk_gb": c.disk_gb,
                    "instances": c.instances,
                }
                for c in result.clusters
            ],
            "pools": [
                {
                    "id": p.pool.id,
                    "volumes": p.volumes,
                    "boot_volumes": p.boot_volumes,
                    "gb": p.gb,
                    "capacity_gb": p.pool.capacity_gb,
                }
                for p in result.pools
            ],
            "buckets": [asdict(b) for b in result.buckets],
            "rules": len(result.rules),
        }
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(render_plan(result))
        if rules:
            typer.echo("")
            typer.echo(render_rules(result.rules))
    if not result.fits:
        raise UserError(f"catalog '{result.catalog}' does not fit the data center: " + "; ".join(result.problems))


def _engine(action: str, stack: str, yes: bool, policy: bool, refresh: bool) -> None:
    from .automation import require_pulumi_cli, run, stack_config_file

    require_pulumi_cli()
    stack_config_file(stack)
    if action in {"up", "destroy"} and not yes:
        typer.confirm(f"run `pulumi {action}` on stack '{stack}'?", abort=True)
    summary = run(action, stack, typer.echo, policy=policy, refresh=refresh)  # type: ignore[arg-type]
    typer.echo(summary)


STACK = typer.Option(..., "--stack", "-s", help="stack name: lab, prod, … (infra/Pulumi.<stack>.yaml)")


@app.command("preview")
def preview(
    stack: str = STACK,
    policy: bool = typer.Option(True, help="run the health-data policy pack (infra/policy)"),
    refresh: bool = typer.Option(False, help="refresh state from the cloud first"),
) -> None:
    """Show what `up` would change, checked by the policy pack."""
    _engine("preview", stack, True, policy, refresh)


@app.command("up")
def up(
    stack: str = STACK,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    policy: bool = typer.Option(True, help="run the health-data policy pack (infra/policy)"),
    refresh: bool = typer.Option(False, help="refresh state from the cloud first"),
) -> None:
    """Create or update the stack's resources."""
    _engine("up", stack, yes, policy, refresh)


@app.command("destroy")
def destroy(
    stack: str = STACK,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    refresh: bool = typer.Option(False, help="refresh state from the cloud first"),
) -> None:
    """Delete the stack's resources; archive buckets are retained, protected data volumes refuse."""
    _engine("destroy", stack, yes, False, refresh)


@app.command("inventory")
def inventory(
    stack: str = STACK,
    output: str | None = typer.Option(None, "--output", "-o", help="write to this file instead of stdout"),
) -> None:
    """The Ansible inventory with the addresses the stack's hosts really have."""
    from pathlib import Path

    from .automation import stack_catalog, stack_outputs
    from .inventory_out import inventory_from_outputs
    from .settings import INFRA_DIR

    outputs = stack_outputs(stack)
    catalog = stack_catalog(stack)
    path = INFRA_DIR / catalog if (INFRA_DIR / catalog).exists() else catalog
    text = inventory_from_outputs(load_catalog(path), outputs)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text, nl=False)
