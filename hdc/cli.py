"""The single `hdc` command: one sub-command group per part, meeting only here and in the catalog."""

from __future__ import annotations

import sys

import typer

from archive_service.cli import app as archive_app
from hdc.errors import UserError
from infra.cli import app as infra_app
from inventory.cli import app as catalog_app
from inventory.loader import CatalogError
from monitor.cli import app as monitor_app
from playbooks.cli import configure

app = typer.Typer(
    name="hdc",
    help="hdc — the health data center platform: catalog, monitor, archive, provisioning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(catalog_app, name="catalog")
app.add_typer(monitor_app, name="monitor")
app.add_typer(archive_app, name="archive")
app.add_typer(infra_app, name="infra")
app.command("configure")(configure)


@app.command("run")
def run(
    catalog: str = typer.Option("lab", help="catalog to simulate and poll"),
    archive_port: int = typer.Option(8080, help="archive API port on 127.0.0.1"),
    monitor_port: int = typer.Option(9105, help="monitor (metrics, NOC page) port on 127.0.0.1"),
    interval: float = typer.Option(10.0, help="seconds between polls"),
    seed: bool = typer.Option(True, help="ingest a few sample records into the archive"),
) -> None:
    """Run the platform locally on embedded defaults: simulated network, monitor, NOC page, archive."""
    from hdc.devstack import RunConfig
    from hdc.devstack import run as run_stack

    run_stack(
        RunConfig(catalog=catalog, archive_port=archive_port, monitor_port=monitor_port, interval=interval, seed=seed)
    )


def main() -> None:
    try:
        app(standalone_mode=True)
    except CatalogError as exc:
        print(f"catalog has {len(exc.problems)} problem(s):\n{exc}", file=sys.stderr)
        sys.exit(1)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
