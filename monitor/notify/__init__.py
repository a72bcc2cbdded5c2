"""Notifications: grouping, templates (fr/ar/en), routing by severity and region, a persistent outbox, Apprise."""

from .config import NotifyConfig, Route, load_notify_config
from .integrations import AppriseIntegration, DeliveryError, EmailIntegration, Integration, integration_for
from .outbox import Outbox, OutboxWorker
from .render import render

__all__ = [
    "AppriseIntegration",
    "DeliveryError",
    "EmailIntegration",
    "Integration",
    "NotifyConfig",
    "Outbox",
    "OutboxWorker",
    "Route",
    "integration_for",
    "load_notify_config",
    "render",
]
