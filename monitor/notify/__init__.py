"""Notifications: grouping, templates (fr/ar/en), routing by severity and region, a persistent outbox, Apprise.

Names are loaded on first use: importing the package (as the `hdc` CLI does) does not load
Apprise and its plugins, which takes seconds.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AppriseIntegration": "integrations",
    "DeliveryError": "integrations",
    "EmailIntegration": "integrations",
    "Integration": "integrations",
    "integration_for": "integrations",
    "NotifyConfig": "config",
    "Route": "config",
    "load_notify_config": "config",
    "Outbox": "outbox",
    "OutboxWorker": "outbox",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
