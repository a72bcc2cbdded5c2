"""The engine fed with LinkState snapshots and a clock the test controls."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.loader import load_catalog
from monitor.alerting import AlertEngine, Store
from monitor.rules import load_rules
from monitor.rules.schema import RuleFile
from monitor.state import LinkState
from tests.alerting.helpers import down, storm_catalog, unreachable, up

T0 = 1_800_000_000.0
LAB = load_catalog("lab")
POLLED = [f.id for f in LAB.polled_facilities()]


def snap(now: float, **special: LinkState) -> dict[str, LinkState]:
    out = {fid: up(fid, now) for fid in POLLED}
    out.update({k.replace("_", "-"): v for k, v in special.items()})
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "alerts.db")
    yield s
    s.close()


@pytest.fixture
def engine(store: Store) -> AlertEngine:
    return AlertEngine(LAB, load_rules(), store)


def events(store: Store) -> list[tuple[str, str, str]]:
    rows = store.db.execute("SELECT kind, rule, facility FROM events ORDER BY id").fetchall()
    return [(r["kind"], r["rule"], r["facility"]) for r in rows]


def test_link_down_fires_once_and_resolves_once(engine: AlertEngine, store: Store) -> None:
    engine.evaluate(snap(T0), T0)
    assert store.open_alerts() == []
    for i in range(1, 4):
        t = T0 + 10 * i
        engine.evaluate(snap(t, hc_la_marsa=down("hc-la-marsa", t)), t)
    assert events(store) == [("firing", "link-down", "hc-la-marsa")]
    [alert] = store.open_alerts()
    assert (alert.state, alert.active_since, alert.value_text) == ("firing", T0 + 10, "oper down")
    engine.evaluate(snap(T0 + 50), T0 + 50)
    assert events(store)[-1] == ("resolved", "link-down", "hc-la-marsa")
    assert len(events(store)) == 2 and store.open_alerts() == []


def test_unreachable_needs_consecutive_failures(engine: AlertEngine, store: Store) -> None:
    for n in (1, 2):
        engine.evaluate(snap(T0 + n, hu_sfax=unreachable("hu-sfax", T0 + n, n)), T0 + n)
    assert events(store) == []
    engine.evaluate(snap(T0 + 3, hu_sfax=unreachable("hu-sfax", T0 + 3, 3)), T0 + 3)
    assert events(store) == [("firing", "facility-unreachable", "hu-sfax")]


def test_utilisation_for_and_hysteresis(engine: AlertEngine, store: Store) -> None:
    def at(minute: float, u: float) -> None:
        t = T0 + minute * 60
        engine.evaluate(snap(t, hu_sfax=up("hu-sfax", t, utilisation=u)), t)

    at(0, 0.9)
    at(9, 0.95)
    assert events(store) == []  # not yet 10 minutes
    at(10, 0.85)
    assert events(store) == [("firing", "link-saturated", "hu-sfax")]
    at(11, 0.75)  # inside the hysteresis band: still firing, clear timer not started
    at(12, 0.60)
    at(16, 0.65)  # clear for 4 minutes only
    assert len(events(store)) == 1
    at(17, 0.65)
    assert events(store)[-1] == ("resolved", "link-saturated", "hu-sfax")


def test_short_spike_never_fires(engine: AlertEngine, store: Store) -> None:
    for minute, u in ((0, 0.9), (5, 0.95), (6, 0.5), (20, 0.5)):
        t = T0 + minute * 60
        engine.evaluate(snap(t, hu_sfax=up("hu-sfax", t, utilisation=u)), t)
    assert events(store) == [] and store.open_alerts() == []


def test_missing_rate_changes_nothing(engine: AlertEngine, store: Store) -> None:
    for minute, u in ((0, 0.9), (10, 0.9), (11, None), (30, None)):
        t = T0 + minute * 60
        engine.evaluate(snap(t, hu_sfax=up("hu-sfax", t, utilisation=u)), t)
    assert events(store) == [("firing", "link-saturated", "hu-sfax")]
    assert store.open_alerts()[0].state == "firing"


def test_flapping(engine: AlertEngine, store: Store) -> None:
    t = T0
    engine.evaluate(snap(t), t)
    for i in range(4):
        t += 60
        engine.evaluate(snap(t, hr_ariana=down("hr-ariana", t)) if i % 2 == 0 else snap(t), t)
    kinds = [e for e in events(store) if e[1] == "link-flapping"]
    assert kinds == [("firing", "link-flapping", "hr-ariana")]
    t += 16 * 60
    engine.evaluate(snap(t), t)  # window empties; clear starts
    t += 15 * 60
    engine.evaluate(snap(t), t)
    assert [e for e in events(store) if e[1] == "link-flapping"][-1][0] == "resolved"


def test_topology_suppresses_children_and_releases_them(engine: AlertEngine, store: Store) -> None:
    t = T0
    children = ["hu-tunis-nord", "hr-ariana", "hc-la-marsa"]
    s = snap(t) | {"pop-tunis": down("pop-tunis", t)} | {c: unreachable(c, t, 3) for c in children}
    engine.evaluate(s, t)
    assert events(store) == [("firing", "link-down", "pop-tunis")]
    states = {a.facility: (a.state, a.suppressed_by) for a in store.open_alerts()}
    assert states == {"pop-tunis": ("firing", None)} | {c: ("suppressed", "pop-tunis") for c in children}
    payload = store.db.execute("SELECT payload FROM events").fetchone()["payload"]
    assert '"children": 3' in payload
    # the site comes back; la Marsa is still cut off and now alerts on its own, the others recovered
    t += 30
    s = snap(t) | {"hc-la-marsa": unreachable("hc-la-marsa", t, 4)}
    engine.evaluate(s, t)
    assert sorted(events(store)[1:]) == [
        ("firing", "facility-unreachable", "hc-la-marsa"),
        ("resolved", "link-down", "pop-tunis"),
    ]
    assert {a.facility: a.state for a in store.open_alerts()} == {"hc-la-marsa": "firing"}


def test_silence_then_expiry_notifies_late_and_resolve_follows(engine: AlertEngine, store: Store) -> None:
    s = store.add_silence(
        facility=None,
        region="sfax",
        rule=None,
        starts_at=T0,
        ends_at=T0 + 100,
        reason="maintenance fibre",
        created_by="noc",
        now=T0,
    )
    engine.evaluate(snap(T0 + 10, hu_sfax=down("hu-sfax", T0 + 10)), T0 + 10)
    [a] = store.open_alerts()
    assert (a.state, a.silenced_by, a.notified) == ("firing", s.id, False)
    assert events(store) == []
    engine.evaluate(snap(T0 + 150, hu_sfax=down("hu-sfax", T0 + 150)), T0 + 150)
    assert events(store) == [("firing", "link-down", "hu-sfax")]


def test_silenced_alert_that_resolves_sends_nothing(engine: AlertEngine, store: Store) -> None:
    store.add_silence(
        facility="hu-sfax", region=None, rule="link-down", starts_at=T0, ends_at=T0 + 1000,
        reason="r", created_by="noc", now=T0,
    )  # fmt: skip
    engine.evaluate(snap(T0 + 10, hu_sfax=down("hu-sfax", T0 + 10)), T0 + 10)
    engine.evaluate(snap(T0 + 20), T0 + 20)
    assert events(store) == [] and store.open_alerts() == []


def test_restart_does_not_refire_and_still_resolves(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    first = Store(path)
    AlertEngine(LAB, load_rules(), first).evaluate(snap(T0, hu_sfax=down("hu-sfax", T0)), T0)
    first.close()
    second = Store(path)
    engine = AlertEngine(LAB, load_rules(), second)
    engine.evaluate(snap(T0 + 10, hu_sfax=down("hu-sfax", T0 + 10)), T0 + 10)
    assert events(second) == [("firing", "link-down", "hu-sfax")]
    engine.evaluate(snap(T0 + 20), T0 + 20)
    assert events(second)[-1] == ("resolved", "link-down", "hu-sfax")
    second.close()


def test_ack_is_kept_by_engine_updates(engine: AlertEngine, store: Store) -> None:
    engine.evaluate(snap(T0, hu_sfax=down("hu-sfax", T0)), T0)
    [a] = store.open_alerts()
    assert store.acknowledge(a.id, "amel", "on it", T0 + 1) is not None
    engine.evaluate(snap(T0 + 10, hu_sfax=unreachable("hu-sfax", T0 + 10, 1)), T0 + 10)
    engine.evaluate(snap(T0 + 20, hu_sfax=down("hu-sfax", T0 + 20)), T0 + 20)
    [b] = store.open_alerts()
    assert (b.ack_by, b.ack_comment) == ("amel", "on it")


def test_rule_removed_resolves_open_alert(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    AlertEngine(LAB, load_rules(), store).evaluate(snap(T0, hu_sfax=down("hu-sfax", T0)), T0)
    rules = load_rules()
    fewer = RuleFile(rules=[r for r in rules.rules if r.id != "link-down"])
    AlertEngine(LAB, fewer, store).evaluate(snap(T0 + 5), T0 + 5)
    assert events(store)[-1] == ("resolved", "link-down", "hu-sfax")
    store.close()


def test_storm_of_300_without_parent_down(tmp_path: Path) -> None:
    cat = storm_catalog(300)
    store = Store(tmp_path / "a.db")
    engine = AlertEngine(cat, load_rules(), store)
    ids = [f.id for f in cat.polled_facilities()]
    s = {i: up(i, T0) for i in ids}
    engine.evaluate(s, T0)
    s2 = dict(s)
    for i in ids[1:301]:
        s2[i] = down(i, T0 + 30)
    engine.evaluate(s2, T0 + 30)
    assert len(events(store)) == 300
    store.close()


def test_maintenance_window_in_the_future(engine: AlertEngine, store: Store) -> None:
    """A window starting later does not hide a cut now; during the window a new cut stays quiet."""
    store.add_silence(
        facility="hc-la-marsa", region=None, rule=None, starts_at=T0 + 3600, ends_at=T0 + 7200,
        reason="router replacement", created_by="noc", now=T0,
    )  # fmt: skip
    engine.evaluate(snap(T0, hc_la_marsa=down("hc-la-marsa", T0)), T0)
    assert events(store) == [("firing", "link-down", "hc-la-marsa")]
    engine.evaluate(snap(T0 + 60), T0 + 60)
    t = T0 + 3700
    engine.evaluate(snap(t, hc_la_marsa=down("hc-la-marsa", t)), t)
    assert len(events(store)) == 2  # firing + resolved of the first cut only
    [a] = store.open_alerts()
    assert a.silenced_by is not None and not a.notified


def test_reminders_until_acknowledged_never_while_silenced(engine: AlertEngine, store: Store) -> None:
    hours = 3600.0
    engine.evaluate(snap(T0, hc_la_marsa=down("hc-la-marsa", T0)), T0)
    for h in (1, 3.9):
        engine.evaluate(snap(T0 + h * hours, hc_la_marsa=down("hc-la-marsa", T0)), T0 + h * hours)
    assert [k for k, _, _ in events(store)] == ["firing"]  # the default rule repeats every 4 h
    engine.evaluate(snap(T0 + 4 * hours, hc_la_marsa=down("hc-la-marsa", T0)), T0 + 4 * hours)
    engine.evaluate(snap(T0 + 5 * hours, hc_la_marsa=down("hc-la-marsa", T0)), T0 + 5 * hours)
    assert [k for k, _, _ in events(store)] == ["firing", "reminder"]
    payload = store.db.execute("SELECT payload FROM events WHERE kind = 'reminder'").fetchone()[0]
    assert '"reminded_at": ' + str(T0 + 4 * hours) in payload
    # silenced over the next reminder time: nothing, and the reminder comes once the silence ends
    s = store.add_silence(facility="hc-la-marsa", region=None, rule=None, starts_at=T0 + 5 * hours,
                          ends_at=T0 + 9 * hours, reason="works", created_by="amel", now=T0 + 5 * hours)  # fmt: skip
    engine.evaluate(snap(T0 + 8 * hours, hc_la_marsa=down("hc-la-marsa", T0)), T0 + 8 * hours)
    assert [k for k, _, _ in events(store)] == ["firing", "reminder"]
    assert store.open_alerts()[0].silenced_by == s.id
    engine.evaluate(snap(T0 + 9 * hours, hc_la_marsa=down("hc-la-marsa", T0)), T0 + 9 * hours)
    assert [k for k, _, _ in events(store)] == ["firing", "reminder", "reminder"]
    # acknowledged: no more reminders; the resolve is still told
    [alert] = store.open_alerts()
    store.acknowledge(alert.id, "amel", "on it", T0 + 9.5 * hours)
    engine.evaluate(snap(T0 + 20 * hours, hc_la_marsa=down("hc-la-marsa", T0)), T0 + 20 * hours)
    engine.evaluate(snap(T0 + 21 * hours), T0 + 21 * hours)
    assert [k for k, _, _ in events(store)] == ["firing", "reminder", "reminder", "resolved"]


def test_rules_without_repeat_tell_once(store: Store) -> None:
    rules = load_rules()
    no_repeat = RuleFile.model_validate(
        {
            **rules.model_dump(by_alias=True),
            "rules": [r.model_dump(by_alias=True) | {"repeat": None} for r in rules.rules],
        }
    )
    engine = AlertEngine(LAB, no_repeat, store)
    for h in range(0, 30, 3):
        t = T0 + h * 3600.0
        engine.evaluate(snap(t, hc_la_marsa=down("hc-la-marsa", t)), t)
    assert [k for k, _, _ in events(store)] == ["firing"]


def test_state_file_from_before_reminders_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    Store(path).close()
    db = sqlite3.connect(path)  # make it look like a schema 1 file with a notified alert
    db.executescript(
        "CREATE TABLE a2 AS SELECT * FROM alerts; DROP TABLE alerts;"
        "CREATE TABLE alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, facility TEXT NOT NULL,"
        " region TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL, active_since REAL NOT NULL,"
        " fired_at REAL, clear_since REAL, resolved_at REAL, value REAL, value_text TEXT NOT NULL DEFAULT '',"
        " notified INTEGER NOT NULL DEFAULT 0, suppressed_by TEXT, silenced_by INTEGER,"
        " children INTEGER NOT NULL DEFAULT 0, ack_by TEXT, ack_at REAL, ack_comment TEXT, updated_at REAL NOT NULL);"
        f"INSERT INTO alerts (rule, facility, region, severity, state, active_since, fired_at, notified, updated_at)"
        f" VALUES ('link-down', 'hc-la-marsa', 'tunis', 'critical', 'firing', {T0}, {T0}, 1, {T0});"
        "DROP TABLE events; CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL,"
        " kind TEXT NOT NULL CHECK (kind IN ('firing', 'resolved')), rule TEXT NOT NULL, region TEXT NOT NULL,"
        " facility TEXT NOT NULL, severity TEXT NOT NULL, created_at REAL NOT NULL, payload TEXT NOT NULL,"
        " group_id INTEGER);"
        f"INSERT INTO events (alert_id, kind, rule, region, facility, severity, created_at, payload, group_id)"
        f" VALUES (1, 'firing', 'link-down', 'tunis', 'hc-la-marsa', 'critical', {T0}, '{{}}', 7);"
        "UPDATE meta SET value = '1' WHERE key = 'schema';"
    )
    db.commit()
    db.close()
    store = Store(path)
    try:
        [alert] = store.open_alerts()
        assert alert.last_notified_at == T0
        assert store.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "2"
        engine = AlertEngine(LAB, load_rules(), store)
        t = T0 + 4 * 3600.0
        engine.evaluate(snap(t, hc_la_marsa=down("hc-la-marsa", t)), t)
        assert [k for k, _, _ in events(store)] == ["firing", "reminder"]  # the old event kept, then a reminder
    finally:
        store.close()
