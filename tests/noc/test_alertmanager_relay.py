"""Sites with Prometheus: a real Alertmanager, configured from our files, relays to hdc → SMTP in French."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx

from hdc.procs import ManagedProcess, free_port, tcp_ready, wait_until
from monitor.alerting.promexport import alertmanager_config, dump
from tests.alerting.smtp import body
from tests.noc.conftest import Stack


def test_alertmanager_to_hdc_relay_to_mail(stack: Stack, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("am-relay")
    config = tmp / "alertmanager.yml"
    am_cfg = alertmanager_config(stack.alerting.rules, stack.alerting.notify, f"{stack.url}/api/alertmanager/webhook")
    config.write_text(dump(am_cfg), encoding="utf-8")
    assert subprocess.run(["amtool", "check-config", str(config)], capture_output=True).returncode == 0
    port = free_port()
    am = ManagedProcess(
        "alertmanager",
        ["prometheus-alertmanager", f"--config.file={config}", f"--storage.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        tmp / "alertmanager.log",
    ).start()  # fmt: skip
    stack.smtp.clear()
    try:
        am.wait_ready(tcp_ready("127.0.0.1", port), timeout=20)
        start = datetime.now(UTC) - timedelta(minutes=3)
        alert = {
            "labels": {
                "alertname": "LinkDown", "facility": "hr-kairouan", "region": "kairouan",
                "kind": "regional_hospital", "severity": "critical", "rule": "link-down",
                "topology": "true", "uplink_site": "pop-sfax",
            },
            "annotations": {"description": "value 2"},
            "startsAt": start.isoformat(),
        }  # fmt: skip
        r = httpx.post(f"http://127.0.0.1:{port}/api/v2/alerts", json=[alert], timeout=30)
        assert r.status_code == 200, r.text
        wait_until(lambda: len(stack.smtp.messages()) >= 1, 20, "firing mail via Alertmanager", interval=0.1)
        [msg] = stack.smtp.messages()
        assert msg["Subject"] == "[CRITIQUE] Lien coupé — Hôpital régional de Kairouan (Kairouan)"
        assert "valeur actuelle : value 2" in body(msg) and "/runbooks/alerts/link-down.md" in body(msg)

        alert["endsAt"] = datetime.now(UTC).isoformat()
        httpx.post(f"http://127.0.0.1:{port}/api/v2/alerts", json=[alert], timeout=30)
        wait_until(lambda: len(stack.smtp.messages()) >= 2, 30, "resolved mail via Alertmanager", interval=0.1)
        time.sleep(1)
        msgs = stack.smtp.messages()
        assert len(msgs) == 2 and msgs[1]["Subject"].startswith("[RÉSOLU] Lien coupé — Hôpital régional de Kairouan")
    finally:
        am.stop()


def test_webhook_is_idempotent_and_checks_the_receiver(stack: Stack) -> None:
    hook = {
        "version": "4", "receiver": "noc-fr", "status": "firing", "groupKey": "{}:{alertname=\"LinkErrors\"}",
        "alerts": [{
            "status": "firing", "fingerprint": "abc123", "startsAt": "2026-11-22T03:00:00Z",
            "labels": {"alertname": "LinkErrors", "facility": "hu-sfax", "region": "sfax", "severity": "warning",
                       "rule": "link-errors"},
            "annotations": {"description": "value 12"},
        }],
    }  # fmt: skip
    url = f"{stack.url}/api/alertmanager/webhook"
    stack.smtp.clear()
    assert httpx.post(url, json=hook, timeout=30).json() == {"queued": 1}
    assert httpx.post(url, json=hook, timeout=30).json() == {"queued": 0}  # Alertmanager's retry
    r = httpx.post(url, json={**hook, "receiver": "nobody"}, timeout=30)
    assert r.status_code == 404 and "receiver 'nobody'" in r.text
    r = httpx.post(url, json={**hook, "alerts": [{"status": "weird"}]}, timeout=30)
    assert r.status_code == 422
    wait_until(lambda: len(stack.smtp.messages()) >= 1, 20, "relayed mail", interval=0.1)
    time.sleep(0.5)
    [msg] = stack.smtp.messages()
    assert msg["Subject"] == "[AVERTISSEMENT] Erreurs sur le lien — Hôpital universitaire de Sfax (Sfax)"
