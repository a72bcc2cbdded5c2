"""The same rule file, for sites that run Prometheus: alerting rules and an Alertmanager config.

Prometheus evaluates the rules on the metrics `/metrics` exposes (names in `MetricNames`);
`for` maps to `for`, `resolve_for` to `keep_firing_for` (Prometheus ≥ 2.42) and the lower
`resolve_below` threshold to the usual "stay firing above the lower threshold while ALERTS
says firing" expression. Topology comes from the catalog as one recording rule per facility
(`hdc:facility_uplink_site:info`, the aggregation site it hangs from) joined onto every
alert, and an Alertmanager inhibit rule silences facilities behind a down aggregation site.
Routing mirrors the notification routes (severity, region) with one receiver per route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from inventory.model import Catalog, FacilityKind
from monitor.notify.config import NotifyConfig
from monitor.notify.render import runbook_url
from monitor.rules.schema import Rule, RuleFile, RuleKind, format_duration

SITE_INFO = "hdc:facility_uplink_site:info"


@dataclass(frozen=True)
class MetricNames:
    """Gauges of the monitor's /metrics (`monitor/exporter.py`), labelled facility, region, kind."""

    reachable: str = "hdc_link_reachable"
    oper_status: str = "hdc_link_oper_status"  # IF-MIB code: 1 up, 2 down, 5 dormant, 6 notPresent, 7 lowerLayerDown
    admin_up: str = "hdc_link_admin_up"
    link_up: str = "hdc_link_up"
    failures: str = "hdc_link_consecutive_failures"
    utilisation: str = "hdc_link_utilisation_ratio"
    in_errors: str = "hdc_link_in_errors_per_second"
    out_errors: str = "hdc_link_out_errors_per_second"


def alert_name(rule_id: str) -> str:
    return "".join(part.capitalize() for part in rule_id.split("-"))


def _num(x: float) -> str:
    return f"{x:g}"


def expression(rule: Rule, m: MetricNames) -> str:
    name = alert_name(rule.id)
    if rule.kind is RuleKind.LINK_DOWN:
        # the same codes as `conditions.oper_down`: down, dormant, notPresent, lowerLayerDown
        expr = (
            f"(({m.oper_status} == 2 or {m.oper_status} >= 5) and on(facility) {m.reachable} == 1"
            f" and on(facility) {m.admin_up} == 1)"
        )
        if rule.failures is not None:
            expr = f"({expr} or {m.failures} >= {rule.failures})"
        return expr
    if rule.kind is RuleKind.UNREACHABLE:
        return f"{m.failures} >= {rule.failures}"
    if rule.kind in (RuleKind.UTILISATION, RuleKind.ERROR_RATE):
        metric = m.utilisation if rule.kind is RuleKind.UTILISATION else f"({m.in_errors} + {m.out_errors})"
        assert rule.above is not None
        expr = f"{metric} >= {_num(rule.above)}"
        if rule.resolve_below is not None and rule.resolve_below < rule.above:
            expr = (
                f"({expr} or ({metric} >= {_num(rule.resolve_below)}"
                f' and on(facility) ALERTS{{alertname="{name}", alertstate="firing"}}))'
            )
        return expr
    if rule.kind is RuleKind.FLAPPING:
        assert rule.window is not None
        return f"changes({m.link_up}[{format_duration(rule.window)}]) >= {rule.changes}"
    raise AssertionError(rule.kind)  # pragma: no cover


def prometheus_rules(
    rules: RuleFile, catalog: Catalog | None, noc_url: str, metrics: MetricNames | None = None
) -> dict[str, Any]:
    m = metrics or MetricNames()
    alerts = []
    for rule in rules.enabled():
        expr = expression(rule, m)
        if catalog is not None:
            expr = f"({expr}) * on(facility) group_left(uplink_site) {SITE_INFO}"
        entry: dict[str, Any] = {"alert": alert_name(rule.id), "expr": expr}
        if rule.for_:
            entry["for"] = format_duration(rule.for_)
        if rule.resolve_for:
            entry["keep_firing_for"] = format_duration(rule.resolve_for)
        entry["labels"] = {"severity": rule.severity.value, "rule": rule.id, "topology": str(rule.topology).lower()}
        entry["annotations"] = {
            "summary": f"{rule.title.en}: {{{{ $labels.facility }}}} ({{{{ $labels.region }}}})",
            "summary_fr": f"{rule.title.fr} : {{{{ $labels.facility }}}} ({{{{ $labels.region }}}})",
            "summary_ar": f"{rule.title.ar}: {{{{ $labels.facility }}}} ({{{{ $labels.region }}}})",
            "description": "value {{ $value }}",
            "runbook_url": runbook_url(rule.runbook, noc_url),
        }
        alerts.append(entry)
    groups: list[dict[str, Any]] = []
    if catalog is not None:
        records = []
        for fac in catalog.polled_facilities():
            assert fac.link is not None
            site = fac.id if fac.kind is FacilityKind.AGGREGATION_SITE else (fac.link.parent or fac.id)
            records.append(
                {"record": SITE_INFO, "expr": "vector(1)", "labels": {"facility": fac.id, "uplink_site": site}}
            )
        groups.append({"name": "hdc-topology", "rules": records})
    groups.append({"name": "hdc-links", "rules": alerts})
    return {"groups": groups}


def alertmanager_config(
    rules: RuleFile,
    notify: NotifyConfig,
    webhook_url: str,
    auth: tuple[str, str] | None = None,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """Routing per notification route (severity, region); receivers post to `webhook_url`.

    `auth` = (user, password file on the Alertmanager host): the monitor's `webhook` operator,
    sent as HTTP Basic (Alertmanager reads the password from the file, never from this config).
    `ca_file` (a path on the Alertmanager host): the CA that signed an HTTPS monitor's certificate.
    """
    g = notify.grouping

    def webhook() -> dict[str, Any]:
        """A fresh dict per receiver: shared ones would be dumped as YAML anchors and aliases."""
        out: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
        http: dict[str, Any] = {}
        if auth is not None:
            http["basic_auth"] = {"username": auth[0], "password_file": auth[1]}
        if ca_file is not None:
            http["tls_config"] = {"ca_file": ca_file}
        if http:
            out["http_config"] = http
        return out

    routes = []
    for route in notify.routes:
        matchers = []
        if route.severities:
            matchers.append(f'severity=~"{"|".join(s.value for s in route.severities)}"')
        if route.regions:
            matchers.append(f'region=~"{"|".join(route.regions)}"')
        routes.append({"receiver": route.name, "matchers": matchers, "continue": True})
    link_rules = [alert_name(r.id) for r in rules.enabled() if r.kind in (RuleKind.LINK_DOWN, RuleKind.UNREACHABLE)]
    config: dict[str, Any] = {
        "route": {
            "receiver": "hdc-default",
            "group_by": ["alertname", "region"],
            "group_wait": format_duration(g.wait),
            "group_interval": format_duration(max(g.interval, 1.0)),
            "repeat_interval": "12h",
            "routes": routes,
        },
        "receivers": [{"name": "hdc-default"}]
        + [{"name": r.name, "webhook_configs": [webhook()]} for r in notify.routes],
        "inhibit_rules": [
            {
                "source_matchers": [f'alertname=~"{"|".join(link_rules)}"', 'kind="aggregation_site"'],
                "target_matchers": ['topology="true"', 'kind!="aggregation_site"'],
                "equal": ["uplink_site"],
            }
        ]
        if link_rules
        else [],
    }
    return config


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
