"""site.yml on throw-away hosts: converge, converge again with no change, then check from outside.

One converge of the whole data center serves every check here (the hosts are the lab catalog's
archive platform, a three-node SeaweedFS store and the NOC host), since each converge costs
minutes on two cores.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from archive_service.service import object_key
from hdc.procs import wait_until
from playbooks.runner import RunResult

from .conftest import TEST_HOSTS, Converge
from .hosts import BOOTSTRAP_PACKAGES, Lab, container_inits
from .wheelhouse import REPO

pytestmark = [
    pytest.mark.hosts,
    pytest.mark.slow,
    pytest.mark.timeout(1500),
]

CURL = ["curl", "-sS", "--max-time", "4"]
TIMEOUT = 28  # curl's exit code for a timeout: the firewall dropped the packets


@pytest.fixture(scope="module")
def site(converge: Converge) -> dict[str, Any]:
    first, t1 = converge("site.yml")
    assert first.succeeded, converge.failures()
    # --diff: a task the second converge changes shows what changed (see the assertion below)
    second, t2 = converge("site.yml", diff=True)
    print(f"\nsite.yml: first converge {t1:.0f} s, second {t2:.0f} s")
    for line in converge.slowest(first):
        print(f"  slow (first converge): {line}")
    return {
        "first": first,
        "second": second,
        "t1": t1,
        "t2": t2,
        "changes": converge.changes(second),
        "failures": converge.failures(),
    }


def test_hosts_share_no_cgroup(hosts: Lab) -> None:
    """Each host's systemd has a cgroup tree of its own (see `Lab.add_host`).

    When they shared one, a unit started at the same moment on two hosts was one cgroup, and one
    host pruning it made the other's start fail (the nftables first-start flake, 219/CGROUP).
    """
    trees = {}
    for name, host in hosts.hosts.items():
        assert host.proc is not None
        init = container_inits(host.proc.pid)
        assert len(init) == 1, f"{name}: nspawn has children {init}"
        trees[name] = Path(f"/proc/{init[0]}/cgroup").read_text()
        assert f"hdc-test-{hosts.tag}-{name}/" in trees[name], trees[name]
    assert len(set(trees.values())) == len(trees), trees
    # the symptom seen from inside: a process of another host shows as pid 0 in a shared cgroup
    for name in hosts.hosts:
        procs = hosts.in_host(name, ["sh", "-c", "cat /sys/fs/cgroup/systemd/system.slice/ssh.service/cgroup.procs"])
        assert procs.returncode == 0 and "0" not in procs.stdout.split(), f"{name}: {procs.stdout} {procs.stderr}"


def test_site_converges_then_changes_nothing(site: dict[str, Any]) -> None:
    first: RunResult = site["first"]
    second: RunResult = site["second"]
    assert set(first.hosts) == set(TEST_HOSTS)
    assert all(h.changed > 0 for h in first.hosts.values())
    assert second.succeeded, site["failures"]
    changes = "\n".join(site["changes"])
    assert {n: h.changed for n, h in second.hosts.items()} == dict.fromkeys(TEST_HOSTS, 0), changes


def test_roles_installed_their_packages_on_bare_hosts(site: dict[str, Any], hosts: Lab) -> None:
    """The image only has the roles' .deb files in its apt cache: dpkg ran during the converge."""
    every_host = {"nftables", "auditd", "chrony", "unattended-upgrades", "logrotate", "prometheus-node-exporter"}
    expected = {name: set(every_host) for name in TEST_HOSTS}
    expected["archive-db-01"] |= {"postgresql-15", "postgresql-client-15"}
    expected["noc-app-01"] |= {"prometheus", "prometheus-alertmanager", "python3-venv"}
    expected["archive-app-01"] |= {"python3-venv"}
    assert not set().union(*expected.values()) & set(BOOTSTRAP_PACKAGES)
    for name, packages in expected.items():
        log = hosts.in_host(name, ["cat", "/var/log/dpkg.log"]).stdout.splitlines()
        installed = {f[3].split(":")[0] for f in (line.split() for line in log) if len(f) > 3 and f[2] == "install"}
        assert packages <= installed, f"{name}: not installed by the converge: {sorted(packages - installed)}"


