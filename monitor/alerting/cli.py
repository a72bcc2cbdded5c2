"""`hdc monitor alerts|silence|rules …`: operate alerting from a shell.

The commands work on the SQLite state file directly (`--db`, default HDC_ALERTING_DB or
.state/monitor/alerts.db), so they work whether or not the monitor is running: the running
engine reads silences every cycle and never overwrites acknowledgements. Register them with
`register(app)` on the `hdc monitor` Typer app.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hdc.errors import UserError
from inventory.loader import load_catalog
from inventory.secrets import SecretError, resolve
from monitor.notify.config import load_notify_config
from monitor.rules.loader import load_rules

from .silences import check_silence, parse_when
from .store import Store

if TYPE_CHECKING:
    from inventory.model import Catalog
    from monitor.noc.runtime import AlertingSettings
    from monitor.rules.schema import RuleFile

alerts_app = typer.Typer(help="List and acknowledge alerts.", no_args_is_help=True)
silence_app = typer.Typer(help="Silences and maintenance windows (by facility, region or rule).", no_args_is_help=True)
rules_app = typer.Typer(
    help="Check alert rules and routes; export them for Prometheus/Alertmanager.", no_args_is_help=True
)

DbOpt = typer.Option(None, "--db", help="alert state file (default: HDC_ALERTING_DB or .state/monitor/alerts.db)")
RulesOpt = typer.Option(None, "--rules", help="rule file (default: HDC_ALERTING_RULES, else the shipped default.yaml)")
CatalogOpt = typer.Option(None, "--catalog", help="catalog name or path (default: HDC_ALERTING_CATALOG, else lab)")


def fmt_time(ts: float | None) -> str:
    return "—" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _settings() -> AlertingSettings:
    from monitor.noc.runtime import load_alerting_settings

    return load_alerting_settings()


def _catalog(name: str | None) -> Catalog:
    return load_catalog(name or _settings().catalog)


def _rules(path: Path | None) -> RuleFile:
    return load_rules(path or _settings().rules)


def register(app: typer.Typer) -> None:
    """Add `alerts`, `silence` and `rules` to a Typer app (the lead's `hdc monitor`)."""
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(silence_app, name="silence")
    app.add_typer(rules_app, name="rules")


def _db(path: Path | None) -> Store:
    from monitor.noc.runtime import load_alerting_settings

    file = path or load_alerting_settings().db
    if str(file) != ":memory:" and not Path(file).exists():
        raise UserError(f"{file}: no alert state file here (start the monitor first, or pass --db)")
    try:
        return Store(file)
    except Exception as exc:
        raise UserError(f"{file}: cannot open the alert state file: {exc}") from None


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@alerts_app.command("list")
def list_alerts(
    db: Path | None = DbOpt,
    all_: bool = typer.Option(False, "--all", help="include resolved alerts"),
    region: str | None = typer.Option(None, help="only this region"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Open alerts (pending, firing, suppressed), newest first."""
    store = _db(db)
    try:
        rows = [a for a in store.alerts(include_resolved=all_) if region is None or a.region == region]
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([a.as_dict() for a in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no alerts")
        return
    for a in rows:
        flags = []
        if a.suppressed_by:
            flags.append(f"behind {a.suppressed_by}")
        if a.silenced_by:
            flags.append(f"silenced #{a.silenced_by}")
        if a.ack_by:
            flags.append(f"ack {a.ack_by}")
        typer.echo(
            f"#{a.id:<5} {a.state:<10} {a.severity:<8} {a.rule:<22} {a.facility:<24} {a.region:<12} "
            f"since {fmt_time(a.active_since)}  {a.value_text}" + (f"  [{', '.join(flags)}]" if flags else "")
        )


@alerts_app.command("ack")
def ack(
    alert_id: int = typer.Argument(..., help="alert number (see `alerts list`)"),
    by: str = typer.Option(..., "--by", help="who takes it"),
    comment: str = typer.Option("", help="what is being done"),
    db: Path | None = DbOpt,
) -> None:
    """Acknowledge an open alert: shown on the NOC page, kept until the alert resolves."""
    if not by.strip():
        raise UserError("--by must name who acknowledges")
    store = _db(db)
    try:
        alert = store.acknowledge(alert_id, by.strip(), comment, time.time())
    finally:
        store.close()
    if alert is None:
        raise UserError(f"alert #{alert_id}: no such open alert (see `hdc monitor alerts list`)")
    typer.echo(f"alert #{alert.id} ({alert.rule} {alert.facility}) acknowledged by {alert.ack_by}")


@alerts_app.command("outbox")
def outbox(
    db: Path | None = DbOpt,
    requeue_dead: bool = typer.Option(False, "--requeue-dead", help="send messages that were given up again"),
) -> None:
    """Notifications waiting or given up (with the last error), and a way to send the dead ones again."""
    store = _db(db)
    try:
        if requeue_dead:
            with store.tx() as conn:
                n = conn.execute(
                    "UPDATE outbox SET status = 'pending', next_attempt_at = ?, created_at = ? WHERE status = 'dead'",
                    (time.time(), time.time()),
                ).rowcount
            typer.echo(f"{n} message(s) queued again")
        counts = store.counts()
        rows = store.db.execute(
            "SELECT idem_key, route, status, attempts, next_attempt_at, last_error, title FROM outbox"
            " WHERE status != 'sent' ORDER BY id"
        ).fetchall()
    finally:
        store.close()
    typer.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "outbox empty")
    for r in rows:
        typer.echo(
            f"{r['idem_key']:<24} {r['route']:<16} {r['status']:<8} attempts {r['attempts']:<3} "
            f"next {fmt_time(r['next_attempt_at'])}  {r['title']}\n    last error: {r['last_error'] or '-'}"
        )


@silence_app.command("add")
def silence_add(
    reason: str = typer.Option(..., help="why (read by the next shift)"),
    by: str = typer.Option(..., "--by", help="who sets it"),
    facility: str | None = typer.Option(None, help="facility id"),
    region: str | None = typer.Option(None, help="region id"),
    rule: str | None = typer.Option(None, help="rule id"),
    start: str = typer.Option("now", help="now, +2h, unix time or ISO time (a later start = maintenance window)"),
    end: str | None = typer.Option(None, help="+4h, unix time or ISO time"),
    duration: str | None = typer.Option(None, help="e.g. 4h (instead of --end)"),
    catalog: str = CatalogOpt,
    rules: Path | None = RulesOpt,
    db: Path | None = DbOpt,
) -> None:
    """Silence matching alerts until an end time; at least one of facility, region, rule."""
    now = time.time()
    starts = parse_when(start, now, "--start")
    if (end is None) == (duration is None):
        raise UserError("give exactly one of --end or --duration")
    ends = (
        parse_when(end, now, "--end") if end is not None else starts + (parse_when(duration or "", 0.0, "--duration"))
    )
    check_silence(
        _catalog(catalog), _rules(rules), facility=facility, region=region, rule=rule, starts_at=starts,
        ends_at=ends, reason=reason, created_by=by, now=now,
    )  # fmt: skip
    store = _db(db)
    try:
        s = store.add_silence(
            facility=facility, region=region, rule=rule, starts_at=starts, ends_at=ends, reason=reason.strip(),
            created_by=by.strip(), now=now,
        )  # fmt: skip
    finally:
        store.close()
    typer.echo(f"silence #{s.id}: {fmt_time(s.starts_at)} → {fmt_time(s.ends_at)}")


@silence_app.command("list")
def silence_list(
    db: Path | None = DbOpt, all_: bool = typer.Option(False, "--all", help="include expired silences")
) -> None:
    store = _db(db)
    try:
        rows = store.silences(time.time(), include_expired=all_)
    finally:
        store.close()
    if not rows:
        typer.echo("no silences")
    for s in rows:
        what = " ".join(f"{k}={v}" for k, v in (("facility", s.facility), ("region", s.region), ("rule", s.rule)) if v)
        gone = " (expired)" if s.expired_at else ""
        typer.echo(
            f"#{s.id:<4} {what:<50} {fmt_time(s.starts_at)} → {fmt_time(s.ends_at)}{gone}  {s.created_by}: {s.reason}"
        )


@silence_app.command("expire")
def silence_expire(silence_id: int = typer.Argument(...), db: Path | None = DbOpt) -> None:
    """End a silence now."""
    store = _db(db)
    try:
        s = store.expire_silence(silence_id, time.time())
    finally:
        store.close()
    if s is None:
        raise UserError(f"silence #{silence_id}: no such active silence")
    typer.echo(f"silence #{s.id} expired")


@rules_app.command("check")
def rules_check(
    rules: Path | None = RulesOpt,
    routes: Path | None = typer.Option(None, "--routes", help="notification routing file"),
    resolve_secrets: bool = typer.Option(False, "--resolve", help="also resolve every Apprise URL reference"),
) -> None:
    """Validate the rule file (and the routing file): every problem with its line and field."""
    rf = _rules(rules)
    typer.echo(
        f"{rules or _settings().rules or 'default rules'}: {len(rf.rules)} rules OK ({', '.join(r.id for r in rf.rules)})"
    )
    if routes is not None:
        cfg = load_notify_config(routes)
        problems = []
        if resolve_secrets:
            import apprise

            for route in cfg.routes:
                for i, ref in enumerate(route.urls):
                    try:
                        url = resolve(ref)
                    except SecretError as exc:
                        problems.append(f"{routes}: route {route.name} urls[{i}]: {exc}")
                        continue
                    if not apprise.Apprise().add(url):
                        problems.append(f"{routes}: route {route.name} urls[{i}] ({ref}): not an Apprise URL")
        if problems:
            raise UserError("\n".join(problems))
        typer.echo(f"{routes}: {len(cfg.routes)} routes OK")


@rules_app.command("export-prometheus")
def export_prometheus(
    rules: Path | None = RulesOpt,
    catalog: str | None = CatalogOpt,
    topology: bool = typer.Option(True, help="join the aggregation site of each facility (inhibition)"),
    noc_url: str = typer.Option("http://127.0.0.1:9110", help="base URL for runbook links"),
    output: Path | None = typer.Option(None, "-o", "--output", help="file to write (default: stdout)"),
) -> None:
    """Prometheus alerting rules equivalent to the rule file (check with `promtool check rules`)."""
    from .promexport import dump, prometheus_rules

    cat = _catalog(catalog) if topology else None
    _write(dump(prometheus_rules(_rules(rules), cat, noc_url)), output)


@rules_app.command("export-alertmanager")
def export_alertmanager(
    routes: Path = typer.Option(..., "--routes", help="notification routing file"),
    webhook_url: str | None = typer.Option(
        None, help="where the receivers post (default: the monitor's relay, {noc_url}/api/alertmanager/webhook)"
    ),
    webhook_user: str | None = typer.Option(
        None, help="the monitor's operator with role webhook (when the monitor has an operators file)"
    ),
    webhook_password_file: str | None = typer.Option(
        None, help="path, on the Alertmanager host, of the file holding that operator's password"
    ),
    webhook_ca_file: str | None = typer.Option(
        None, help="path, on the Alertmanager host, of the CA that signed an https:// monitor's certificate"
    ),
    rules: Path | None = RulesOpt,
    output: Path | None = typer.Option(None, "-o", "--output", help="file to write (default: stdout)"),
) -> None:
    """Alertmanager routing (severity, region), grouping and topology inhibition from the same files."""
    from .promexport import alertmanager_config, dump

    cfg = load_notify_config(routes)
    url = webhook_url or f"{cfg.noc_url.rstrip('/')}/api/alertmanager/webhook"
    if not url.startswith(("http://", "https://")):
        raise UserError("--webhook-url must be an http(s):// URL")
    if (webhook_user is None) != (webhook_password_file is None):
        raise UserError("--webhook-user and --webhook-password-file go together")
    auth = None
    if webhook_user and webhook_password_file:
        if not webhook_password_file.startswith("/"):
            raise UserError("--webhook-password-file must be an absolute path on the Alertmanager host")
        auth = (webhook_user, webhook_password_file)
    if webhook_ca_file is not None:
        if not webhook_ca_file.startswith("/"):
            raise UserError("--webhook-ca-file must be an absolute path on the Alertmanager host")
        if not url.startswith("https://"):
            raise UserError("--webhook-ca-file needs an https:// webhook URL")
    _write(dump(alertmanager_config(_rules(rules), cfg, url, auth, webhook_ca_file)), output)
