"""The prometheus role's host and archive alert rules, rendered as Ansible renders them (role
defaults), then checked and unit-tested by promtool: the archive alerts fire, carry their
runbook, and the runbook pages exist."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "playbooks/roles/prometheus"
NOC = "https://noc.example.org:9110/"


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    defaults: dict[str, Any] = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = env.from_string((ROLE / "templates/hdc-hosts.rules.yml.j2").read_text()).render(
        **{**defaults, "ansible_managed": "test", "hdc_prometheus_runbook_base": NOC}
    )
    out = tmp_path_factory.mktemp("rules") / "hdc-hosts.rules.yml"
    out.write_text(text)
    return out


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, check=False, timeout=60)


def test_rules_pass_promtool_check(rules_file: Path) -> None:
    out = _promtool("check", "rules", str(rules_file))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_archive_alert_links_an_existing_runbook(rules_file: Path) -> None:
    groups = {g["name"]: g for g in yaml.safe_load(rules_file.read_text())["groups"]}
    alerts = groups["hdc-archive"]["rules"]
    assert {a["alert"] for a in alerts} == {"ArchiveStoreSyncBehind", "ArchiveFixityFailures"}
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.startswith(NOC), url
        page = ROOT / url.removeprefix(NOC)
        assert page.is_file() and f"`{alert['alert']}`" in page.read_text(), page


def test_archive_alerts_fire_as_documented(rules_file: Path, tmp_path: Path) -> None:
    inst = 'instance="archive-app-01:8443",job="hdc-archive"'
    behind = {
        "summary": "archive-app-01:8443: 2 archive record(s) whose legal hold or retention lock the store has not taken",
        "runbook_url": f"{NOC}runbooks/alerts/archive-store-sync-behind.md",
    }
    fixity = {
        "summary": "archive-app-01:8443: 3 record version(s) whose last fixity check failed (missing or altered)",
        "runbook_url": f"{NOC}runbooks/alerts/archive-fixity-failures.md",
    }
    labels = {"instance": "archive-app-01:8443"}
    spec = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # owed for 10 min (a short store outage the sync absorbs), then again for 30
                    {"series": f"hdc_archive_store_sync_owed_records{{{inst}}}", "values": "2x10 0x5 2x30"},
                    {"series": f"hdc_archive_fixity_failures{{{inst}}}", "values": "0 0 3x10"},
                ],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "ArchiveStoreSyncBehind", "exp_alerts": []},
                    {"eval_time": "25m", "alertname": "ArchiveStoreSyncBehind", "exp_alerts": []},
                    {
                        "eval_time": "40m",
                        "alertname": "ArchiveStoreSyncBehind",
                        "exp_alerts": [{"exp_labels": {**labels, "severity": "warning"}, "exp_annotations": behind}],
                    },
                    {"eval_time": "1m", "alertname": "ArchiveFixityFailures", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "ArchiveFixityFailures",
                        "exp_alerts": [{"exp_labels": {**labels, "severity": "critical"}, "exp_annotations": fixity}],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "archive-alerts.test.yml"
    test_file.write_text(yaml.safe_dump(spec))
    out = _promtool("test", "rules", str(test_file))
    assert out.returncode == 0, out.stdout + out.stderr
