"""The presenter's page in real headless Chromium (Debian's), driven by Playwright, as a presenter would.

Start, the routing switch, A/B, the presets, auto mode through its four phases; the
headlines checked number for number against /api/state and /metrics; the README's
screenshots (1920×1080): into docs/images/ with GTC_UPDATE_SCREENSHOTS=1, else tests/output/screenshots.
"""
from __future__ import annotations

import math
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest
from loadgen_support import FLAGS
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
OUTPUT = REPO / "tests" / "output"
# The README's screenshots are these, from a run with GTC_UPDATE_SCREENSHOTS=1;
# an ordinary run keeps its own under tests/output and leaves the checkout clean.
IMAGES = REPO / "docs" / "images" if os.environ.get("GTC_UPDATE_SCREENSHOTS") == "1" else OUTPUT / "screenshots"
ON = re.compile(r"\bon\b")
# Auto mode's four phases, short so the test stays cheap (the app's minimum is 2 s each).
PHASE_S = 3


def test_presenter_page(local_demo, loadgen, chromium_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    OUTPUT.mkdir(exist_ok=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    loadgen.stop_and_drain()
    before = loadgen.get("/api/state")["settings"]
    loadgen.post("/api/settings", {"turns_min": 3, "turns_max": 5, "max_tokens": 24, "auto": False, "ab": False})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            _drive(page, local_demo, loadgen, expect)
        finally:
            browser.close()
            loadgen.stop_and_drain()
            loadgen.post("/api/settings", {k: before[k] for k in (
                "concurrency", "rate", "think_min_s", "think_max_s", "turns_min", "turns_max", "max_tokens", "routing",
                "ab", "auto_ramp_s", "auto_steady_s", "auto_high_s", "auto_cooldown_s")})
    for name in SHOTS:
        size = (IMAGES / name).stat().st_size
        assert 20_000 < size < 600_000, (name, size)


SHOTS = ("loadgen-ab-booth.png", "loadgen-preset-idle.png", "loadgen-preset-busy.png", "loadgen-preset-stress.png",
         "loadgen-collecting.png")


def _shot(page, name: str, folder: Path = IMAGES) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(1200)  # one more poll of /api/state drawn
    page.screenshot(path=str(folder / name))


def _drive(page, local_demo, loadgen, expect) -> None:
    """Each step a presenter takes, checked against what the app did."""
    page.goto(local_demo.loadgen_url + "/")
    state = loadgen.get("/api/state")
    # What the demo runs on, from dynamo__output.topology through the role's --topology.
    topo = state["topology"]
    assert topo and topo["replicas"] == local_demo.replicas and topo["model"] == local_demo.model, topo
    expect(page.locator("#topology")).to_have_text(topo["label"])
    assert re.fullmatch(rf"{local_demo.replicas} × TP\d+ · .+ · {re.escape(local_demo.model)}", topo["label"])

    # The switch: every frontend in order, then A/B; switch to the last and back.
    frontends = state["frontends"]
    ids = [f["id"] for f in frontends]
    expect(page.locator("#routing-switch button")).to_have_text([f["title"] for f in frontends] + ["A/B"])
    page.click(f"#route-{ids[-1]}")
    expect(page.locator(f"#route-{ids[-1]}")).to_have_class(ON)
    assert loadgen.get("/api/state")["settings"]["routing"] == ids[-1]

    # An out-of-range value is refused with a message, nothing changes.
    page.locator("#turns_min").fill("9")
    page.locator("#turns_min").dispatch_event("change")
    expect(page.locator("#message")).to_contain_text("turns_min (9) must not exceed turns_max (5)")

    # Empty data: after a reset every routing is collecting and no ratio is shown.
    page.click("#btn-reset")
    for fid in ids:
        expect(page.locator(f"#hl-p90-{fid}")).to_have_text("collecting")
    expect(page.locator("#hl-tail")).to_have_text("collecting")
    expect(page.locator("#hl-median-ratio")).to_have_text("collecting")

    # A/B with the booth preset: both routings live side by side.
    page.click("#route-ab")
    expect(page.locator("#route-ab")).to_have_class(ON)
    page.click("#preset-booth")
    expect(page.locator("#preset-booth")).to_have_class(ON)
    started = time.monotonic()
    page.click("#btn-start")
    expect(page.locator("#btn-start")).to_have_class(ON)
    state = loadgen.wait_until(lambda s: all(s["active"][f] > 0 for f in ids), 30, "both routings live")
    assert state["settings"]["ab"] and state["effective"]["alternating"] and state["settings"]["preset"] == "booth"
    # Within two minutes of start a miss share is measured live and the tail ratio shows.
    expect(page.locator("#hl-tail")).to_have_text(re.compile(r"^\d+\.\d×$"), timeout=120_000)
    for fid in ids:
        expect(page.locator(f"#hl-miss-{fid}")).to_have_text(re.compile(r"^\d+%$"))
    print(f"\nbooth preset, A/B: tail ratio after {time.monotonic() - started:.0f} s")
    # The cache-hit tile shows every routing while they alternate, not the switch's last choice.
    titles = [f["title"] for f in state["frontends"]]
    expect(page.locator("#t-hit")).to_have_text(re.compile(r"^" + r" · ".join(re.escape(t) + r" (\d+%|–)" for t in titles) + r"$"))
    assert page.locator("#c-dots").evaluate("c => c.toDataURL().length") > 5000
    _shot(page, "loadgen-ab-booth.png")

    # Every headline number on the page is /api/state's and /metrics's: read with the load stopped
    # (nothing changes between the three reads).
    loadgen.stop_and_drain()
    page.wait_for_timeout(1500)
    _same_numbers(page, loadgen, ids)

    # The presets, in A/B: each changes the load at once.
    page.click("#btn-start")
    for name in ("idle", "busy", "stress"):
        page.click(f"#preset-{name}")
        expect(page.locator(f"#preset-{name}")).to_have_class(ON)
        preset = state["presets"][name]
        st = loadgen.wait_until(lambda s, c=preset["concurrency"]: s["effective"]["concurrency"] == c, 10, name)
        assert st["settings"]["preset"] == name and st["effective"]["alternating"]
        page.wait_for_timeout(6000)
        _shot(page, f"loadgen-preset-{name}.png")

    # The stress preset overloads a small machine (seconds of TTFT): let it drain and start afresh.
    loadgen.stop_and_drain(timeout=120)
    page.click("#btn-reset")
    expect(page.locator("#hl-tail")).to_have_text("collecting")

    # The single-routing switch stays for the two-step story.
    page.click("#preset-booth")
    page.click("#btn-start")
    page.click(f"#route-{ids[-1]}")
    expect(page.locator(f"#route-{ids[-1]}")).to_have_class(ON)
    expect(page.locator("#route-ab")).not_to_have_class(ON)
    st = loadgen.get("/api/state")
    assert not st["settings"]["ab"] and not st["effective"]["alternating"]
    page.wait_for_timeout(6000)
    _shot(page, "loadgen-collecting.png")

    # Auto mode through its four phases, alternating the routing whatever the switch says.
    for field in ("auto_ramp_s", "auto_steady_s", "auto_high_s", "auto_cooldown_s"):
        page.locator(f"#{field}").fill(str(PHASE_S))
        page.locator(f"#{field}").dispatch_event("change")
    loadgen.wait_until(lambda s: s["settings"]["auto_cooldown_s"] == PHASE_S, 10, "the phase durations")
    page.check("#auto")
    seen: list[str] = []
    deadline = time.monotonic() + 4 * PHASE_S + 10
    while len(set(seen)) < 4 and time.monotonic() < deadline:
        text = page.locator("#auto-phase").inner_text()
        phase = text.removeprefix("· ")
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)
            st = loadgen.get("/api/state")
            assert st["effective"]["alternating"], st["effective"]
        page.wait_for_timeout(300)
    phases = ["ramp-up", "steady", "high", "cooldown"]
    assert seen[:4] == phases or set(seen) == set(phases), seen
    expect(page.locator("#ab-note")).to_contain_text("alternating")
    # Not a README picture: 3-second phases jump to the busy preset at once (seconds of TTFT here).
    _shot(page, "loadgen-auto.png", OUTPUT)
    page.uncheck("#auto")
    loadgen.wait_until(lambda s: not s["settings"]["auto"], 10, "auto mode off")

    # Open a conversation from the list (one that has answered a turn: auto mode's retirements leave some at 0).
    row = page.locator("#conv-table tbody tr").filter(
        has=page.locator("td:nth-child(4)", has_text=re.compile(r"^[1-9]"))).first
    expect(row).to_be_visible(timeout=20_000)
    row.click()
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-turns .turn").first).to_contain_text("Turn 1")
    expect(page.locator("#detail-turns")).to_contain_text("worker")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    page.click("#btn-stop")


def _js_round(x: float) -> int:
    """JavaScript's Math.round (halves up), as the page formats."""
    return math.floor(x + 0.5)


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _same_numbers(page, loadgen, ids: list[str]) -> None:
    """Every headline element's exact value (data-value) and text agree with /api/state and /metrics."""
    stats = loadgen.get("/api/state")["stats"]
    metrics = _metrics(loadgen.base)

    def value(sel: str) -> str | None:
        return page.locator(sel).get_attribute("data-value")

    def text(sel: str) -> str:
        return page.locator(sel).inner_text()

    for fid in ids:
        h = stats["headlines"][fid]
        assert not h["collecting"] and h["measured"] == h["n"] > 0, h
        lab = (("routing", fid),)
        assert float(value(f"#hl-p90-{fid}")) == h["p90_ms"]
        assert float(value(f"#hl-p50-{fid}")) == h["p50_ms"]
        assert float(value(f"#hl-miss-{fid}")) == h["miss_share"]
        assert float(value(f"#hl-recomp-{fid}")) == h["recomputed_per_min"]
        assert int(value(f"#hl-n-{fid}")) == h["n"]
        assert text(f"#hl-miss-{fid}") == f"{_js_round(h['miss_share'] * 100)}%"
        assert text(f"#hl-p90-{fid}") == (f"{_js_round(h['p90_ms'])} ms" if h["p90_ms"] < 1000
                                          else f"{h['p90_ms'] / 1000:.2f} s")
        assert metrics[("loadgen_headline_followups", lab)] == h["n"]
        assert metrics[("loadgen_headline_followup_miss_ratio", lab)] == pytest.approx(h["miss_share"], abs=5e-5)
        assert metrics[("loadgen_headline_recomputed_tokens_per_minute", lab)] == pytest.approx(
            h["recomputed_per_min"], abs=0.05)
        for q, key in (("0.5", "p50_ms"), ("0.9", "p90_ms")):
            assert metrics[("loadgen_headline_followup_ttft_seconds", (("quantile", q), ("routing", fid)))] * 1000 \
                == pytest.approx(h[key], abs=0.05)
        # The counters behind the dashboard's rules count the same follow-ups' hits and misses.
        misses = metrics[("loadgen_followups_total", (("cache", "miss"), ("routing", fid)))]
        hits = metrics[("loadgen_followups_total", (("cache", "hit"), ("routing", fid)))]
        assert misses >= h["misses"] and hits + misses >= h["measured"]
    tail = stats["tail_ratio"]
    assert float(value("#hl-tail")) == tail["value"] and text("#hl-tail") == f"{tail['value']:.1f}×"
    titles = {f["id"]: f["title"] for f in loadgen.get("/api/state")["frontends"]}
    assert text("#hl-tail-label") == f"{titles[tail['slow']]} ÷ {titles[tail['fast']]}"
    assert float(value("#hl-median-ratio")) == stats["median_ratio"]["value"]
    shares = sorted(((stats["headlines"][f]["miss_share"], titles[f]) for f in ids), key=lambda x: -x[0])
    assert text("#hl-misses") == " · ".join(f"{t} {_js_round(v * 100)}%" for v, t in shares)
    print("page = /api/state = /metrics: " + "; ".join(
        f"{f} p90 {stats['headlines'][f]['p90_ms']} ms, p50 {stats['headlines'][f]['p50_ms']} ms, misses "
        f"{stats['headlines'][f]['miss_share']:.0%}, recomputed {stats['headlines'][f]['recomputed_per_min']}/min, "
        f"n {stats['headlines'][f]['n']}" for f in ids) + f"; tail ratio {tail}")
