"""The controller side of `hdc configure`, without hosts: catalog-derived variables, inventory, CLI errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hdc.errors import UserError
from hdc.procs import free_port
from inventory.ansible import render_inventory
from inventory.hosts import plan_hosts
from inventory.loader import load_catalog
from playbooks.catalog_vars import backup_vars, cron_to_on_calendar, firewall_rules
from playbooks.cli import parse_extra_vars
from playbooks.runner import check_limit, inventory_from_catalog, inventory_from_file, run_playbook, write_inventory

HDC = [str(Path(sys.executable).parent / "hdc")]


@pytest.fixture(scope="module")
def lab():  # type: ignore[no-untyped-def]
    return load_catalog("lab")


def test_firewall_rules_follow_the_catalog_flows(lab) -> None:  # type: ignore[no-untyped-def]
    addr = {h.name: str(h.address) for h in plan_hosts(lab)}
    rules = firewall_rules(lab)
    db = {r.port: r for r in rules["archive-db-01"]}
    assert set(db) == {5432}
    assert db[5432].sources == sorted([addr["archive-app-01"], addr["archive-app-02"]])
    app = {r.port: r for r in rules["archive-app-01"]}
    # the archive app is reached by the epr app tier (a flow of platform epr)
    assert app[8443].sources == sorted([addr["epr-app-01"], addr["epr-app-02"]])
    # identity's app is reached by archive, epr and the appointments? no: only those declaring it
    ident = {r.port: r for r in rules["identity-app-01"]}
    assert set(ident[8443].sources) == {addr[f"{p}-app-0{i}"] for p in ("archive", "epr") for i in (1, 2)}
    assert "archive/app" in ident[8443].comment and "epr/app" in ident[8443].comment
    # the public web tier is open to everyone on its ports, nothing else
    web = rules["appointments-web-01"]
    assert [(r.port, r.sources) for r in web] == [(443, ["0.0.0.0/0"])]
    # hosts without declared inbound flows get no opening at all
    assert rules["noc-app-01"] == []


def test_addresses_from_provisioning_override_the_plan(lab) -> None:  # type: ignore[no-untyped-def]
    rules = firewall_rules(lab, {"archive-app-01": "192.0.2.7"})
    assert "192.0.2.7" in rules["archive-db-01"][0].sources


@pytest.mark.parametrize(
    ("cron", "calendar"),
    [
        ("0 */4 * * *", "*-*-* 0/4:00:00"),
        ("0 1 * * *", "*-*-* 01:00:00"),
        ("0 2 * * 0", "Sun *-*-* 02:00:00"),
        ("30 2 1-7 * 1-5", "Mon..Fri *-*-01..07 02:30:00"),
        ("*/15 * * * *", "*-*-* *:0/15:00"),
    ],
)
def test_cron_to_on_calendar(cron: str, calendar: str) -> None:
    assert cron_to_on_calendar(cron) == calendar
    r = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("bad", ["0 1 * *", "x 1 * * *", "0 1 * * 9", "0 1/x * * *"])
def test_cron_errors_name_the_expression(bad: str) -> None:
    with pytest.raises(ValueError, match=r"cron|step|number"):
        cron_to_on_calendar(bad)


def test_backup_vars_from_backup_class(lab) -> None:  # type: ignore[no-untyped-def]
    v = backup_vars(lab)
    assert v["archive"] == {
        "hdc_backup_on_calendar": "*-*-* 0/4:00:00",
        "hdc_backup_keep_days": 90,
        "hdc_backup_offsite": True,
    }
    assert v["noc"]["hdc_backup_offsite"] is False


def test_inventory_directory_holds_catalog_vars(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inv = inventory_from_catalog(lab, only_hosts={"archive-db-01", "noc-app-01"})
    target = write_inventory(inv, tmp_path / "inventory")
    derived = yaml.safe_load((target / "20-catalog-vars.yml").read_text())
    assert set(derived["all"]["hosts"]) == {"archive-db-01", "noc-app-01"}
    assert derived["all"]["vars"]["hdc_admin_sources"] == ["10.20.3.0/24"]
    assert Path(derived["all"]["vars"]["hdc_catalog_dir"], "platforms.yaml").is_file()
    assert Path(derived["all"]["vars"]["hdc_prometheus_rule_files"]).is_file()
    assert check_limit(target, "postgresql") == ["archive-db-01"]
    with pytest.raises(UserError, match="--limit 'nope' matches no host"):
        check_limit(target, "nope")


def test_alertmanager_logs_in_to_the_monitor_over_https(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The receivers post to the monitor's HTTPS webhook as its webhook operator, trusting the CA."""
    inv = inventory_from_catalog(lab, only_hosts={"noc-app-01"})
    routes = tmp_path / "routes.yml"
    routes.write_text(
        "version: 1\nroutes:\n  - {name: oncall, urls: ['file:oncall.url']}\n  - {name: noc, urls: ['file:noc.url']}\n"
    )
    extravars = {
        "hdc_alertmanager_webhook_password": "x" * 16,
        "hdc_pki_dir": str(tmp_path),
        "hdc_monitor_notify_file": str(routes),
    }
    derived = yaml.safe_load((write_inventory(inv, tmp_path / "a", extravars) / "20-catalog-vars.yml").read_text())
    text = Path(derived["all"]["vars"]["hdc_alertmanager_config_file"]).read_text()
    assert "&id" not in text and "*id" not in text  # one block per receiver, no YAML aliases
    hooks = [h for r in yaml.safe_load(text)["receivers"] for h in r.get("webhook_configs", [])]
    assert len(hooks) == 2
    noc = next(h for h in plan_hosts(lab) if h.name == "noc-app-01").address
    for hook in hooks:
        assert hook["url"] == f"https://{noc}:9105/api/alertmanager/webhook"
        assert hook["http_config"] == {
            "basic_auth": {"username": "webhook", "password_file": "/etc/prometheus/hdc-webhook.password"},
            "tls_config": {"ca_file": "/etc/prometheus/hdc-ca.crt"},
        }
    # the monitor told to serve plain HTTP, no webhook password: plain receivers
    extravars = {"hdc_monitor_tls": "false", "hdc_monitor_notify_file": str(routes)}
    derived = yaml.safe_load((write_inventory(inv, tmp_path / "b", extravars) / "20-catalog-vars.yml").read_text())
    config = yaml.safe_load(Path(derived["all"]["vars"]["hdc_alertmanager_config_file"]).read_text())
    hooks = [h for r in config["receivers"] for h in r.get("webhook_configs", [])]
    assert len(hooks) == 2
    assert all(h["url"].startswith(f"http://{noc}:9105/") and "http_config" not in h for h in hooks)


