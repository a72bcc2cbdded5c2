"""Done when: a simulated link goes down → one French e-mail within two poll intervals; back up → one resolved."""

from __future__ import annotations

import time

from hdc.procs import wait_until
from tests.alerting.smtp import body
from tests.noc.conftest import Stack


def test_link_down_then_up_one_french_mail_each(stack: Stack) -> None:
    stack.smtp.clear()
    stack.sim.set_oper_status("hu-sfax", up=False)
    t_down = time.time()  # the simulated interface is down from here on (snmpset has returned)
    wait_until(lambda: len(stack.smtp.messages()) >= 1, 2 * stack.interval + 5, "firing e-mail", interval=0.05)
    arrived = time.time()
    [msg] = stack.smtp.messages()
    assert msg["Subject"] == "[CRITIQUE] Lien coupé — Hôpital universitaire de Sfax (Sfax)", (
        body(msg),
        stack.open_alerts(),
    )
    [alert] = [a for a in stack.open_alerts() if a["facility"] == "hu-sfax"]
    detect_to_mail = arrived - alert["active_since"]
    set_to_mail = arrived - t_down
    print(f"\nlink down: snmpset→mail {set_to_mail:.2f} s, detection→mail {detect_to_mail:.2f} s")
    assert set_to_mail <= 2 * stack.interval + 1.5  # two poll intervals (+ grouping wait 1 s, SMTP)
    assert "Région : Sfax" in body(msg) and "valeur actuelle : oper down" in body(msg)

    stack.sim.set_oper_status("hu-sfax", up=True)
    t_up = time.time()
    wait_until(lambda: len(stack.smtp.messages()) >= 2, 2 * stack.interval + 5, "resolved e-mail", interval=0.05)
    print(f"link up: snmpset→resolved mail {time.time() - t_up:.2f} s")
    time.sleep(2 * stack.interval)  # nothing else may arrive
    msgs = stack.smtp.messages()
    assert len(msgs) == 2 and msgs[1]["Subject"].startswith("[RÉSOLU] Lien coupé — Hôpital universitaire de Sfax")


def test_regional_outage_one_grouped_alert(stack: Stack) -> None:
    stack.smtp.clear()
    behind = ["hu-tunis-nord", "hr-ariana", "hc-la-marsa"]
    for fid in ["pop-tunis", *behind]:
        stack.sim.set_oper_status(fid, up=False)
    wait_until(lambda: len(stack.smtp.messages()) >= 1, 3 * stack.interval + 5, "regional e-mail", interval=0.1)
    time.sleep(2 * stack.interval)
    [msg] = stack.smtp.messages()
    assert "Point de présence régional de Tunis" in msg["Subject"]
    assert "Panne régionale" in body(msg) and "3 établissement(s) derrière lui" in body(msg)
    alerts = {a["facility"]: a for a in stack.open_alerts()}
    assert {f: alerts[f]["state"] for f in behind} == dict.fromkeys(behind, "suppressed")
    # the site comes back, la Marsa stays down: it now alerts on its own
    for fid in ["pop-tunis", "hu-tunis-nord", "hr-ariana"]:
        stack.sim.set_oper_status(fid, up=True)
    wait_until(lambda: len(stack.smtp.messages()) >= 3, 3 * stack.interval + 5, "marsa + resolved", interval=0.1)
    subjects = sorted(m["Subject"] for m in stack.smtp.messages())
    assert any("La Marsa" in s and s.startswith("[CRITIQUE]") for s in subjects), subjects
    assert any(s.startswith("[RÉSOLU]") and "Tunis" in s for s in subjects), subjects
    stack.sim.set_oper_status("hc-la-marsa", up=True)
    wait_until(lambda: not stack.open_alerts(), 3 * stack.interval + 5, "all resolved", interval=0.1)


def test_rules_and_dashboard_use_metrics_the_monitor_exports(stack: Stack) -> None:
    """The seam with the exporter: every metric the Prometheus rules and the Grafana dashboard read exists."""
    import dataclasses
    import json
    import re
    from pathlib import Path

    from monitor.alerting.promexport import MetricNames

    scrape = stack.api("/metrics").text
    exported = {line.split("{")[0].split(" ")[0] for line in scrape.splitlines() if line and not line.startswith("#")}
    wanted = {f.default for f in dataclasses.fields(MetricNames)}
    dashboard = Path(__file__).resolve().parents[2] / "monitor" / "grafana" / "hdc-network.json"
    json.loads(dashboard.read_text(encoding="utf-8"))
    wanted |= set(re.findall(r"\bhdc_[a-z_]+", dashboard.read_text(encoding="utf-8")))
    assert wanted - exported == set()
    sample = next(line for line in scrape.splitlines() if line.startswith("hdc_link_up{"))
    for label in ("facility=", "region=", "kind="):
        assert label in sample
