"""`hdc monitor alerts|silence|rules` on a state file, and the operator errors they give."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from hdc.errors import UserError
from inventory.loader import load_catalog
from monitor.alerting import AlertEngine, Store
from monitor.alerting.cli import register
from monitor.rules import load_rules
from tests.alerting.helpers import down, up

app = typer.Typer()
register(app)
runner = CliRunner()
LAB = load_catalog("lab")
T0 = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "alerts.db"
    store = Store(path)
    snap = {f.id: up(f.id, T0) for f in LAB.polled_facilities()} | {"hu-sfax": down("hu-sfax", T0)}
    AlertEngine(LAB, load_rules(), store).evaluate(snap, T0)
    store.close()
    return path


def run(*args: str) -> tuple[int, str, BaseException | None]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.output, r.exception if not isinstance(r.exception, SystemExit) else None


def test_list_ack_and_silences(db: Path) -> None:
    code, out, _ = run("alerts", "list", "--db", str(db))
    assert code == 0 and "firing" in out and "link-down" in out and "hu-sfax" in out
    alert_id = out.split()[0].lstrip("#")
    code, out, _ = run("alerts", "ack", alert_id, "--by", "Amel", "--comment", "ticket 42", "--db", str(db))
    assert code == 0 and "acknowledged by Amel" in out
    assert "ack Amel" in run("alerts", "list", "--db", str(db))[1]
    code, out, _ = run(
        "silence", "add", "--region", "sfax", "--duration", "2h", "--reason", "maintenance", "--by", "Amel",
        "--db", str(db),
    )  # fmt: skip
    assert code == 0 and out.startswith("silence #1")
    assert "region=sfax" in run("silence", "list", "--db", str(db))[1]
    assert run("silence", "expire", "1", "--db", str(db))[0] == 0
    assert run("silence", "list", "--db", str(db))[1].strip() == "no silences"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alerts", "ack", "999", "--by", "x"], "alert #999: no such open alert"),
        (["silence", "add", "--reason", "r", "--by", "x", "--duration", "1h"], "at least one of facility"),
        (["silence", "add", "--facility", "nowhere", "--reason", "r", "--by", "x", "--duration", "1h"],
         "facility 'nowhere' is not in the catalog"),
        (["silence", "add", "--rule", "link-down", "--reason", "r", "--by", "x", "--end", "yesterday"],
         "--end: 'yesterday' is not a time"),
        (["silence", "add", "--rule", "link-down", "--reason", "r", "--by", "x"], "exactly one of --end or --duration"),
        (["silence", "expire", "77"], "silence #77: no such active silence"),
    ],
)  # fmt: skip
def test_operator_errors(db: Path, args: list[str], message: str) -> None:
    _, _, exc = run(*args, "--db", str(db))
    assert isinstance(exc, UserError) and message in str(exc), exc


def test_outbox_shows_and_requeues_dead_messages(db: Path) -> None:
    store = Store(db)
    with store.tx() as conn:
        conn.execute(
            "INSERT INTO outbox (idem_key, group_id, route, url_ref, language, title, body, status, attempts,"
            " next_attempt_at, last_error, created_at) VALUES ('g9-noc-0', 9, 'noc', 'env:X', 'fr', 'T', 'B', 'dead',"
            " 40, 0, 'connection refused', 0)"
        )
    store.close()
    code, out, _ = run("alerts", "outbox", "--db", str(db))
    assert code == 0 and "dead: 1" in out and "connection refused" in out
    code, out, _ = run("alerts", "outbox", "--requeue-dead", "--db", str(db))
    assert "1 message(s) queued again" in out and "pending: 1" in out


def test_missing_state_file(tmp_path: Path) -> None:
    _, _, exc = run("alerts", "list", "--db", str(tmp_path / "none.db"))
    assert isinstance(exc, UserError) and "no alert state file" in str(exc)


def test_rules_check_reports_line_and_field(tmp_path: Path) -> None:
    assert "5 rules OK" in run("rules", "check")[1]
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - id: slow\n    kind: utilisation\n    severity: warning\n    for: ten minutes\n"
        "    above: 0.8\n    resolve_below: 0.9\n    runbook: runbooks/alerts/link-saturated.md\n"
        "    title: {fr: a, ar: ب, en: c}\n  - id: x\n    kind: unreachable\n    severity: loud\n"
        "    runbook: runbooks/alerts/nope.md\n    title: {fr: a, ar: ب, en: c}\n",
        encoding="utf-8",
    )
    _, _, exc = run("rules", "check", "--rules", str(bad))
    text = str(exc)
    assert isinstance(exc, UserError)
    assert "rules.yaml:6: rules[0].for: must be a duration" in text
    assert "rules.yaml:13: rules[1].severity" in text


def test_exports_validate_with_promtool_and_amtool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules_out = tmp_path / "rules.yml"
    assert run("rules", "export-prometheus", "--catalog", "lab", "-o", str(rules_out))[0] == 0
    assert subprocess.run(["promtool", "check", "rules", str(rules_out)], capture_output=True).returncode == 0
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - name: noc\n    urls: [env:HDC_X]\n", encoding="utf-8")
    am = tmp_path / "am.yml"
    assert run("rules", "export-alertmanager", "--routes", str(routes), "--webhook-url", "http://127.0.0.1:1/h",
               "-o", str(am))[0] == 0  # fmt: skip
    assert subprocess.run(["amtool", "check-config", str(am)], capture_output=True).returncode == 0
    # with the monitor's relay account: Basic auth whose password Alertmanager reads from a file
    (tmp_path / "relay.pw").write_text("relay-password-1234\n", encoding="utf-8")
    assert run("rules", "export-alertmanager", "--routes", str(routes), "--webhook-user", "am",
               "--webhook-password-file", str(tmp_path / "relay.pw"), "-o", str(am))[0] == 0  # fmt: skip
    hook = yaml.safe_load(am.read_text())["receivers"][1]["webhook_configs"][0]
    assert hook["http_config"] == {"basic_auth": {"username": "am", "password_file": str(tmp_path / "relay.pw")}}
    assert "relay-password" not in am.read_text()
    checked = subprocess.run(["amtool", "check-config", str(am)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    _, _, exc = run("rules", "export-alertmanager", "--routes", str(routes), "--webhook-user", "am")
    assert isinstance(exc, UserError) and "go together" in str(exc)
    # an HTTPS monitor signed by the internal CA: every receiver gets its own tls_config (no YAML aliases)
    two = tmp_path / "two-routes.yaml"
    two.write_text("routes:\n  - name: noc\n    urls: [env:HDC_X]\n  - name: south\n    urls: [env:HDC_X]\n"
                   "    regions: [sud]\n", encoding="utf-8")  # fmt: skip
    (tmp_path / "ca.crt").write_text("not read by amtool check-config\n", encoding="utf-8")
    assert run("rules", "export-alertmanager", "--routes", str(two), "--webhook-url", "https://noc.example:8443/h",
               "--webhook-ca-file", str(tmp_path / "ca.crt"), "-o", str(am))[0] == 0  # fmt: skip
    text = am.read_text()
    hooks = [r["webhook_configs"][0] for r in yaml.safe_load(text)["receivers"][1:]]
    assert [h["http_config"] for h in hooks] == [{"tls_config": {"ca_file": str(tmp_path / "ca.crt")}}] * 2
    assert "&id" not in text and "*id" not in text
    checked = subprocess.run(["amtool", "check-config", str(am)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    _, _, exc = run("rules", "export-alertmanager", "--routes", str(routes), "--webhook-url", "http://noc.example/h",
                    "--webhook-ca-file", "/etc/ca.crt")  # fmt: skip
    assert isinstance(exc, UserError) and "needs an https:// webhook URL" in str(exc)
    monkeypatch.setenv("HDC_X", "mailto://127.0.0.1:25?from=noc@example.org&to=oncall@example.org")
    assert "1 routes OK" in run("rules", "check", "--routes", str(routes), "--resolve")[1]
    monkeypatch.setenv("HDC_X", "nonsense")
    _, _, exc = run("rules", "check", "--routes", str(routes), "--resolve")
    assert isinstance(exc, UserError) and "not an Apprise URL" in str(exc) and "nonsense" not in str(exc)