def test_ssh_refuses_passwords(site: dict[str, Any], hosts: Lab) -> None:
    r = hosts.exec_in(
        "switch",
        [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
            f"root@{hosts.hosts['archive-db-01'].address}", "true",
        ],
    )  # fmt: skip
    assert r.returncode == 255
    # sshd lists the methods it still accepts: public keys only
    assert "Permission denied (publickey)" in r.stderr, r.stderr
    assert hosts.in_host("archive-db-01", ["true"]).returncode == 0
    settings = dict(
        line.split(" ", 1) for line in hosts.in_host("archive-db-01", ["sshd", "-T"]).stdout.splitlines() if " " in line
    )
    assert settings["passwordauthentication"] == "no"
    assert settings["permitrootlogin"] == "without-password"
    assert hosts.in_host("archive-db-01", ["passwd", "-S", "root"]).stdout.split()[1] == "L"


def test_node_exporter_serves_prometheus_only(site: dict[str, Any], hosts: Lab) -> None:
    target = f"http://{hosts.hosts['archive-db-01'].address}:9100/metrics"
    r = hosts.exec_in("noc-app-01", [*CURL, target])
    assert r.returncode == 0, r.stderr
    assert "node_cpu_seconds_total" in r.stdout
    assert hosts.exec_in("epr-app-01", [*CURL, target]).returncode == TIMEOUT


def test_firewall_allows_declared_flows_and_drops_the_rest(site: dict[str, Any], hosts: Lab) -> None:
    db = hosts.hosts["archive-db-01"]
    assert hosts.listening(db, 5432)
    # declared: archive app -> db 5432 (PostgreSQL answers the TLS request with 'S')
    probe = ["python3", "-c", _PG_SSL_PROBE, db.address]
    assert hosts.exec_in("archive-app-01", probe).stdout.strip() == "S"
    # undeclared: the epr app may reach the archive app, not its database; nor SSH
    assert hosts.exec_in("epr-app-01", probe).returncode != 0
    assert hosts.exec_in("epr-app-01", [*CURL, f"telnet://{db.address}:22"]).returncode == TIMEOUT
    ruleset = hosts.in_host("archive-db-01", ["nft", "list", "chain", "inet", "hdc", "input"]).stdout
    assert "policy drop" in ruleset
    assert "10.20.1.10" in ruleset and "tcp dport 5432 accept" in ruleset


def test_sysctl_hardening_file_applies(site: dict[str, Any], hosts: Lab) -> None:
    """nspawn keeps /proc/sys read-only, so the role installs the keys and the kernel applies them at
    boot (systemd-sysctl); here the installed file is applied to the host's namespace from outside."""
    app = hosts.hosts["archive-app-01"]
    conf = app.merged / "etc/sysctl.d/60-hdc-net.conf"
    assert "net.ipv4.conf.all.accept_redirects = 0" in conf.read_text()
    r = hosts.exec_in("archive-app-01", ["sysctl", "-p", str(conf)])
    assert r.returncode == 0, r.stderr
    r = hosts.exec_in("archive-app-01", ["sysctl", "-n", "net.ipv4.conf.all.accept_redirects"])
    assert r.stdout.strip() == "0"


_PG_SSL_PROBE = """
import socket, struct, sys
s = socket.create_connection((sys.argv[1], 5432), timeout=3)
s.sendall(struct.pack('!ii', 8, 80877103))
print(s.recv(1).decode())
"""


