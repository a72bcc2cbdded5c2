"""The NOC page in headless Chromium: live updates, filters, acknowledge, silence, Arabic right-to-left."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from hdc.procs import wait_until
from tests.noc.conftest import Stack

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = os.environ.get("HDC_NOC_SCREENSHOTS")  # a directory to keep screenshots in, for a human to look at


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    home = tmp_path_factory.mktemp("chromium-home")
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
        "TMPDIR": str(home),
    }
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, env=env, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="fr-FR")
    p = context.new_page()
    p.goto(f"{stack.url}/noc?lang=fr")
    yield p
    context.close()


def shot(page: Page, tmp: Path, name: str) -> None:
    target = Path(SHOTS) if SHOTS else tmp
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"), full_page=True)


def test_link_down_shows_live_then_ack_silence_filter_rtl(page: Page, stack: Stack, tmp_path: Path) -> None:
    fid = "csb-sfax-medina"
    tile = page.locator(f'.tile[data-facility="{fid}"]')
    expect(tile).to_have_attribute("data-state", "up", timeout=10_000)
    expect(page.locator("h1")).to_have_text("Réseau national de santé")
    page.fill("#operator", "Amel")
    page.locator("#operator").dispatch_event("change")

    stack.sim.set_oper_status(fid, up=False)
    try:
        # the page shows it without a reload
        expect(tile).to_have_attribute("data-state", "down", timeout=3 * stack.interval * 1000)
        row = page.locator(f'#alerts tr[data-facility="{fid}"][data-rule="link-down"]')
        expect(row).to_be_visible(timeout=5_000)
        expect(row.locator(".sev")).to_have_text("critique")
        fac = stack.catalog.facility(fid)
        assert fac is not None and fac.link is not None and fac.contact is not None
        expect(row.locator(".reach .circuit")).to_have_text(f"{fac.link.provider} {fac.link.circuit_id}")
        expect(row.locator(f'.reach a[href="tel:{fac.contact.phone}"]')).to_have_text(fac.contact.phone)
        expect(tile.locator(".st")).to_have_text("coupé")
        shot(page, tmp_path, "noc-fr-link-down")

        # filters: problems only → just this facility; region Tunis → nothing; kind filter
        # (a busy host may drop a poll elsewhere: assert on what the filter must show and hide)
        page.select_option("#f-state", "problem")
        expect(tile).to_be_visible()
        expect(page.locator('.tile[data-state="up"]:not(.alerting):not(.suppressed)')).to_have_count(0)
        assert page.locator(".tile").count() < len(stack.catalog.polled_facilities())
        page.select_option("#f-region", "tunis")
        expect(tile).to_have_count(0)
        expect(page.locator('.tile[data-facility="hu-sfax"]')).to_have_count(0)
        page.select_option("#f-region", "")
        page.select_option("#f-state", "")
        page.select_option("#f-kind", "aggregation_site")
        expect(page.locator(".tile")).to_have_count(2)
        page.select_option("#f-kind", "")

        # acknowledge from the page
        row.locator("button.ack").click()
        expect(row.locator(".status")).to_contain_text("acquittée par Amel", timeout=5_000)
        [alert] = [a for a in stack.open_alerts() if a["facility"] == fid]
        assert alert["ack_by"] == "Amel"

        # silence from the page (4 h by default, this alert on this facility)
        row.locator("button.silence").click()
        page.fill("#silence-form input[name=reason]", "travaux sur la fibre")
        page.click("#silence-ok")
        wait_until(lambda: bool(stack.api("/api/silences").json()), 5, "silence stored", interval=0.1)
        [silence] = stack.api("/api/silences").json()
        assert (silence["facility"], silence["rule"], silence["region"]) == (fid, "link-down", None)
        assert silence["created_by"] == "Amel" and silence["reason"] == "travaux sur la fibre"
        assert 4 * 3600 - 60 < silence["ends_at"] - silence["starts_at"] <= 4 * 3600

        # Arabic: right-to-left, Arabic names
        page.click("button[data-lang=ar]")
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        expect(page.locator("html")).to_have_attribute("lang", "ar")
        expect(tile.locator(".name")).to_have_text("مركز الصحة الأساسية بصفاقس المدينة")
        expect(page.locator("h1")).to_have_text("الشبكة الوطنية للصحة")
        shot(page, tmp_path, "noc-ar-link-down")
        page.click("button[data-lang=fr]")
        expect(page.locator("html")).to_have_attribute("dir", "ltr")
    finally:
        stack.sim.set_oper_status(fid, up=True)
        for s in stack.api("/api/silences").json():
            httpx.delete(f"{stack.url}/api/silences/{s['id']}", timeout=30)
    expect(tile).to_have_attribute("data-state", "up", timeout=3 * stack.interval * 1000)
    wait_until(lambda: not stack.open_alerts(), 3 * stack.interval + 5, "alert resolved", interval=0.1)


def test_api_refuses_bad_silences_naming_the_field(stack: Stack) -> None:
    post = lambda body: httpx.post(f"{stack.url}/api/silences", json=body, timeout=30)  # noqa: E731
    r = post({"reason": "x", "created_by": "a", "duration_s": 60})
    assert r.status_code == 422 and "at least one of facility, region or rule" in r.text
    r = post({"facility": "nowhere", "reason": "x", "created_by": "a", "duration_s": 60})
    assert r.status_code == 422 and "facility 'nowhere' is not in the catalog" in r.text
    r = post({"rule": "link-down", "reason": "x", "created_by": "a", "duration_s": -5})
    assert r.status_code == 422 and "duration_s" in r.text
    r = post({"rule": "nope", "reason": "x", "created_by": "a", "duration_s": 60})
    assert r.status_code == 422 and "rule 'nope'" in r.text
    r = httpx.post(f"{stack.url}/api/alerts/999999/ack", json={"by": "a"}, timeout=30)
    assert r.status_code == 404
    # no operators file: the API is open, so the client must say who acts
    r = post({"rule": "link-down", "reason": "x", "duration_s": 60})
    assert r.status_code == 422 and "created_by: required" in r.text
    r = httpx.get(f"{stack.url}/runbooks/alerts/link-down.md", timeout=30)
    assert r.status_code == 200 and r.text.startswith("# link-down")
    assert httpx.get(f"{stack.url}/runbooks/alerts/..%2F..%2Fpyproject.toml", timeout=30).status_code == 404
    not_modified = 0
    for _ in range(5):  # a poll cycle may end between the two requests: then the tag must differ
        first = stack.api("/api/noc/state")
        again = httpx.get(f"{stack.url}/api/noc/state", headers={"If-None-Match": first.headers["etag"]}, timeout=30)
        if again.status_code == 304:
            not_modified += 1
        else:
            assert again.status_code == 200 and again.headers["etag"] != first.headers["etag"]
    assert not_modified >= 1
    r = httpx.get(f"{stack.url}/", timeout=30)
    assert r.status_code == 307 and r.headers["location"] == "/noc"
