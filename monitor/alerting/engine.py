"""The alert engine: LinkState snapshots in, alert state transitions and notification events out.

Generic over the rule kinds (see `conditions.py`); the clock is a parameter so tests drive
it with snapshots and a `now` they choose. Every cycle is one SQLite transaction: the alert
rows and the notification events they cause are written together, so a crash can neither
lose a notification nor make a restarted engine fire an alert again.

Topology: a facility whose aggregation site (catalog `link.parent`, walked upwards) is down
does not alert on its own; its alert is recorded as `suppressed` (visible on the NOC page)
and the aggregation site's alert stands for the region. When the site comes back, children
that are still down fire on their own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inventory.model import Catalog, Facility, FacilityKind
from monitor.rules.schema import Rule, RuleFile, RuleKind
from monitor.state import LinkState

from .conditions import Reading, parent_down, read
from .store import Alert, Silence, Store

log = logging.getLogger(__name__)
MAX_NAMES_IN_PAYLOAD = 20


@dataclass
class Cycle:
    """What one evaluation changed (for logs, metrics and tests)."""

    fired: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    suppressed: list[Alert] = field(default_factory=list)
    silenced: list[Alert] = field(default_factory=list)
    notified: list[tuple[str, Alert]] = field(default_factory=list)


def facility_reach(fac: Facility | None) -> dict[str, str]:
    """What the NOC needs to act: the operator's circuit (to open a ticket) and whom to call on site."""
    link = fac.link if fac is not None else None
    out = {"provider": "", "circuit_id": "", "contact_name": "", "contact_phone": ""}
    if link is not None:
        out["provider"], out["circuit_id"] = link.provider or "", link.circuit_id or ""
    if fac is not None and fac.contact is not None:
        out["contact_name"], out["contact_phone"] = fac.contact.name, fac.contact.phone
    return out


def _tracked(alert: Alert) -> tuple[object, ...]:
    """The engine-owned fields whose change means the row must be written."""
    return (
        alert.state,
        alert.notified,
        alert.suppressed_by,
        alert.silenced_by,
        alert.clear_since,
        alert.last_notified_at,
    )


