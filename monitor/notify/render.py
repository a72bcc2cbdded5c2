"""Render one grouped notification (title + body) in French, Arabic or English from Jinja2 templates."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from inventory.model import Catalog

TEMPLATES = Path(__file__).resolve().parent / "templates"

SEVERITY_LABELS = {
    "fr": {"critical": "CRITIQUE", "warning": "AVERTISSEMENT", "info": "INFO"},
    "ar": {"critical": "حرج", "warning": "تحذير", "info": "معلومة"},
    "en": {"critical": "CRITICAL", "warning": "WARNING", "info": "INFO"},
}

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    autoescape=False,  # plain-text messages; nothing here is HTML
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


_UNITS = {"fr": ("h", "min", "s"), "en": ("h", "min", "s"), "ar": ("ساعة", "دقيقة", "ثانية")}


def fmt_span(seconds: float, lang: str = "en") -> str:
    h_, m_, s_ = _UNITS.get(lang, _UNITS["en"])
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} {h_} {m:02d} {m_}"
    if m:
        return f"{m} {m_} {sec:02d} {s_}"
    return f"{sec} {s_}"


def runbook_url(runbook: str, noc_url: str) -> str:
    """Rule runbooks are repository paths served by the NOC page, or full URLs."""
    if runbook.startswith(("http://", "https://")):
        return runbook
    return f"{noc_url.rstrip('/')}/{runbook}" if runbook else noc_url


def region_name(catalog: Catalog | None, region: str, lang: str) -> str:
    if catalog is not None:
        for r in catalog.regions:
            if r.id == region:
                return r.name_ar if lang == "ar" else r.name
    return region


def render(
    *,
    kind: str,
    payloads: Sequence[Mapping[str, Any]],
    lang: str,
    catalog: Catalog | None,
    noc_url: str,
    max_names: int,
    ref: str,
    short: bool = False,
) -> tuple[str, str]:
    """(title, body) for a group of events of one rule, one region and one kind (firing, reminder, resolved)."""
    if not payloads:
        raise ValueError("a notification needs at least one event")
    first = payloads[0]
    alerts = []
    for p in payloads[:max_names]:
        ar = lang == "ar"
        resolved = p.get("resolved_at")
        until = resolved or p.get("reminded_at") or p["since"]  # a reminder says how long it has lasted
        alerts.append(
            {
                "facility": p["facility"],
                "name": p["facility_name_ar"] if ar else p["facility_name"],
                "since": fmt_time(p["since"]),
                "resolved": fmt_time(resolved),
                "duration": fmt_span(until - p["since"], lang),
                "value": p.get("value_text") or "—",
                "aggregation": p.get("aggregation", False),
                "children": p.get("children", 0),
                "children_names": p.get("children_names_ar" if ar else "children_names", [])[:max_names],
                # payloads written before these fields existed have none of them
                "circuit": " ".join(x for x in (p.get("provider", ""), p.get("circuit_id", "")) if x),
                "contact": ", ".join(x for x in (p.get("contact_name", ""), p.get("contact_phone", "")) if x),
            }
        )
    ctx = {
        "kind": kind,
        "firing": kind in ("firing", "reminder"),
        "reminder": kind == "reminder",
        "title": first["title"].get(lang) or first["title"]["en"],
        "severity_label": SEVERITY_LABELS[lang].get(first["severity"], first["severity"]),
        "region": region_name(catalog, first["region"], lang),
        "count": len(payloads),
        "alerts": alerts,
        "more": max(0, len(payloads) - max_names),
        "runbook_url": runbook_url(first.get("runbook", ""), noc_url),
        "noc_url": noc_url,
        "ref": ref,
    }
    title = _env.get_template(f"{lang}.title.j2").render(ctx).strip()
    if short:  # SMS and pagers: one line
        return title, _env.get_template(f"{lang}.short.j2").render({**ctx, "title_line": title}).strip()
    body = _env.get_template(f"{lang}.body.j2").render(ctx).strip() + "\n"
    while "\n\n\n" in body:
        body = body.replace("\n\n\n", "\n\n")
    return title, body