def test_secrets_stay_off_the_command_line(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Extra variables (the vault's secrets) reach ansible-playbook as a root-only file, not as argv."""
    secret = "vault-" + os.urandom(8).hex()
    # nothing listens on that port: the host is unreachable at once, the run is real
    conn = {"ansible_host": "127.0.0.1", "ansible_port": free_port(), "ansible_ssh_common_args": "-o ConnectTimeout=3"}
    inv = inventory_from_catalog(lab, host_vars={"noc-app-01": conn}, only_hosts={"noc-app-01"})
    result = run_playbook(
        inv, playbook="baseline.yml", extravars={"hdc_test_secret": secret}, on_line=None, keep_artifacts=tmp_path / "a"
    )
    assert result.hosts["noc-app-01"].unreachable == 1
    command = json.loads(next((tmp_path / "a").rglob("command")).read_text())
    argv = command["command"]
    assert secret not in " ".join(argv)
    assert argv[argv.index("-e") + 1].startswith("@") and argv[argv.index("-e") + 1].endswith("/env/extravars")


def test_inventory_file_errors_name_the_problem(tmp_path: Path, lab) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="no such file"):
        inventory_from_file(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  hosts: [\n")
    with pytest.raises(UserError, match=r"bad.yml:\d+: not valid YAML"):
        inventory_from_file(bad)
    nohost = tmp_path / "nohost.yml"
    nohost.write_text("all:\n  hosts:\n    a: {x: 1}\n  vars: {hdc_catalog: lab}\n")
    with pytest.raises(UserError, match="host 'a' has no 'ansible_host'"):
        inventory_from_file(nohost)
    good = tmp_path / "good.yml"
    good.write_text(render_inventory(lab))
    inv = inventory_from_file(good)
    assert "archive-db-01" in inv.host_names() and inv.catalog.name == "lab"


def test_extra_vars_forms(tmp_path: Path) -> None:
    f = tmp_path / "v.yml"
    f.write_text("a: 1\nb: [x]\n")
    assert parse_extra_vars(["k=v", '{"j": 2}', f"@{f}"]) == {"k": "v", "j": 2, "a": 1, "b": ["x"]}
    for bad, msg in (("novalue", "key=value"), ("{bad json", "not valid JSON"), ("@/nonexistent.yml", "cannot read")):
        with pytest.raises(UserError, match=msg):
            parse_extra_vars([bad])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --inventory FILE"),
        (["--inventory", "/nonexistent/inv.yml"], "no such file"),
        (["--catalog", "lab", "--limit", "no_such_group"], "matches no host"),
        (["--catalog", "lab", "-e", "oops"], "expected key=value"),
        (["--catalog", "no-such-catalog"], "no such catalog"),
    ],
)
def test_cli_errors_are_one_clear_line(args: list[str], message: str) -> None:
    r = subprocess.run([*HDC, "configure", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode in (1, 2)
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_without_the_configure_extra_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Application hosts install plain `hdc`: no Ansible there, and `hdc configure` says so."""
    from playbooks.runner import run_playbook

    monkeypatch.setitem(sys.modules, "ansible_runner", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"pip install 'hdc\[configure\]'"):
        run_playbook(inventory_from_catalog(load_catalog("lab")), "site.yml", on_line=None)
