"""The runtime the monitor runs: engine on each cycle, outbox worker on the event loop, restart safety."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hdc.procs import free_port
from inventory.loader import load_catalog
from monitor.noc import Alerting, AlertingSettings
from monitor.state import LinkState
from tests.alerting.helpers import down, up
from tests.alerting.smtp import Smtp

LAB = load_catalog("lab")


def snap(downs: tuple[str, ...] = ()) -> dict[str, LinkState]:
    now = time.time()
    return {f.id: down(f.id, now) if f.id in downs else up(f.id, now) for f in LAB.polled_facilities()}


async def wait_mail(smtp: Smtp, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(smtp.messages()) < n:
        assert time.monotonic() < deadline, f"{len(smtp.messages())} mails, expected {n}"
        await asyncio.sleep(0.05)


async def test_restart_neither_refires_nor_forgets_the_resolve(mail: Smtp, tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "grouping: {wait: 0.2s}\ndelivery: {retry_initial: 0.5s, retry_max: 1s}\n"
        "routes:\n  - {name: noc, language: en, urls: ['env:HDC_TEST_NOC_EMAIL']}\n",
        encoding="utf-8",
    )
    settings = AlertingSettings(catalog="lab", routes=routes, db=tmp_path / "alerts.db", outbox_tick=0.05)
    first = Alerting(settings, catalog=LAB)
    await first.on_cycle(snap(("hr-kairouan",)))
    await wait_mail(mail, 1)
    assert mail.messages()[0]["Subject"] == "[CRITICAL] Link down — Hôpital régional de Kairouan (Kairouan)"
    await first.stop()

    # the link comes back while the monitor is down; a new process starts on the same file
    second = Alerting(settings, catalog=LAB)
    try:
        await second.on_cycle(snap(("hr-kairouan",)))  # still down at the first cycle: no second firing
        await asyncio.sleep(1.0)
        assert len(mail.messages()) == 1
        await second.on_cycle(snap())
        await wait_mail(mail, 2)
        assert mail.messages()[1]["Subject"].startswith("[RESOLVED] Link down — Hôpital régional de Kairouan")
        await asyncio.sleep(0.5)
        assert len(mail.messages()) == 2
    finally:
        await second.stop()


async def test_one_destination_down_does_not_block_or_duplicate_the_other(
    mail: Smtp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"mailto://127.0.0.1:{free_port()}?from=noc@example.org&to=nobody@example.org"
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "grouping: {wait: 0.2s}\ndelivery: {retry_initial: 0.3s, retry_max: 0.5s}\n"
        "routes:\n  - {name: noc, urls: ['env:HDC_TEST_NOC_EMAIL', 'env:HDC_TEST_DEAD']}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("HDC_TEST_DEAD", dead)
    rt = Alerting(AlertingSettings(routes=routes, db=tmp_path / "a.db", outbox_tick=0.05), catalog=LAB)
    try:
        await rt.on_cycle(snap(("hu-sfax",)))
        await wait_mail(mail, 1)
        await asyncio.sleep(1.5)  # several retries of the dead destination meanwhile
        assert len(mail.messages()) == 1
        rows = rt.store.db.execute("SELECT idem_key, status, attempts FROM outbox ORDER BY id").fetchall()
        assert [(r["idem_key"], r["status"]) for r in rows] == [("g1-noc-0", "sent"), ("g1-noc-1", "pending")]
        assert rows[1]["attempts"] >= 2
    finally:
        await rt.stop()


async def test_stopping_mid_send_records_it_and_a_restart_does_not_resend(
    mail: Smtp, routes_file: Path, tmp_path: Path
) -> None:
    from monitor.alerting import AlertEngine, Store
    from monitor.notify import EmailIntegration, Outbox, OutboxWorker, load_notify_config
    from monitor.rules import load_rules

    class SlowEmail(EmailIntegration):
        """The real e-mail integration, slow enough that the stop lands while it is sending."""

        def send(self, url: str, title: str, body: str, *, ref: str, timeout: float = 20.0) -> None:
            time.sleep(0.8)
            super().send(url, title, body, ref=ref, timeout=timeout)

    cfg = load_notify_config(routes_file)
    cfg = cfg.model_copy(update={"grouping": cfg.grouping.model_copy(update={"wait": 0.0})})
    store = Store(tmp_path / "a.db")
    AlertEngine(LAB, load_rules(), store).evaluate(snap(("hu-sfax",)), time.time())
    worker = OutboxWorker(Outbox(store, cfg, LAB, integration=lambda url: SlowEmail()), tick=0.05)
    worker.start()
    deadline = time.monotonic() + 30
    while store.db.execute("SELECT COALESCE(MAX(attempts), 0) FROM outbox").fetchone()[0] < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await worker.stop()  # lands while the message is being sent
    row = store.db.execute("SELECT status, attempts FROM outbox").fetchone()
    assert (row["status"], row["attempts"]) == ("sent", 1)
    assert len(mail.messages()) == 1
    again = OutboxWorker(Outbox(store, cfg, LAB), tick=0.05)
    again.start()
    await asyncio.sleep(1.5)
    await again.stop()
    assert len(mail.messages()) == 1
    store.close()
