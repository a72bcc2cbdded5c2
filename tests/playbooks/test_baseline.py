"""base + node_exporter on every test host: converge, converge again with no change, check from outside."""

from __future__ import annotations

import pytest

from .conftest import TEST_HOSTS, Converge
from .hosts import Lab

pytestmark = [pytest.mark.hosts, pytest.mark.slow]


@pytest.fixture(scope="module")
def baseline(converge: Converge) -> dict[str, object]:
    first, t1 = converge("baseline.yml")
    assert first.succeeded, converge.failures()
    second, t2 = converge("baseline.yml")
    return {"first": first, "second": second, "t1": t1, "t2": t2}


def test_baseline_converges_then_changes_nothing(baseline: dict) -> None:
    first, second = baseline["first"], baseline["second"]
    assert set(first.hosts) == set(TEST_HOSTS)
    assert all(h.changed > 0 for h in first.hosts.values())
    assert second.succeeded
    assert {n: h.changed for n, h in second.hosts.items()} == dict.fromkeys(TEST_HOSTS, 0)
    print(f"baseline: first run {baseline['t1']:.1f} s, second run {baseline['t2']:.1f} s")


def test_ssh_refuses_passwords(baseline: dict, hosts: Lab) -> None:
    r = hosts.exec_in(
        "switch",
        [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
            f"root@{hosts.hosts['epr-app-01'].address}", "true",
        ],
    )  # fmt: skip
    assert r.returncode == 255
    # sshd lists the methods it still accepts: only public keys.
    assert "Permission denied (publickey)" in r.stderr, r.stderr
    # and a key still works
    assert hosts.in_host("epr-app-01", ["true"]).returncode == 0


def test_node_exporter_serves_metrics_to_prometheus_only(baseline: dict, hosts: Lab) -> None:
    target = f"http://{hosts.hosts['archive-db-01'].address}:9100/metrics"
    r = hosts.exec_in("noc-app-01", ["curl", "-sS", "--max-time", "5", target])
    assert r.returncode == 0, r.stderr
    assert "node_cpu_seconds_total" in r.stdout
    # from a host that is not a Prometheus server: dropped (a timeout, not a refusal)
    r = hosts.exec_in("epr-app-01", ["curl", "-sS", "--max-time", "3", target])
    assert r.returncode == 28, (r.returncode, r.stderr)


def test_firewall_drops_undeclared_port(baseline: dict, hosts: Lab) -> None:
    db = hosts.hosts["archive-db-01"]
    # something listens on 9100 locally, but nothing is declared for epr -> archive-db: dropped
    assert hosts.listening(db, 9100)
    r = hosts.exec_in("epr-app-01", ["curl", "-sS", "--max-time", "3", f"http://{db.address}:9100/"])
    assert r.returncode == 28
    # SSH answers the management network (the controller) but not another application host
    r = hosts.exec_in("epr-app-01", ["curl", "-sS", "--max-time", "3", f"telnet://{db.address}:22"])
    assert r.returncode == 28
    ruleset = hosts.in_host("archive-db-01", ["nft", "list", "chain", "inet", "hdc", "input"]).stdout
    assert "policy drop" in ruleset
    assert "tcp dport 5432 accept" in ruleset  # the catalog's archive app -> db flow


def test_hardening_settings_in_effect(baseline: dict, hosts: Lab) -> None:
    r = hosts.exec_in("archive-app-01", ["sysctl", "-n", "net.ipv4.conf.all.accept_redirects"])
    assert r.stdout.strip() == "0"
    r = hosts.in_host("archive-app-01", ["sshd", "-T"])
    settings = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["permitrootlogin"] == "without-password"
    assert settings["x11forwarding"] == "no"
    r = hosts.in_host("archive-app-01", ["passwd", "-S", "root"])
    assert r.stdout.split()[1] == "L"
    for unit in ("nftables", "prometheus-node-exporter", "ssh"):
        assert hosts.in_host("archive-app-01", ["systemctl", "is-active", unit]).stdout.strip() == "active"