class AlertEngine:
    def __init__(self, catalog: Catalog, rules: RuleFile, store: Store) -> None:
        self.catalog = catalog
        self.rules = rules.enabled()
        self.store = store
        self.facilities: dict[str, Facility] = {f.id: f for f in catalog.polled_facilities()}
        self._all: dict[str, Facility] = {f.id: f for f in catalog.facilities}
        self.children: dict[str, list[Facility]] = {}
        for fac in self.facilities.values():
            if fac.link is not None and fac.link.parent:
                self.children.setdefault(fac.link.parent, []).append(fac)
        self.flap_window = max((r.window or 0.0 for r in self.rules if r.kind is RuleKind.FLAPPING), default=0.0)
        self._flaps = store.flaps()

    # --- helpers ------------------------------------------------------------------------------
    def _applies(self, rule: Rule, fac: Facility) -> bool:
        return rule.applies_to is None or fac.kind in rule.applies_to

    def _down_ancestor(self, fac: Facility, snapshot: Mapping[str, LinkState]) -> str | None:
        """The topmost aggregation site in front of `fac` that is down (the one that explains the outage)."""
        found = None
        seen = {fac.id}
        parent = fac.link.parent if fac.link else None
        while parent and parent not in seen:
            seen.add(parent)
            if parent_down(snapshot.get(parent)):
                found = parent
            up = self._all.get(parent)
            parent = up.link.parent if up is not None and up.link is not None else None
        return found

    def _flap_count(self, fac_id: str, window: float, now: float) -> int:
        _, changes = self._flaps.get(fac_id, (True, []))
        return sum(1 for t in changes if t > now - window)

    def _update_flaps(self, db: Any, snapshot: Mapping[str, LinkState], now: float) -> None:
        if not self.flap_window:
            return
        for fac_id, ls in snapshot.items():
            if fac_id not in self.facilities or (not ls.reachable and ls.consecutive_failures == 0):
                continue
            up = ls.link_up
            prev = self._flaps.get(fac_id)
            if prev is None:
                self._flaps[fac_id] = (up, [])
                self.store.save_flap(db, fac_id, up, [])
                continue
            last_up, changes = prev
            kept = [t for t in changes if t > now - self.flap_window]
            if up != last_up:
                kept.append(now)
            if up != last_up or len(kept) != len(changes):
                self._flaps[fac_id] = (up, kept)
                self.store.save_flap(db, fac_id, up, kept)

    def payload(self, alert: Alert, rule: Rule | None) -> dict[str, Any]:
        """Everything a message needs, frozen at the time of the event (the rule file may change later)."""
        fac = self._all.get(alert.facility)
        kids = self.children.get(alert.facility, [])
        return {
            "alert_id": alert.id,
            "rule": alert.rule,
            "title": rule.title.model_dump() if rule else {"fr": alert.rule, "ar": alert.rule, "en": alert.rule},
            "runbook": rule.runbook if rule else "",
            "severity": alert.severity,
            "facility": alert.facility,
            "facility_name": fac.name if fac else alert.facility,
            "facility_name_ar": fac.name_ar if fac else alert.facility,
            "facility_kind": fac.kind.value if fac else "",
            "region": alert.region,
            "since": alert.active_since,
            "fired_at": alert.fired_at,
            "resolved_at": alert.resolved_at,
            "value": alert.value,
            "value_text": alert.value_text,
            "aggregation": bool(fac and fac.kind is FacilityKind.AGGREGATION_SITE),
            "children": len(kids),
            "children_names": [k.name for k in kids[:MAX_NAMES_IN_PAYLOAD]],
            "children_names_ar": [k.name_ar for k in kids[:MAX_NAMES_IN_PAYLOAD]],
            **facility_reach(fac),
        }

    def _silence_for(self, alert: Alert, silences: list[Silence], now: float) -> Silence | None:
        return next(
            (s for s in silences if s.active(now) and s.matches(alert.rule, alert.facility, alert.region)), None
        )

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate(self, snapshot: Mapping[str, LinkState], now: float) -> Cycle:
        cycle = Cycle()
        silences = self.store.silences(now)
        open_alerts = {(a.rule, a.facility): a for a in self.store.open_alerts()}
        rules_by_id = {r.id: r for r in self.rules}
        with self.store.tx() as db:
            self._update_flaps(db, snapshot, now)
            for fac in self.facilities.values():
                ls = snapshot.get(fac.id)
                for rule in self.rules:
                    if not self._applies(rule, fac):
                        continue
                    flaps = self._flap_count(fac.id, rule.window, now) if rule.window else 0
                    reading = read(rule, ls, flaps)
                    alert = open_alerts.pop((rule.id, fac.id), None)
                    if alert is None and not reading.bad:
                        continue
                    if alert is None:
                        alert = Alert(
                            id=0,
                            rule=rule.id,
                            facility=fac.id,
                            region=fac.region,
                            severity=rule.severity.value,
                            state="pending",
                            active_since=now,
                            fired_at=None,
                            clear_since=None,
                            resolved_at=None,
                            value=reading.value,
                            value_text=reading.text,
                            notified=False,
                            suppressed_by=None,
                            silenced_by=None,
                            children=len(self.children.get(fac.id, [])),
                            ack_by=None,
                            ack_at=None,
                            ack_comment=None,
                            updated_at=now,
                        )
                        self.store.insert_alert(db, alert)
                    self._step(db, alert, rule, fac, reading, snapshot, silences, now, cycle)
            # open alerts whose rule or facility left the configuration: close them (telling whoever was told)
            for alert in open_alerts.values():
                alert.value_text = "rule or facility no longer configured"
                self._resolve(db, alert, rules_by_id.get(alert.rule), now, cycle)
        return cycle

    def _step(
        self,
        db: Any,
        alert: Alert,
        rule: Rule,
        fac: Facility,
        reading: Reading,
        snapshot: Mapping[str, LinkState],
        silences: list[Silence],
        now: float,
        cycle: Cycle,
    ) -> None:
        before = _tracked(alert)
        if reading.value is not None or reading.text:
            changed_value = (alert.value, alert.value_text) != (reading.value, reading.text)
            alert.value, alert.value_text = reading.value, reading.text
        else:
            changed_value = False
        alert.severity = rule.severity.value
        if alert.state == "pending":
            if reading.bad is False:
                self.store.delete_alert(db, alert.id)
                return
            if reading.bad and now - alert.active_since >= rule.for_:
                self._activate(db, alert, rule, fac, snapshot, silences, now, cycle)
        else:
            if reading.clear:
                alert.clear_since = alert.clear_since if alert.clear_since is not None else now
                if now - alert.clear_since >= rule.resolve_for:
                    self._resolve(db, alert, rule, now, cycle)
                    return
            elif reading.clear is False:
                alert.clear_since = None
            if reading.clear is not True:
                self._activate(db, alert, rule, fac, snapshot, silences, now, cycle)
        after = _tracked(alert)
        if before != after or changed_value:
            alert.updated_at = now
            self.store.update_alert(db, alert)

    def _activate(
        self,
        db: Any,
        alert: Alert,
        rule: Rule,
        fac: Facility,
        snapshot: Mapping[str, LinkState],
        silences: list[Silence],
        now: float,
        cycle: Cycle,
    ) -> None:
        """Bring a due alert to `firing` (notifying unless silenced) or `suppressed` behind a down site."""
        if alert.notified:
            # already told: it stays firing until it resolves, whatever happens upstream
            self._remind(db, alert, rule, silences, now, cycle)
            return
        blocker = self._down_ancestor(fac, snapshot) if rule.topology else None
        if blocker is not None:
            if alert.state != "suppressed":
                cycle.suppressed.append(alert)
            alert.state, alert.suppressed_by = "suppressed", blocker
            return
        alert.suppressed_by = None
        if alert.state != "firing":
            alert.state, alert.fired_at = "firing", now
            cycle.fired.append(alert)
        silence = self._silence_for(alert, silences, now)
        if silence is not None:
            if alert.silenced_by != silence.id:
                cycle.silenced.append(alert)
            alert.silenced_by = silence.id
            return
        alert.silenced_by = None
        alert.notified = True
        alert.last_notified_at = now
        self.store.add_event(db, alert, "firing", now, self.payload(alert, rule))
        cycle.notified.append(("firing", alert))

    def _remind(self, db: Any, alert: Alert, rule: Rule, silences: list[Silence], now: float, cycle: Cycle) -> None:
        """Tell again about a long alert nobody has taken: not once acknowledged, never while silenced."""
        if rule.repeat is None or alert.state != "firing" or alert.ack_by is not None:
            return
        if now - (alert.last_notified_at or alert.fired_at or now) < rule.repeat:
            return
        silence = self._silence_for(alert, silences, now)
        alert.silenced_by = silence.id if silence is not None else None
        if silence is not None:
            return
        alert.last_notified_at = now
        self.store.add_event(db, alert, "reminder", now, self.payload(alert, rule) | {"reminded_at": now})
        cycle.notified.append(("reminder", alert))

    def _resolve(self, db: Any, alert: Alert, rule: Rule | None, now: float, cycle: Cycle) -> None:
        if alert.state == "pending":
            self.store.delete_alert(db, alert.id)
            return
        alert.state, alert.resolved_at, alert.updated_at = "resolved", now, now
        self.store.update_alert(db, alert)
        cycle.resolved.append(alert)
        if alert.notified:
            self.store.add_event(db, alert, "resolved", now, self.payload(alert, rule))
            cycle.notified.append(("resolved", alert))
