"""The alerting runtime attached to a running monitor: engine on every cycle, outbox worker, NOC state."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from hdc.errors import UserError
from inventory.loader import load_catalog
from inventory.model import Catalog
from monitor.alerting.engine import AlertEngine, Cycle
from monitor.alerting.store import Store
from monitor.notify.config import NotifyConfig, load_notify_config
from monitor.notify.outbox import Outbox, OutboxWorker
from monitor.rules.loader import load_rules
from monitor.rules.schema import RuleFile
from monitor.state import LinkState

log = logging.getLogger("hdc.monitor.alerting")


class AlertingSettings(BaseSettings):
    """Where alerting reads its rules and routes and keeps its state; every field is HDC_ALERTING_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="HDC_ALERTING_", extra="forbid", frozen=True)

    catalog: str = Field("lab", description="catalog path or shipped name")
    rules: Path | None = Field(None, description="rule file (default: monitor/rules/default.yaml)")
    routes: Path | None = Field(None, description="notification routing file (none: alerts are only shown)")
    operators: Path | None = Field(
        None, description="operators file (`hdc monitor operators add`); none: the page and API are open to anyone"
    )
    db: Path = Field(
        default_factory=lambda: Path(os.environ.get("HDC_MONITOR_STATE_DIR", ".state/monitor")) / "alerts.db",
        description="SQLite state file (default: $HDC_MONITOR_STATE_DIR/alerts.db, else .state/monitor/alerts.db)",
    )
    page_refresh: float = Field(2.0, ge=0.2, le=60.0, description="seconds between NOC page refreshes")
    outbox_tick: float = Field(0.25, gt=0.0, le=10.0, description="seconds between outbox passes")


def load_alerting_settings(**overrides: object) -> AlertingSettings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return AlertingSettings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'])} (HDC_ALERTING_{str(e['loc'][0]).upper()}): {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise UserError("bad alerting settings:\n  " + "\n  ".join(problems)) from None


def _warm_up() -> None:
    from monitor.notify.integrations import warm_up

    try:
        warm_up()
    except Exception:  # only an optimisation
        log.warning("could not preload Apprise plugins", exc_info=True)


class Alerting:
    """Everything alerting needs at run time; the NOC page and the HTTP API read from it."""

    def __init__(
        self,
        settings: AlertingSettings,
        *,
        catalog: Catalog | None = None,
        rules: RuleFile | None = None,
        notify: NotifyConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.catalog = catalog or load_catalog(settings.catalog)
        self.rules = rules or load_rules(settings.rules)
        self.notify = notify or load_notify_config(settings.routes)
        self.clock = clock
        self.store = Store(settings.db)
        self.engine = AlertEngine(self.catalog, self.rules, self.store)
        self.outbox = Outbox(self.store, self.notify, self.catalog)
        self.worker = OutboxWorker(self.outbox, clock=clock, tick=settings.outbox_tick)
        if self.notify.routes:
            # Apprise loads its ~100 plugins on first use (seconds on a busy host): do it now, not at the first alert
            threading.Thread(target=_warm_up, name="apprise-warm-up", daemon=True).start()
        self.snapshot: dict[str, LinkState] = {}
        self.last_cycle: float | None = None
        self.last_result = Cycle()

    async def on_cycle(self, snapshot: dict[str, LinkState]) -> None:
        """Subscriber of `MonitorService`: evaluate the rules on the new snapshot, wake the outbox."""
        self.worker.start()  # the monitor runs uvicorn without lifespan events: start on the first cycle
        self.snapshot = dict(snapshot)
        now = self.clock()
        self.last_result = await asyncio.to_thread(self.engine.evaluate, self.snapshot, now)
        self.last_cycle = now
        if self.last_result.notified:
            for kind, alert in self.last_result.notified:
                log.info("alert %s %s %s", kind, alert.rule, alert.facility)
            self.worker.wake()

    async def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
        self.store.close()
