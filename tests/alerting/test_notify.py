"""Notifications delivered to a real SMTP server: grouping, languages, outages, restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.loader import load_catalog
from monitor.alerting import AlertEngine, Store
from monitor.notify import Outbox, load_notify_config
from monitor.notify.render import render
from monitor.rules import RulesError, load_rules
from tests.alerting.helpers import down, storm_catalog, up
from tests.alerting.smtp import Smtp, body

T0 = 1_800_000_000.0
LAB = load_catalog("lab")
POLLED = [f.id for f in LAB.polled_facilities()]


def snap(now: float, downs: tuple[str, ...] = ()) -> dict:
    return {fid: down(fid, now) if fid in downs else up(fid, now) for fid in POLLED}


PAYLOAD = {
    "alert_id": 1,
    "rule": "link-down",
    "title": {"fr": "Lien coupé", "ar": "انقطاع الرابط", "en": "Link down"},
    "runbook": "runbooks/alerts/link-down.md",
    "severity": "critical",
    "facility": "hu-sfax",
    "facility_name": "Hôpital universitaire de Sfax",
    "facility_name_ar": "المستشفى الجامعي بصفاقس",
    "facility_kind": "university_hospital",
    "region": "sfax",
    "since": T0,
    "fired_at": T0,
    "resolved_at": None,
    "value": 0.0,
    "value_text": "oper down",
    "aggregation": False,
    "children": 0,
    "children_names": [],
    "children_names_ar": [],
}


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("fr", ["Lien coupé", "Hôpital universitaire de Sfax", "Région : Sfax", "depuis : 2027-01-15", "CRITIQUE"]),
        ("ar", ["انقطاع الرابط", "المستشفى الجامعي بصفاقس", "صفاقس", "منذ: 2027-01-15", "حرج"]),
        ("en", ["Link down", "Hôpital universitaire de Sfax", "Region: Sfax", "since: 2027-01-15", "CRITICAL"]),
    ],
)
def test_render_each_language(lang: str, words: list[str]) -> None:
    title, text = render(
        kind="firing", payloads=[PAYLOAD], lang=lang, catalog=LAB, noc_url="http://noc:9110", max_names=5, ref="g1"
    )
    for w in words:
        assert w in title + text
    assert "oper down" in text
    assert "http://noc:9110/runbooks/alerts/link-down.md" in text


def test_short_form_for_sms() -> None:
    title, text = render(
        kind="firing", payloads=[PAYLOAD], lang="fr", catalog=LAB, noc_url="http://noc", max_names=5, ref="g1-sms-0",
        short=True,
    )  # fmt: skip
    assert "\n" not in text and text.startswith(title) and "http://noc/runbooks/alerts/link-down.md" in text
    assert len(text) < 200


def test_routes_file_errors_name_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "routes.yaml"
    bad.write_text(
        "version: 1\nroutes:\n  - name: noc\n    language: de\n    urls: ['mailto://u:secret@host']\n", encoding="utf-8"
    )
    with pytest.raises(RulesError) as err:
        load_notify_config(bad)
    text = str(err.value)
    assert "routes.yaml:4: routes[0].language" in text
    assert "routes.yaml:5: routes[0].urls" in text and "env:NAME" in text
    assert "secret" not in text


def test_firing_then_resolved_one_mail_each_in_french(mail: Smtp, routes_file: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    engine = AlertEngine(LAB, load_rules(), store)
    outbox = Outbox(store, load_notify_config(routes_file), LAB)
    engine.evaluate(snap(T0, ("hu-sfax",)), T0)
    assert outbox.pump_sync(T0 + 1) == 0  # grouping wait (20 s) not over
    assert outbox.pump_sync(T0 + 21) == 1
    [msg] = mail.messages()
    assert msg["Subject"] == "[CRITIQUE] Lien coupé — Hôpital universitaire de Sfax (Sfax)"
    text = body(msg)
    assert text.splitlines()[:2] == ["ALERTE CRITIQUE : Lien coupé", "Région : Sfax"], text
    assert "valeur actuelle : oper down" in text
    sfax = LAB.facility("hu-sfax")
    assert sfax is not None and sfax.link is not None and sfax.contact is not None
    assert f"  circuit : Tunisie Telecom {sfax.link.circuit_id}\n" in text
    assert f"  appeler : {sfax.contact.name}, {sfax.contact.phone}\n" in text
    assert "http://noc.example.org:9110/runbooks/alerts/link-down.md" in text
    assert msg["X-HDC-Notification"] == "g1-noc-fr-0"
    engine.evaluate(snap(T0 + 60), T0 + 60)
    assert outbox.pump_sync(T0 + 60) == 0
    assert outbox.pump_sync(T0 + 80) == 1
    msgs = mail.messages()
    assert len(msgs) == 2 and msgs[1]["Subject"].startswith("[RÉSOLU] Lien coupé")
    assert outbox.pump_sync(T0 + 1000) == 0 and len(mail.messages()) == 2
    store.close()


@pytest.mark.parametrize(
    ("lang", "title", "first_line", "lasted"),
    [
        ("fr", "[RAPPEL · CRITIQUE] Lien coupé", "RAPPEL (toujours active, non acquittée) — ALERTE CRITIQUE", "(4 h 00 min)"),
        ("ar", "[تذكير · حرج] انقطاع الرابط", "تذكير (ما زال نشطًا ولم يُقَرّ به) — تنبيه حرج", "(4 ساعة 00 دقيقة)"),
        ("en", "[REMINDER · CRITICAL] Link down", "REMINDER (still firing, not acknowledged) — CRITICAL ALERT", "(4 h 00 min)"),
    ],
)  # fmt: skip
def test_render_reminders(lang: str, title: str, first_line: str, lasted: str) -> None:
    payload = PAYLOAD | {"reminded_at": T0 + 4 * 3600}
    got_title, text = render(
        kind="reminder", payloads=[payload], lang=lang, catalog=LAB, noc_url="http://noc", max_names=5, ref="g9"
    )
    assert got_title.startswith(title)
    assert text.startswith(first_line)
    assert lasted in text


def test_reminder_mail_after_four_hours_unacknowledged(mail: Smtp, routes_file: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    engine = AlertEngine(LAB, load_rules(), store)
    outbox = Outbox(store, load_notify_config(routes_file), LAB)
    engine.evaluate(snap(T0, ("hu-sfax",)), T0)
    assert outbox.pump_sync(T0 + 1) == 0  # opens the group (20 s grouping wait)
    assert outbox.pump_sync(T0 + 21) == 1
    later = T0 + 4 * 3600
    engine.evaluate(snap(later, ("hu-sfax",)), later)
    assert outbox.pump_sync(later + 1) == 0
    assert outbox.pump_sync(later + 21) == 1
    msgs = mail.messages()
    assert (
        len(msgs) == 2 and msgs[1]["Subject"] == "[RAPPEL · CRITIQUE] Lien coupé — Hôpital universitaire de Sfax (Sfax)"
    )
    assert "depuis : " in body(msgs[1]) and "(4 h 00 min)" in body(msgs[1])
    store.close()


def test_storm_of_300_is_one_message(mail: Smtp, routes_file: Path, tmp_path: Path) -> None:
    cat = storm_catalog(300)
    store = Store(tmp_path / "a.db")
    engine = AlertEngine(cat, load_rules(), store)
    outbox = Outbox(store, load_notify_config(routes_file), cat)
    ids = [f.id for f in cat.polled_facilities() if f.id.startswith("csb-")]
    everyone = {f.id: up(f.id, T0) for f in cat.polled_facilities()}
    engine.evaluate(everyone, T0)
    # 300 centres of Gafsa go down over 15 s, in three poll cycles (their aggregation site stays up)
    for k, t in enumerate((T0 + 5, T0 + 10, T0 + 15)):
        snapshot = dict(everyone) | {i: down(i, t) for i in ids[: 100 * (k + 1)]}
        engine.evaluate(snapshot, t)
        outbox.pump_sync(t)
    assert outbox.pump_sync(T0 + 30) == 1
    [msg] = mail.messages()
    assert msg["Subject"] == "[CRITIQUE] Lien coupé — 300 établissements (Gafsa)"
    text = body(msg)
    assert "Établissements concernés : 300" in text and "… et 295 autre(s)" in text
    store.close()


def test_regional_outage_is_one_alert(mail: Smtp, routes_file: Path, tmp_path: Path) -> None:
    cat = storm_catalog(300)
    store = Store(tmp_path / "a.db")
    engine = AlertEngine(cat, load_rules(), store)
    outbox = Outbox(store, load_notify_config(routes_file), cat)
    ids = [f.id for f in cat.polled_facilities()]
    snapshot = {i: down(i, T0) for i in ids if i != "hr-tozeur"} | {"hr-tozeur": up("hr-tozeur", T0)}
    cycle = engine.evaluate(snapshot, T0)
    assert [a.facility for _, a in cycle.notified] == ["pop-gafsa"] and len(cycle.suppressed) == 300
    assert outbox.pump_sync(T0) == 0
    assert outbox.pump_sync(T0 + 30) == 1
    [msg] = mail.messages()
    text = body(msg)
    assert "Panne régionale" in text and "300 établissement(s) derrière lui" in text
    store.close()


def test_smtp_down_ten_minutes_then_everything_exactly_once(smtp: Smtp, routes_file: Path, tmp_path: Path) -> None:
    smtp.clear()
    store = Store(tmp_path / "a.db")
    engine = AlertEngine(LAB, load_rules(), store)
    cfg = load_notify_config(routes_file)
    cfg = cfg.model_copy(update={"delivery": cfg.delivery.model_copy(update={"retry_max": 120.0})})
    outbox = Outbox(store, cfg, LAB)
    smtp.stop()
    try:
        t = T0
        engine.evaluate(snap(t, ("hu-sfax",)), t)
        t += 60
        engine.evaluate(snap(t, ("hu-sfax", "hc-la-marsa")), t)
        t += 60
        engine.evaluate(snap(t, ("hc-la-marsa",)), t)  # hu-sfax resolved meanwhile
        while t < T0 + 600:  # ten minutes of failed deliveries, retried with back-off
            t += 5
            assert outbox.pump_sync(t) == 0
        rows = store.db.execute("SELECT status, attempts, last_error FROM outbox").fetchall()
        assert rows and all(r["status"] == "pending" and r["attempts"] >= 3 for r in rows)
        assert "refused or unreachable" in rows[0]["last_error"]
    finally:
        smtp.start()
    t += 121  # past the back-off cap
    delivered = outbox.pump_sync(t) + outbox.pump_sync(t + 100)
    subjects = sorted(m["Subject"] for m in smtp.messages())
    assert delivered == len(subjects) == 3
    assert sum("RÉSOLU" in s for s in subjects) == 1
    assert outbox.pump_sync(t + 1000) == 0 and len(smtp.messages()) == 3
    store.close()


def test_restart_keeps_queue_and_crash_mid_send_retries_once(mail: Smtp, routes_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = Store(path)
    AlertEngine(LAB, load_rules(), store).evaluate(snap(T0, ("hu-sfax",)), T0)
    outbox = Outbox(store, load_notify_config(routes_file), LAB)
    outbox.group_events(T0)
    outbox.flush_groups(T0 + 30)
    [row] = outbox.due(T0 + 30)
    outbox.begin_attempt(row, T0 + 30)  # … and the process dies before sending
    store.close()
    store = Store(path)
    engine = AlertEngine(LAB, load_rules(), store)
    engine.evaluate(snap(T0 + 40, ("hu-sfax",)), T0 + 40)  # still down: no second firing
    outbox = Outbox(store, load_notify_config(routes_file), LAB)
    assert outbox.pump_sync(T0 + 31) == 0  # waits for its back-off
    assert outbox.pump_sync(T0 + 40) == 1
    assert len(mail.messages()) == 1
    assert store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    store.close()


def test_shipped_example_routes_file_is_valid() -> None:
    from monitor.notify.config import NotifyConfig

    path = Path(__file__).resolve().parents[2] / "monitor" / "notify" / "routes.example.yaml"
    cfg = load_notify_config(path)
    assert isinstance(cfg, NotifyConfig) and {r.language for r in cfg.routes} == {"fr", "ar", "en"}
    assert [r.name for r in cfg.routes_for("critical", "sfax")] == [
        "noc-oncall",
        "noc-oncall-sms",
        "sfax-regional-team",
    ]


def test_a_destination_that_hangs_times_out_and_is_retried(
    routes_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SMTP server that accepts the connection and never answers must not stall the queue."""
    import socket
    import threading
    import time

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # keep it open, say nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    monkeypatch.setenv("HDC_TEST_NOC_EMAIL", f"mailto://127.0.0.1:{port}?from=noc@example.org&to=oncall@example.org")
    store = Store(tmp_path / "a.db")
    cfg = load_notify_config(routes_file)
    cfg = cfg.model_copy(update={"delivery": cfg.delivery.model_copy(update={"timeout": 1.0})})
    outbox = Outbox(store, cfg, LAB)
    try:
        AlertEngine(LAB, load_rules(), store).evaluate(snap(T0, ("hu-sfax",)), T0)
        outbox.pump_sync(T0)
        started = time.monotonic()
        assert outbox.pump_sync(T0 + 30) == 0
        assert time.monotonic() - started < 10
        row = store.db.execute("SELECT status, attempts, last_error FROM outbox").fetchone()
        assert (row["status"], row["attempts"]) == ("pending", 1) and row["last_error"]
    finally:
        stop.set()
        thread.join(timeout=5)
        for c in held:
            c.close()
        server.close()
        store.close()
