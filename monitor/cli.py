"""`hdc monitor …` commands: run the poller and exporter, poll once, simulate a network."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from hdc.errors import UserError
from inventory.loader import load_catalog
from inventory.secrets import ensure_secrets, secrets_dir
from monitor.alerting.cli import register as register_alerting_commands
from monitor.noc.cli import operators_app
from monitor.state import LinkState

app = typer.Typer(help="Poll facility links over SNMP and export them to Prometheus.", no_args_is_help=True)
register_alerting_commands(app)  # `hdc monitor alerts|silence|rules …`
app.add_typer(operators_app, name="operators")


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


def _setup_logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _targets(catalog: str, shard: str | None):  # type: ignore[no-untyped-def]
    from .targets import Shard, targets_from_catalog

    cat = load_catalog(catalog)
    sh = Shard.parse(shard) if shard else Shard(0, 1)
    targets = targets_from_catalog(cat, sh)
    if not targets:
        raise UserError(f"catalog {cat.name}, shard {sh}: no connected facility to poll")
    return targets, sh


@app.command()
def run(
    catalog: str = typer.Option("lab", help="catalog name or path"),
    shard: str | None = typer.Option(None, help="i/N: poll only this instance's share of the catalog"),
    listen: str = typer.Option("127.0.0.1:9105", help="HOST:PORT for /metrics and /healthz"),
    interval: float | None = typer.Option(None, help="seconds between polls (HDC_MONITOR_INTERVAL)"),
    timeout: float | None = typer.Option(None, help="seconds to wait for an answer (HDC_MONITOR_TIMEOUT)"),
    retries: int | None = typer.Option(None, help="retries after a timeout (HDC_MONITOR_RETRIES)"),
    concurrency: int | None = typer.Option(None, help="requests in flight (HDC_MONITOR_CONCURRENCY)"),
    alerts: bool = typer.Option(True, help="evaluate alert rules, notify, and serve the NOC page and alert API"),
    rules: Path | None = typer.Option(None, help="alert rule file (HDC_ALERTING_RULES; default: the shipped rules)"),
    routes: Path | None = typer.Option(None, help="notification routing file (HDC_ALERTING_ROUTES; none: no sending)"),
    operators: Path | None = typer.Option(
        None, help="operators file: the NOC page and alert API need HTTP Basic (HDC_ALERTING_OPERATORS)"
    ),
    tls_cert: Path | None = typer.Option(None, help="serve HTTPS with this certificate (PEM, chain included)"),
    tls_key: Path | None = typer.Option(None, help="private key of --tls-cert (PEM)"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Poll the catalog's facility links forever; serve metrics, the NOC page (/noc) and the alert API."""
    import asyncio

    from .service import MonitorService, parse_listen
    from .settings import load_settings

    host, port = parse_listen(listen)
    tls = _tls_files(tls_cert, tls_key)
    scheme = "https" if tls else "http"
    settings = load_settings(interval=interval, timeout=timeout, retries=retries, concurrency=concurrency)
    targets, sh = _targets(catalog, shard)
    _setup_logging(verbose)
    service = MonitorService(targets, settings, shard=str(sh))
    typer.echo(
        f"polling {len(targets)} links (shard {sh}) every {settings.interval:g} s; "
        f"metrics on {scheme}://{host}:{port}/metrics",
        err=True,
    )
    alerting = None
    if alerts:
        from fastapi.responses import RedirectResponse

        from .noc import attach, load_alerting_settings

        settings_ = load_alerting_settings(catalog=catalog, rules=rules, routes=routes, operators=operators)
        alerting = attach(service, settings_)
        service.app.add_api_route("/", lambda: RedirectResponse("/noc"), methods=["GET"], include_in_schema=False)
        typer.echo(f"NOC page on {scheme}://{host}:{port}/noc", err=True)
        if not _is_loopback(host):
            if settings_.operators is None:
                typer.echo("WARNING: no operators file: anyone who reaches this port can silence alerts", err=True)
            if tls is None:
                typer.echo("WARNING: plain HTTP on a network address: give --tls-cert and --tls-key", err=True)

    async def serve() -> None:
        try:
            await service.serve(host, port, tls=tls)
        finally:
            if alerting is not None:
                await alerting.stop()

    asyncio.run(serve())


def _tls_files(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UserError("--tls-cert and --tls-key go together")
    for opt, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise UserError(f"{opt}: {path}: no such file")
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise UserError(
            f"--tls-cert/--tls-key: {cert} and {key} are not a matching PEM certificate and key ({exc})"
        ) from None
    return cert, key


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@app.command("poll-once")
def poll_once(
    catalog: str = typer.Option("lab", help="catalog name or path"),
    shard: str | None = typer.Option(None, help="i/N: poll only this instance's share of the catalog"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    gap: float = typer.Option(2.0, help="seconds between the two polls that give rates (0: one poll, no rates)"),
    timeout: float | None = typer.Option(None, help="seconds to wait for an answer (HDC_MONITOR_TIMEOUT)"),
    retries: int | None = typer.Option(None, help="retries after a timeout (HDC_MONITOR_RETRIES)"),
) -> None:
    """Poll every link once (twice, `gap` apart, to show rates) and print what was found."""
    import asyncio
    import dataclasses
    import json
    import logging

    from .poller import Poller
    from .settings import load_settings

    settings = load_settings(timeout=timeout, retries=retries)
    if gap < 0:
        raise UserError("--gap must be >= 0")
    targets, _ = _targets(catalog, shard)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    async def go() -> dict[str, LinkState]:
        poller = Poller(targets, settings)
        try:
            snap = await poller.run_cycle()
            if gap > 0:
                await asyncio.sleep(gap)
                for rt in poller.runtimes.values():
                    rt.next_due = 0.0  # poll everything again, back-off or not
                snap = await poller.run_cycle()
            return dict(snap)
        finally:
            poller.close()

    snap = asyncio.run(go())
    if as_json:
        out = {fid: {**dataclasses.asdict(st), "link_up": st.link_up} for fid, st in snap.items()}
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("facility", "state", "in Mb/s", "out Mb/s", "util", "err/s in/out", "interface", "problem")

    def mb(v: float | None) -> str:
        return "-" if v is None else f"{v / 1e6:.2f}"

    for fid, st in snap.items():
        state = "UP" if st.link_up else ("unreachable" if not st.reachable else str(st.oper_status))
        errs = "-" if st.in_errors_per_s is None else f"{st.in_errors_per_s:.1f}/{st.out_errors_per_s or 0:.1f}"
        util = "-" if st.utilisation is None else f"{st.utilisation:.0%}"
        table.add_row(fid, state, mb(st.in_bps), mb(st.out_bps), util, errs, st.if_name or "-", st.reason or "")
    console = Console()
    console.print(table)
    for fid, st in snap.items():
        if st.error:
            console.print(f"{fid}: {st.error}", markup=False, highlight=False)
