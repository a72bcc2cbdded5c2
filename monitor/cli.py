"""`hdc monitor …` commands: run the poller and exporter, poll once, simulate a network."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from hdc.errors import UserError
from inventory.loader import load_catalog
from inventory.secrets import ensure_secrets, secrets_dir

app = typer.Typer(help="Poll facility links over SNMP and export them to Prometheus.", no_args_is_help=True)


@app.command()
def simulate(
    catalog: str = typer.Option("lab", help="catalog name or path"),
    workdir: Path = typer.Option(Path(".state/monitor-sim"), help="where the simulator keeps its log"),
    create_secrets: bool = typer.Option(
        False, "--create-secrets", help="fill missing file: secrets with random values (lab only)"
    ),
) -> None:
    """Serve one simulated router (snmpsim) per polled facility of the catalog until Ctrl-C."""
    from .simulator import Simulator

    cat = load_catalog(catalog)
    if create_secrets:
        ensure_secrets(cat, secrets_dir())
    if not cat.polled_facilities():
        raise UserError(f"catalog {cat.name}: no facility to simulate (none is connected with a router)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Simulator(cat, workdir) as sim:
        for exp in sim.expected.values():
            state = "silent" if exp.silent else f"in {exp.in_bps / 1e6:.1f} Mb/s out {exp.out_bps / 1e6:.1f} Mb/s"
            typer.echo(f"{exp.facility_id:24} {exp.host}:{exp.port}  v{exp.version}  ifIndex {exp.if_index}  {state}")
        typer.echo(
            f"simulating {len(sim.expected)} routers (snmpsim pid {sim.process.pid if sim.process else '?'}); Ctrl-C stops"
        )
        try:
            while not stop.wait(1.0):
                if sim.process is None or not sim.process.alive():
                    raise UserError(f"snmpsim exited; see {workdir / 'snmpsim.log'}")
        except KeyboardInterrupt:
            pass
