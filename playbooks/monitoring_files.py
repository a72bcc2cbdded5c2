"""Prometheus rules and the Alertmanager config, rendered on the controller from the catalog.

They come from the monitor's own rule file (`monitor/rules/default.yaml`, or the one given) via
`monitor.alerting.promexport`, so Prometheus alerts on exactly what the monitor alerts on. The
prometheus and alertmanager roles copy the rendered files to the monitoring hosts.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from hdc.errors import UserError
from inventory.model import Catalog


def render_monitoring_files(
    cat: Catalog,
    target: Path,
    noc_url: str,
    webhook_url: str,
    rules_path: str | Path | None = None,
    notify_path: str | Path | None = None,
    webhook_auth: tuple[str, str] | None = None,
    webhook_ca_file: str | None = None,
) -> dict[str, str]:
    """Write `hdc-links.rules.yml` and `alertmanager.yml` into `target`; return the variables naming them.

    `webhook_auth`: (the monitor's webhook operator, its password file on the Alertmanager hosts);
    `webhook_ca_file`: the CA file there that signed the monitor's HTTPS certificate.
    """
    from monitor.alerting.promexport import alertmanager_config, dump, prometheus_rules
    from monitor.notify.config import load_notify_config
    from monitor.rules.loader import load_rules

    try:
        rules = load_rules(rules_path)
        notify = load_notify_config(notify_path)
    except UserError:
        raise
    except Exception as exc:  # the loaders name file and line in their own error types
        raise UserError(f"monitor rules/notification config: {exc}") from None
    target.mkdir(parents=True, exist_ok=True)
    rules_file = target / "hdc-links.rules.yml"
    rules_file.write_text(dump(prometheus_rules(rules, cat, noc_url)), encoding="utf-8")
    am_file = target / "alertmanager.yml"
    config = alertmanager_config(rules, notify, webhook_url, webhook_auth)
    for receiver in config.get("receivers", []):
        hooks = [copy.deepcopy(hook) for hook in receiver.get("webhook_configs", [])]  # no YAML aliases
        if webhook_ca_file:
            for hook in hooks:
                hook.setdefault("http_config", {})["tls_config"] = {"ca_file": webhook_ca_file}
        if hooks:
            receiver["webhook_configs"] = hooks
    am_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return {"hdc_prometheus_rule_files": str(rules_file), "hdc_alertmanager_config_file": str(am_file)}
