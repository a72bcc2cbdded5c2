"""The NOC: alerting attached to a running monitor, its HTTP API and the wall-screen page.

`attach(service, settings)` is the one entry point: it mounts the page (`/noc`), the API
(`/api/alerts`, `/api/silences`, `/api/noc/state`) and the runbooks (`/runbooks/alerts/…`) on
`service.app`, subscribes the alert engine to every poll cycle and starts the outbox worker
with the first cycle. With an operators file (`settings.operators`) every page and API call
but /metrics and /healthz needs HTTP Basic authentication (see `access`). It returns the
`Alerting` runtime (call `await runtime.stop()` on exit).
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import FastAPI

from .access import Access
from .api import build_router
from .runtime import Alerting, AlertingSettings, load_alerting_settings

__all__ = ["Alerting", "AlertingSettings", "attach", "load_alerting_settings"]


class Service(Protocol):
    app: FastAPI

    def subscribe(self, callback: Any) -> None: ...


def attach(service: Service, settings: AlertingSettings | None = None, **runtime_args: Any) -> Alerting:
    settings = settings or load_alerting_settings()
    access = Access.from_file(settings.operators)
    runtime = Alerting(settings, **runtime_args)
    service.app.include_router(build_router(runtime, access))
    service.subscribe(runtime.on_cycle)
    return runtime
