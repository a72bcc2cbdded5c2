"""Alertmanager webhook → the same templates, languages and outbox as the monitor's own alerts.

Sites that evaluate the exported rules in Prometheus point the generated Alertmanager
receivers at `POST /api/alertmanager/webhook`: Alertmanager does the grouping and routing
(the receiver is the route's name), hdc renders the message in the route's language and
delivers it through the outbox and Apprise. Alertmanager retries a webhook that failed; the
idempotency key (receiver, group, alerts and their status) makes such a retry a no-op.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inventory.model import Catalog, FacilityKind
from monitor.rules.schema import RuleFile


class AmAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str = Field(pattern="^(firing|resolved)$")
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str = ""
    fingerprint: str = ""


class AmWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: str = "4"
    receiver: str
    status: str
    groupKey: str
    alerts: list[AmAlert]


def _ts(text: str) -> float | None:
    if not text or text.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def to_payloads(hook: AmWebhook, catalog: Catalog, rules: RuleFile) -> dict[str, list[dict[str, Any]]]:
    """Event payloads (as the engine writes them) per kind, 'firing' and 'resolved'."""
    out: dict[str, list[dict[str, Any]]] = {"firing": [], "resolved": []}
    for a in hook.alerts:
        lab = a.labels
        fid = lab.get("facility", "")
        fac = catalog.facility(fid)
        rule = rules.get(lab.get("rule", ""))
        name = lab.get("alertname", "alert")
        kids = [f for f in catalog.facilities if f.link is not None and f.link.parent == fid and f.polled]
        since = _ts(a.startsAt) or 0.0
        out[a.status].append(
            {
                "alert_id": a.fingerprint,
                "rule": rule.id if rule else name,
                "title": rule.title.model_dump() if rule else {"fr": name, "ar": name, "en": name},
                "runbook": rule.runbook if rule else a.annotations.get("runbook_url", ""),
                "severity": lab.get("severity", "warning"),
                "facility": fid or name,
                "facility_name": fac.name if fac else lab.get("facility_name", fid or name),
                "facility_name_ar": fac.name_ar if fac else lab.get("facility_name", fid or name),
                "facility_kind": fac.kind.value if fac else lab.get("kind", ""),
                "region": lab.get("region", fac.region if fac else ""),
                "since": since,
                "fired_at": since,
                "resolved_at": _ts(a.endsAt) if a.status == "resolved" else None,
                "value": None,
                "value_text": a.annotations.get("description", ""),
                "aggregation": bool(fac and fac.kind is FacilityKind.AGGREGATION_SITE),
                "children": len(kids),
                "children_names": [k.name for k in kids[:20]],
                "children_names_ar": [k.name_ar for k in kids[:20]],
            }
        )
    return out


def idempotency_key(hook: AmWebhook, kind: str) -> str:
    parts = sorted(f"{a.fingerprint}/{a.status}/{a.startsAt}" for a in hook.alerts if a.status == kind)
    digest = hashlib.sha256("\n".join([hook.receiver, hook.groupKey, kind, *parts]).encode()).hexdigest()[:16]
    return f"am{digest}"