def test_archive_answers_its_declared_clients_over_tls(site: dict[str, Any], hosts: Lab, test_vars: dict) -> None:
    app = hosts.hosts["archive-app-01"]
    ca = f"{test_vars['hdc_pki_dir']}/ca.crt"
    url = f"https://{app.address}:8443"
    r = hosts.exec_in("epr-app-01", [*CURL, "--cacert", ca, f"{url}/healthz"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "ok"
    # ready: it reaches its PostgreSQL (TLS, SCRAM) and its S3 store (TLS) through the firewalls
    r = hosts.exec_in("epr-app-01", [*CURL, "--cacert", ca, f"{url}/readyz"])
    assert json.loads(r.stdout) == {"status": "ok", "checks": {"store": "ok", "catalog": "ok"}}, r.stdout
    # a host without a declared flow to the archive: dropped
    assert hosts.exec_in("appointments-web-01", [*CURL, "--cacert", ca, f"{url}/healthz"]).returncode == TIMEOUT
    unit = hosts.in_host("archive-app-01", ["systemctl", "show", "hdc-archive", "-p", "Restart,User"]).stdout
    assert "Restart=on-failure" in unit and "User=hdc-archive" in unit
    assert hosts.in_host("archive-app-01", ["logrotate", "-d", "/etc/logrotate.d/hdc-archive"]).returncode == 0
    # the fixity job: scheduled nightly, and a run on the live catalog and store succeeds
    timer = hosts.in_host("archive-app-01", ["systemctl", "show", "hdc-archive-fixity.timer", "-p", "TimersCalendar"])
    assert "02:00:00" in timer.stdout, timer.stdout
    r = hosts.in_host("archive-app-01", ["systemctl", "start", "hdc-archive-fixity.service"], timeout=120)
    log = hosts.in_host("archive-app-01", ["cat", "/var/log/hdc-archive/fixity.log"]).stdout
    assert r.returncode == 0 and "failure(s)" in log, (r.stderr, log)


def test_object_store_is_one_cluster_over_several_hosts(site: dict[str, Any], hosts: Lab, test_vars: dict) -> None:
    """The buckets made by the provisioning step are seen from every node, with object lock on."""
    script = _S3_CHECK.format(
        ca=f"{test_vars['hdc_pki_dir']}/ca.crt",
        ak=test_vars["hdc_object_store_access_key"],
        sk=test_vars["hdc_object_store_secret_key"],
    )
    nodes = [hosts.hosts[f"archive-store-0{i}"].address for i in (1, 2, 3)]
    out = hosts.exec_in("archive-app-01", ["/work/main/.venv/bin/python", "-c", script, *nodes], timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    for node in nodes:
        assert report[node]["buckets"] == ["hdc-archive-audit", "hdc-archive-records"]
        assert report[node]["lock"] == "Enabled"
    assert report["read_back"] == "hello from node 1"


_S3_CHECK = """
import json, sys, io, urllib3
from minio import Minio
http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs="{ca}", timeout=10)
report = {{}}
clients = [Minio(f"{{n}}:9000", "{ak}", "{sk}", secure=True, http_client=http) for n in sys.argv[1:]]
for node, c in zip(sys.argv[1:], clients):
    report[node] = {{"buckets": sorted(b.name for b in c.list_buckets()),
                    "lock": c.get_object_lock_config("hdc-archive-records") and "Enabled"}}
data = b"hello from node 1"
clients[0].put_object("hdc-archive-audit", "ci/check.txt", io.BytesIO(data), len(data))
import time
for _ in range(50):
    try:
        report["read_back"] = clients[2].get_object("hdc-archive-audit", "ci/check.txt").read().decode()
        break
    except Exception:
        time.sleep(0.2)
print(json.dumps(report))
"""


def test_monitor_and_prometheus(site: dict[str, Any], hosts: Lab, test_vars: dict) -> None:
    noc = hosts.hosts["noc-app-01"]
    ca = f"{test_vars['hdc_pki_dir']}/ca.crt"
    # the exporter (NOC page, metrics) is open to the management network and Prometheus only
    r = hosts.exec_in("switch", [*CURL, "-f", "--cacert", ca, f"https://{noc.address}:9105/healthz"])
    assert r.returncode == 0, r.stderr
    assert hosts.exec_in("epr-app-01", [*CURL, "-k", f"https://{noc.address}:9105/healthz"]).returncode == TIMEOUT
    r = hosts.exec_in("noc-app-01", [*CURL, "--cacert", ca, f"https://{noc.address}:9105/metrics"])
    assert r.returncode == 0 and "hdc_" in r.stdout, r.stderr
    # Prometheus: UI open to the management network, config and rules from the catalog loaded
    r = hosts.exec_in("switch", [*CURL, f"http://{noc.address}:9090/api/v1/rules"])
    groups = {g["name"] for g in json.loads(r.stdout)["data"]["groups"]}
    assert {"hdc-hosts", "hdc-links", "hdc-topology"} <= groups
    r = hosts.exec_in("switch", [*CURL, f"http://{noc.address}:9090/api/v1/targets?state=active"])
    targets = json.loads(r.stdout)["data"]["activeTargets"]
    jobs = {t["labels"]["job"] for t in targets}
    assert {"node", "hdc-monitor", "hdc-archive", "alertmanager", "prometheus"} <= jobs
    assert len([t for t in targets if t["labels"]["job"] == "node"]) == len(TEST_HOSTS)
    r = hosts.exec_in("switch", [*CURL, f"http://{noc.address}:9093/api/v2/status"])
    assert json.loads(r.stdout)["cluster"]["status"] in ("ready", "disabled")


def test_backup_dumps_the_catalog_and_configuration(site: dict[str, Any], hosts: Lab) -> None:
    timer = hosts.in_host("archive-db-01", ["systemctl", "show", "hdc-backup.timer", "-p", "TimersCalendar"]).stdout
    assert "00/4:00:00" in timer  # the archive platform's backup class 'gold': every 4 hours
    r = hosts.in_host("archive-db-01", ["systemctl", "start", "hdc-backup.service"], timeout=120)
    assert r.returncode == 0, r.stderr
    r = hosts.in_host("archive-db-01", ["sh", "-c", "ls /var/backups/hdc/postgresql /var/backups/hdc/config"])
    assert "archive-" in r.stdout and "config-" in r.stdout
    r = hosts.in_host("archive-db-01", ["sh", "-c", "pg_restore -l /var/backups/hdc/postgresql/archive-*.dump"])
    assert r.returncode == 0 and "dbname: archive" in r.stdout, r.stdout[-500:] + r.stderr


def test_archive_writes_and_reads_a_record_through_the_store_cluster(
    site: dict[str, Any], hosts: Lab, test_vars: dict
) -> None:
    """A declared client ingests through the archive API; the object lands on the SeaweedFS cluster."""
    app = hosts.hosts["archive-app-01"]
    # a development token from the archive's embedded issuer, minted with the service's own settings
    r = hosts.in_host(
        "archive-app-01",
        ["systemd-run", "--quiet", "--pipe", "--wait", "-p", "User=hdc-archive",
         "-p", "EnvironmentFile=/etc/hdc/archive.env", "/opt/hdc/venv/bin/hdc", "archive", "token",
         "--role", "archivist", "--subject", "ci-host-test"],
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    auth = f"Authorization: Bearer {r.stdout.strip()}"
    body = f"consultation note written by the host test {time.time()}"
    meta = {
        "record_class": "medical",
        "subclass": "consultation",
        "facility": "hu-tunis-nord",
        "patient_id": "TN-0000001",
        "document_date": "2024-03-01",
        "title": "Host test record",
        "author": "CI",
        "language": "fr",
    }
    ca = f"{test_vars['hdc_pki_dir']}/ca.crt"
    url = f"https://{app.address}:8443/records"
    r = hosts.exec_in(
        "epr-app-01",
        [*CURL, "--cacert", ca, "-X", "POST", "-H", auth, "-H", "Content-Type: text/plain",
         "-H", f"X-Archive-Metadata: {json.dumps(meta)}",
         "-H", f"X-Content-SHA256: {hashlib.sha256(body.encode()).hexdigest()}",
         "--data-binary", body, "-w", "\n%{http_code}", url],
    )  # fmt: skip
    answer, _, status = r.stdout.rpartition("\n")
    assert status == "201", r.stdout + r.stderr
    record = json.loads(answer)
    r = hosts.exec_in("epr-app-01", [*CURL, "--cacert", ca, "-H", auth, f"{url}/{record['record_id']}/content"])
    assert r.returncode == 0 and r.stdout == body, r.stdout + r.stderr
    # the sealed object is in the records bucket, seen from every node of the cluster
    script = _S3_STAT.format(
        ca=ca, ak=test_vars["hdc_object_store_access_key"], sk=test_vars["hdc_object_store_secret_key"]
    )
    nodes = [hosts.hosts[f"archive-store-0{i}"].address for i in (1, 2, 3)]
    key = object_key(record["record_id"], record["version"])
    out = hosts.exec_in("archive-app-01", [sys.executable, "-c", script, key, *nodes], timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    sizes = json.loads(out.stdout)
    assert set(sizes) == set(nodes) and all(size > 0 for size in sizes.values()), sizes


_S3_STAT = """
import json, sys, urllib3
from minio import Minio
http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs="{ca}", timeout=10)
key, nodes = sys.argv[1], sys.argv[2:]
print(json.dumps({{n: Minio(f"{{n}}:9000", "{ak}", "{sk}", secure=True, http_client=http)
                   .stat_object("hdc-archive-records", key).size for n in nodes}}))
"""


def test_alertmanager_delivers_to_the_monitor_webhook(site: dict[str, Any], hosts: Lab) -> None:
    """An alert posted to Alertmanager reaches the monitor's receiver (HTTPS, webhook login)."""
    noc = hosts.hosts["noc-app-01"]
    config = hosts.in_host("noc-app-01", ["cat", "/etc/prometheus/alertmanager.yml"]).stdout
    assert f"url: https://{noc.address}:9105/api/alertmanager/webhook" in config, config
    assert "password_file: /etc/prometheus/hdc-webhook.password" in config, config
    assert "ca_file: /etc/prometheus/hdc-ca.crt" in config, config
    mode = hosts.in_host("noc-app-01", ["stat", "-c", "%a %U %G", "/etc/prometheus/hdc-webhook.password"]).stdout
    assert mode.split() == ["640", "root", "prometheus"]
    am = f"http://{noc.address}:9093"
    alert = [{"labels": {"alertname": "HdcHostTest", "severity": "warning", "region": "tunis"},
              "annotations": {"description": "posted by the host test"}}]  # fmt: skip
    r = hosts.exec_in("switch", [*CURL, "-f", "-X", "POST", "-H", "Content-Type: application/json",
                                 "--data", json.dumps(alert), f"{am}/api/v2/alerts"])  # fmt: skip
    assert r.returncode == 0, r.stderr

    def counter(name: str) -> float:
        text = hosts.exec_in("switch", [*CURL, f"{am}/metrics"]).stdout
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") and 'integration="webhook"' in line
        )

    # the route's group_wait is 15 s; Alertmanager counts a delivery once the receiver answered 2xx
    wait_until(lambda: counter("alertmanager_notifications_total") >= 1, 60, "a webhook notification")
    # a 4xx/5xx answer (wrong path or port, a receiver the monitor does not know, a refused login)
    # or a TLS failure counts as failed
    assert counter("alertmanager_notifications_failed_total") == 0


def test_noc_page_over_https_for_provisioned_operators(
    site: dict[str, Any], hosts: Lab, test_vars: dict, noc_login: dict[str, str]
) -> None:
    """From the management network: HTTPS with the internal CA, no page without a login."""
    noc = hosts.hosts["noc-app-01"]
    ca = f"{test_vars['hdc_pki_dir']}/ca.crt"
    page = f"https://{noc.address}:9105/noc"

    def status(*args: str) -> str:
        r = hosts.exec_in("switch", [*CURL, "-o", "/dev/null", "-w", "%{http_code}", *args])
        return r.stdout.strip() if r.returncode == 0 else f"curl exit {r.returncode}"

    assert status("--cacert", ca, page) == "401"
    assert status("--cacert", ca, "-u", f"{noc_login['name']}:wrong-password", page) == "401"
    assert status("--cacert", ca, "-u", "webhook:" + test_vars["hdc_alertmanager_webhook_password"], page) == "403"
    assert status("--cacert", ca, "-u", f"{noc_login['name']}:{noc_login['password']}", page) == "200"
    # the certificate is the internal CA's (not trusted by default), and plain HTTP gets no page
    assert status(page) == "curl exit 60"
    assert status(f"http://{noc.address}:9105/noc").startswith("curl exit")
    # the operators file holds hashes only
    ops = hosts.in_host("noc-app-01", ["cat", "/etc/hdc/operators.yml"]).stdout
    assert noc_login["hash"] in ops and noc_login["password"] not in ops
    assert test_vars["hdc_alertmanager_webhook_password"] not in ops

    # Prometheus scrapes the monitor's /metrics over HTTPS, trusting the same CA
    def monitor_target() -> dict[str, Any]:
        r = hosts.exec_in("switch", [*CURL, f"http://{noc.address}:9090/api/v1/targets?state=active"])
        return next(t for t in json.loads(r.stdout)["data"]["activeTargets"] if t["labels"]["job"] == "hdc-monitor")

    wait_until(lambda: monitor_target()["health"] == "up", 70, "Prometheus scraping the monitor")
    assert monitor_target()["scrapeUrl"].startswith(f"https://{noc.address}:9105/")


def test_monitor_serves_the_runbooks_its_rules_link_to(
    site: dict[str, Any], hosts: Lab, test_vars: dict, noc_login: dict[str, str]
) -> None:
    """The wheel ships runbooks/ beside the packages: the installed monitor serves them itself."""
    noc = hosts.hosts["noc-app-01"]
    page = (REPO / "runbooks/alerts/link-down.md").read_text(encoding="utf-8")
    login = f"{noc_login['name']}:{noc_login['password']}"
    url = f"https://{noc.address}:9105/runbooks/alerts/link-down.md"
    r = hosts.exec_in("switch", [*CURL, "-f", "--cacert", f"{test_vars['hdc_pki_dir']}/ca.crt", "-u", login, url])
    assert r.returncode == 0, r.stderr
    assert page.splitlines()[0] in r.stdout
