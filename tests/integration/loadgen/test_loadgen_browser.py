"""The presenter's page in real headless Chromium (Debian's), driven by Playwright."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadgen_support import FLAGS

pytestmark = pytest.mark.integration

OUTPUT = Path(__file__).resolve().parents[2] / "output"
ON = re.compile(r"\bon\b")


def test_presenter_page(local_demo, loadgen, chromium_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    OUTPUT.mkdir(exist_ok=True)
    loadgen.stop_and_drain()
    loadgen.post("/api/settings", {"concurrency": 2, "rate": 0, "think_min_s": 0.3, "think_max_s": 1.0,
                                   "turns_min": 3, "turns_max": 3, "max_tokens": 24})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=FLAGS)
        try:
            _drive(page_of(browser), local_demo, loadgen, expect)
        finally:
            browser.close()
            loadgen.stop_and_drain()
    assert (OUTPUT / "loadgen-booth.png").stat().st_size > 20_000


def page_of(browser):
    """A booth-sized page."""
    return browser.new_page(viewport={"width": 1920, "height": 1080})


def _drive(page, local_demo, loadgen, expect) -> None:
    """Each step a presenter takes, checked against what the app did."""
    page.goto(local_demo.loadgen_url + "/")
    expect(page.locator("#model")).to_have_text(local_demo.model)

    # Move the concurrency control: the app takes it.
    page.locator("#concurrency").fill("5")
    expect(page.locator("#concurrency-val")).to_have_text("0")  # not running yet
    assert loadgen.get("/api/state")["settings"]["concurrency"] == 5

    # The switch lists every frontend of the demo in order; switch to the last and back to the first.
    frontends = loadgen.get("/api/state")["frontends"]
    expect(page.locator("#routing-switch button")).to_have_text([f["title"] for f in frontends])
    first, last = frontends[0]["id"], frontends[-1]["id"]
    page.click(f"#route-{last}")
    expect(page.locator(f"#route-{last}")).to_have_class(ON)
    assert loadgen.get("/api/state")["settings"]["routing"] == last
    page.click(f"#route-{first}")
    expect(page.locator(f"#route-{first}")).to_have_class(ON)

    # An out-of-range value is refused with a message, nothing changes.
    page.locator("#turns_min").fill("9")
    page.locator("#turns_min").dispatch_event("change")
    expect(page.locator("#message")).to_contain_text("turns_min (9) must not exceed turns_max (3)")

    before = page.evaluate("document.getElementById('c-ttft').toDataURL()")
    page.click("#btn-start")
    expect(page.locator("#btn-start")).to_have_class(ON)
    # Charts update: the headline fills in and the canvases change.
    expect(page.locator(f"#hl-{first}")).to_have_text(re.compile(r"\d+(\.\d+)? m?s"), timeout=60_000)
    expect(page.locator("#t-active")).to_have_text("5", timeout=20_000)
    page.wait_for_function(
        "before => document.getElementById('c-ttft').toDataURL() !== before", arg=before, timeout=30_000)
    page.wait_for_timeout(3000)
    page.screenshot(path=str(OUTPUT / "loadgen-booth.png"))

    # Open a conversation from the list.
    row = page.locator("#conv-table tbody tr").first
    expect(row).to_be_visible(timeout=20_000)
    row.click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-turns .turn").first).to_contain_text("Turn 1")
    expect(page.locator("#detail-turns")).to_contain_text("worker")
    page.screenshot(path=str(OUTPUT / "loadgen-conversation.png"))
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    page.click("#btn-stop")
