"""Generated Prometheus rules checked by promtool, and the Alertmanager config by a real Alertmanager."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hdc.procs import ManagedProcess, free_port, tcp_ready
from inventory.loader import load_catalog
from monitor.alerting.promexport import alertmanager_config, dump, prometheus_rules
from monitor.notify.config import NotifyConfig
from monitor.rules import load_rules

LAB = load_catalog("lab")
RULES = load_rules()
NOC = "http://noc.example.org:9110"


def labels(fid: str) -> str:
    fac = LAB.facility(fid)
    assert fac is not None
    return f'facility="{fid}",region="{fac.region}",kind="{fac.kind.value}"'


def expected(fid: str, rule_id: str, site: str, value: str) -> dict[str, Any]:
    rule = RULES.get(rule_id)
    assert rule is not None
    fac = LAB.facility(fid)
    assert fac is not None
    lab = {
        "facility": fid,
        "region": fac.region,
        "kind": fac.kind.value,
        "uplink_site": site,
        "severity": rule.severity.value,
        "rule": rule_id,
        "topology": str(rule.topology).lower(),
    }
    where = f"{fid} ({fac.region})"
    notes = {
        "summary": f"{rule.title.en}: {where}",
        "summary_fr": f"{rule.title.fr} : {where}",
        "summary_ar": f"{rule.title.ar}: {where}",
        "description": f"value {value}",
        "runbook_url": f"{NOC}/{rule.runbook}",
    }
    return {"exp_labels": lab, "exp_annotations": notes}


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prom") / "hdc-rules.yml"
    path.write_text(dump(prometheus_rules(RULES, LAB, NOC)), encoding="utf-8")
    return path


def test_promtool_check_rules(rules_file: Path) -> None:
    out = subprocess.run(["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    n_polled = len(LAB.polled_facilities())
    assert f"SUCCESS: {n_polled + len(RULES.enabled())} rules found" in out.stdout


def test_promtool_test_rules(rules_file: Path) -> None:
    """Link down fires at once; saturation needs 10 min and holds in the hysteresis band; flapping counts changes."""
    sat = "hu-tunis-nord"
    tests = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"hdc_link_reachable{{{labels('hu-sfax')}}}", "values": "1x40"},
                    {"series": f"hdc_link_admin_up{{{labels('hu-sfax')}}}", "values": "1x40"},
                    {"series": f"hdc_link_oper_status{{{labels('hu-sfax')}}}", "values": "1 1 2x38"},
                    {"series": f"hdc_link_in_errors_per_second{{{labels('hc-la-marsa')}}}", "values": "12x40"},
                    {"series": f"hdc_link_out_errors_per_second{{{labels('hc-la-marsa')}}}", "values": "1x40"},
                    # 90 % for 12 min, 75 % (inside the 70–80 % band) for 10 min, then 50 %
                    {"series": f"hdc_link_utilisation_ratio{{{labels(sat)}}}", "values": "0.9x12 0.75x10 0.5x18"},
                    {"series": f"hdc_link_up{{{labels('hr-ariana')}}}", "values": "1 0 1 0 1 1x35"},
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "LinkDown", "exp_alerts": []},
                    {"eval_time": "3m", "alertname": "LinkDown", "exp_alerts": [
                        expected("hu-sfax", "link-down", "pop-sfax", "2")]},
                    {"eval_time": "4m", "alertname": "LinkErrors", "exp_alerts": []},
                    {"eval_time": "6m", "alertname": "LinkErrors", "exp_alerts": [
                        expected("hc-la-marsa", "link-errors", "pop-tunis", "13")]},
                    {"eval_time": "9m", "alertname": "LinkSaturated", "exp_alerts": []},
                    {"eval_time": "11m", "alertname": "LinkSaturated", "exp_alerts": [
                        expected(sat, "link-saturated", "pop-tunis", "0.9")]},
                    {"eval_time": "20m", "alertname": "LinkSaturated", "exp_alerts": [
                        expected(sat, "link-saturated", "pop-tunis", "0.75")]},
                    # below 70 % from 23m; kept firing 5 min more (keep_firing_for), gone at 30m
                    {"eval_time": "26m", "alertname": "LinkSaturated", "exp_alerts": [
                        expected(sat, "link-saturated", "pop-tunis", "0.75")]},
                    {"eval_time": "30m", "alertname": "LinkSaturated", "exp_alerts": []},
                    {"eval_time": "5m", "alertname": "LinkFlapping", "exp_alerts": [
                        expected("hr-ariana", "link-flapping", "pop-tunis", "4")]},
                ],
            }
        ],
    }  # fmt: skip
    test_file = rules_file.parent / "hdc-rules.test.yml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    out = subprocess.run(["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("am")
    notify = NotifyConfig.model_validate(
        {
            "grouping": {"wait": "1s", "interval": "1m"},
            "routes": [
                {"name": "oncall-critical", "severities": ["critical"], "urls": ["env:X"]},
                {"name": "sfax-team", "regions": ["sfax"], "language": "ar", "urls": ["env:Y"]},
            ],
        }
    )
    config = tmp / "alertmanager.yml"
    config.write_text(dump(alertmanager_config(RULES, notify, "http://127.0.0.1:9/hook")), encoding="utf-8")
    check = subprocess.run(["amtool", "check-config", str(config)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    proc = ManagedProcess(
        "alertmanager",
        ["prometheus-alertmanager", f"--config.file={config}", f"--storage.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        tmp / "alertmanager.log",
    ).start()  # fmt: skip
    try:
        proc.wait_ready(tcp_ready("127.0.0.1", port), timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def _alert(fid: str, name: str, severity: str, site: str, topology: str = "true") -> dict[str, Any]:
    fac = LAB.facility(fid)
    assert fac is not None
    return {
        "labels": {
            "alertname": name,
            "facility": fid,
            "region": fac.region,
            "kind": fac.kind.value,
            "severity": severity,
            "uplink_site": site,
            "topology": topology,
        },
        "annotations": {"summary": f"test {name} {fid}"},
    }


def test_alertmanager_routes_and_inhibits(alertmanager: str) -> None:
    alerts = [
        _alert("hu-sfax", "LinkSaturated", "warning", "pop-sfax", "false"),  # → sfax-team only
        _alert("hr-kairouan", "LinkDown", "critical", "pop-sfax"),  # → oncall-critical only (kairouan)
        _alert("pop-tunis", "LinkDown", "critical", "pop-tunis"),  # a regional outage …
        _alert("hc-la-marsa", "FacilityUnreachable", "critical", "pop-tunis"),  # … inhibits this one
    ]
    r = httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5)
    assert r.status_code == 200, r.text

    def receivers() -> dict[str, set[str]]:
        got: dict[str, set[str]] = {}
        for a in httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json():
            got[a["labels"]["facility"]] = {x["name"] for x in a["receivers"]}
        return got

    deadline = time.monotonic() + 10
    while len(receivers()) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert receivers() == {
        "hu-sfax": {"sfax-team"},
        "hr-kairouan": {"oncall-critical"},
        "pop-tunis": {"oncall-critical"},
        "hc-la-marsa": {"oncall-critical"},
    }

    def states() -> dict[str, str]:
        return {
            a["labels"]["facility"]: a["status"]["state"] for a in httpx.get(f"{alertmanager}/api/v2/alerts").json()
        }

    deadline = time.monotonic() + 10
    while states().get("hc-la-marsa") != "suppressed" and time.monotonic() < deadline:
        time.sleep(0.1)
    st = states()
    assert st["hc-la-marsa"] == "suppressed" and st["pop-tunis"] == "active" and st["hr-kairouan"] == "active"
    inhibited = [a for a in httpx.get(f"{alertmanager}/api/v2/alerts").json() if a["status"]["inhibitedBy"]]
    assert [a["labels"]["facility"] for a in inhibited] == ["hc-la-marsa"], json.dumps(inhibited)[:500]
