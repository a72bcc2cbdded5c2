"""Who may see and act: operators file, HTTP Basic with roles, HTTPS, on a real `hdc monitor run`."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect
from typer.testing import CliRunner

from hdc.cli import app
from hdc.errors import UserError
from hdc.procs import ManagedProcess, free_port, wait_until
from monitor.noc.access import hash_password, load_operators, verify_password

from ..selfsigned import self_signed
from .test_page import browser  # noqa: F401  (the module's Chromium fixture)

runner = CliRunner()
PASSWORDS = {"amel": "amel-correct-horse-1", "karim": "karim-battery-staple", "am": "alertmanager-relay-pw"}


def add(file: Path, name: str, role: str, password: str) -> None:
    result = runner.invoke(
        app, ["monitor", "operators", "add", name, "--role", role, "--password-stdin", "--file", str(file)],
        input=password + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output


# --- passwords and the operators file ---------------------------------------------------------


def test_password_hash_round_trip_and_refusals() -> None:
    stored = hash_password("a-long-enough-password")
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("a-long-enough-password", stored)
    assert not verify_password("a-long-enough-passwore", stored)
    assert hash_password("a-long-enough-password") != stored  # salted
    with pytest.raises(UserError, match="at least 12"):
        hash_password("short")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("operators: [\n  {name: a\n", ":3: not valid YAML"),
        ("operators:\n  - {name: amel, role: operator, password: 'plain'}\n", "operators.0.password: Value error, not a password hash"),
        ("operators:\n  - {name: amel, role: boss, password: 'scrypt$1024$8$1$AA==$AAAAAAAAAAAAAAAAAAAAAAAA'}\n", "operators.0.role"),
        ("operators:\n  - {name: 'a b', role: viewer, password: 'scrypt$1024$8$1$AA==$AAAAAAAAAAAAAAAAAAAAAAAA'}\n", "operators.0.name"),
        ("operators:\n  - {name: a, role: viewer, password: 'scrypt$3$8$1$AA==$AAAAAAAAAAAAAAAAAAAAAAAA'}\n", "scrypt parameters out of range"),
        ("operators: []\nadmins: []\n", "admins: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_operators_file_names_the_line_or_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "operators.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_operators(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_operators_cli_add_update_list_remove(tmp_path: Path) -> None:
    file = tmp_path / "ops" / "operators.yaml"
    add(file, "amel", "operator", PASSWORDS["amel"])
    add(file, "karim", "viewer", PASSWORDS["karim"])
    assert file.stat().st_mode & 0o777 == 0o600
    assert PASSWORDS["amel"] not in file.read_text()
    add(file, "karim", "operator", "a-new-password-for-karim")
    listed = runner.invoke(app, ["monitor", "operators", "list", "--file", str(file)])
    assert listed.exit_code == 0 and listed.output.split() == ["amel", "operator", "karim", "operator"]
    ops = {o.name: o for o in load_operators(file).operators}
    assert verify_password("a-new-password-for-karim", ops["karim"].password)
    assert runner.invoke(app, ["monitor", "operators", "remove", "karim", "--file", str(file)]).exit_code == 0
    assert [o.name for o in load_operators(file).operators] == ["amel"]


def test_operators_cli_hash_and_verify() -> None:
    """`hash` prints only the hash (for a vault); `--verify` answers by exit code, printing nothing."""
    made = runner.invoke(app, ["monitor", "operators", "hash", "--password-stdin"], input="vault-kept-password\n")
    assert made.exit_code == 0, made.output
    stored = made.output.strip()
    assert made.output == stored + "\n" and verify_password("vault-kept-password", stored)
    cmd = ["monitor", "operators", "hash", "--password-stdin", "--verify", stored]
    same = runner.invoke(app, cmd, input="vault-kept-password\n")
    assert (same.exit_code, same.output) == (0, "")
    other = runner.invoke(app, cmd, input="another-password-12\n")
    assert (other.exit_code, other.output) == (1, "")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["hash"], "short\n", "password: at least 12 characters"),
        (["hash", "--verify", "scrypt$1$2"], "long-enough-password\n", "--verify: not a password hash"),
        (["add", "x y"], "long-enough-password\n", "'x y': name: String should match pattern"),
        (["add", "bob"], "short\n", "password: at least 12 characters"),
        (["add", "bob", "--role", "king"], "long-enough-password\n", "'king' is not one of"),
        (["remove", "nobody"], "", "no operator named 'nobody'"),
    ],
)
def test_operators_cli_errors(tmp_path: Path, args: list[str], stdin: str, message: str) -> None:
    file = tmp_path / "operators.yaml"
    add(file, "amel", "operator", PASSWORDS["amel"])
    before = file.read_bytes()
    cmd = [sys.executable, "-m", "hdc.cli", "monitor", "operators", *args, "--password-stdin", "--file", str(file)]
    if args[0] == "remove":
        cmd.remove("--password-stdin")
    if args[0] == "hash":
        cmd = cmd[:-2]  # no operators file involved
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert file.read_bytes() == before  # nothing lost or half-written


# --- a real monitor with TLS and an operators file ---------------------------------------------


class Monitor:
    def __init__(self, url: str, ca: Path, operators: Path) -> None:
        self.url, self.ca, self.operators = url, ca, operators

    def call(self, method: str, path: str, user: str | None = None, **kw: object) -> httpx.Response:
        auth = (user, PASSWORDS[user]) if user else None
        return httpx.request(method, self.url + path, auth=auth, verify=self.tls(), timeout=30, **kw)  # type: ignore[arg-type]

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    tmp = tmp_path_factory.mktemp("noc-access")
    cert, key = self_signed(tmp)
    ops = tmp / "operators.yaml"
    add(ops, "amel", "operator", PASSWORDS["amel"])
    add(ops, "karim", "viewer", PASSWORDS["karim"])
    add(ops, "am", "webhook", PASSWORDS["am"])
    port = free_port()
    proc = ManagedProcess(
        "monitor",
        [sys.executable, "-m", "hdc.cli", "monitor", "run", "--catalog", "lab", "--listen", f"127.0.0.1:{port}",
         "--operators", str(ops), "--tls-cert", str(cert), "--tls-key", str(key), "--interval", "5"],
        tmp / "monitor.log",
        env={"HDC_SECRETS_DIR": str(tmp / "secrets"), "HDC_MONITOR_STATE_DIR": str(tmp / "state")},
    ).start()  # fmt: skip
    try:
        mon = Monitor(f"https://127.0.0.1:{port}", cert, ops)

        def up() -> bool:
            try:
                return mon.call("GET", "/healthz").status_code in (200, 503)
            except httpx.HTTPError:
                return False

        proc.wait_ready(up, timeout=90)
        yield mon
    finally:
        proc.stop()


def test_metrics_and_health_stay_open_for_scrapers(monitor: Monitor) -> None:
    assert monitor.call("GET", "/metrics").status_code == 200
    assert monitor.call("GET", "/healthz").status_code in (200, 503)


def test_plain_http_is_refused_on_the_tls_port(monitor: Monitor) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(monitor.url.replace("https://", "http://") + "/noc", timeout=10)


@pytest.mark.parametrize(
    "path", ["/noc", "/api/noc/state", "/api/alerts", "/api/silences", "/runbooks/alerts/link-down.md"]
)
def test_reading_needs_a_signed_in_user(monitor: Monitor, path: str) -> None:
    anonymous = monitor.call("GET", path)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic ")
    assert monitor.call("GET", path, "karim").status_code == 200


def test_wrong_forged_or_malformed_credentials_are_401(monitor: Monitor) -> None:
    url = monitor.url + "/api/alerts"
    kw = {"verify": monitor.tls(), "timeout": 30}
    assert httpx.get(url, auth=("amel", "amel-wrong-password"), **kw).status_code == 401  # type: ignore[arg-type]
    assert httpx.get(url, auth=("mallory", PASSWORDS["amel"]), **kw).status_code == 401  # type: ignore[arg-type]
    for header in ["Basic !!!", "Basic " + "YWJj", "Bearer abc.def.ghi", "Basic"]:
        assert httpx.get(url, headers={"Authorization": header}, **kw).status_code == 401, header  # type: ignore[arg-type]


def test_roles_and_actions_recorded_under_the_signed_in_name(monitor: Monitor) -> None:
    body = {"facility": None, "region": "TUN", "reason": "maintenance of the regional router", "duration_s": 600,
            "created_by": "someone-else"}  # fmt: skip
    regions = [r["id"] for r in monitor.call("GET", "/api/noc/state", "karim").json()["regions"]]
    body["region"] = regions[0]
    assert monitor.call("POST", "/api/silences", "karim", json=body).status_code == 403  # a viewer cannot
    assert monitor.call("POST", "/api/silences", "am", json=body).status_code == 403  # nor the relay account
    made = monitor.call("POST", "/api/silences", "amel", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == "amel"  # not what the body claimed
    assert monitor.call("DELETE", f"/api/silences/{made.json()['id']}", "karim").status_code == 403
    assert monitor.call("DELETE", f"/api/silences/{made.json()['id']}", "amel").status_code == 200
    assert monitor.call("GET", "/api/noc/state", "amel").json()["user"] == "amel"


def test_alertmanager_relay_needs_the_webhook_role(monitor: Monitor) -> None:
    hook = {"version": "4", "receiver": "nobody", "status": "firing", "alerts": [], "groupKey": "g",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am"}  # fmt: skip
    assert monitor.call("POST", "/api/alertmanager/webhook", json=hook).status_code == 401
    assert monitor.call("POST", "/api/alertmanager/webhook", "amel", json=hook).status_code == 403
    # authenticated and authorised: now the payload itself is judged (no such receiver in the routes)
    assert monitor.call("POST", "/api/alertmanager/webhook", "am", json=hook).status_code == 404


def test_operator_changes_apply_without_restart(monitor: Monitor) -> None:
    add(monitor.operators, "sami", "operator", "sami-temporary-pw-1")
    PASSWORDS["sami"] = "sami-temporary-pw-1"
    wait_until(lambda: monitor.call("GET", "/api/alerts", "sami").status_code == 200, 10, "new operator accepted")
    removed = runner.invoke(app, ["monitor", "operators", "remove", "sami", "--file", str(monitor.operators)])
    assert removed.exit_code == 0
    wait_until(lambda: monitor.call("GET", "/api/alerts", "sami").status_code == 401, 10, "removed operator refused")
    # a file broken by hand: the last good list stays in force
    good = monitor.operators.read_bytes()
    try:
        monitor.operators.write_text("operators: [oops\n", encoding="utf-8")
        time.sleep(1.5)
        assert monitor.call("GET", "/api/alerts", "amel").status_code == 200
    finally:
        monitor.operators.write_bytes(good)


def test_page_signs_in_and_shows_the_operator(monitor: Monitor, browser: Browser) -> None:  # noqa: F811
    context = browser.new_context(
        http_credentials={"username": "amel", "password": PASSWORDS["amel"]}, ignore_https_errors=True
    )
    try:
        page = context.new_page()
        page.goto(f"{monitor.url}/noc?lang=en")
        field = page.locator("#operator")
        expect(field).to_have_value("amel", timeout=30_000)
        expect(field).to_have_attribute("readonly", "")
    finally:
        context.close()
    anonymous = browser.new_context(ignore_https_errors=True)
    try:
        # headless Chromium cancels the Basic prompt, so ask through the context's own HTTP client
        assert anonymous.request.get(f"{monitor.url}/noc").status == 401
    finally:
        anonymous.close()


def test_bad_tls_files_are_named(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_key = self_signed(other)
    for extra, message in [
        (["--tls-cert", str(cert)], "--tls-cert and --tls-key go together"),
        (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "none.key")], "--tls-key: "),
        (["--tls-cert", str(cert), "--tls-key", str(wrong_key)], "are not a matching PEM certificate and key"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "hdc.cli", "monitor", "run", "--listen", f"127.0.0.1:{free_port()}", *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
