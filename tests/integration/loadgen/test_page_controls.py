"""The presenter's controls keep what the presenter set, however late the page's polls answer.

The page polls /api/state once a second and draws the controls from it. A poll asked before a
change and answered after it carries the old settings: CI on 2 busy cores saw the auto-mode
checkbox untick under Playwright's click ("Clicking the checkbox did not change its state").
Here the real app answers every poll 1.2 s late with the state it had when asked, so a stale
answer lands after every click: each control must come to its new value and keep it.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from loadgen_support import FLAGS, InThread, LoadgenAPI

from gtc_loadgen.corpus import load_seeds
from gtc_loadgen.server import build_app
from gtc_loadgen.settings import DEFAULT_PRESETS, Settings
from gtc_loadgen.targets import Targets, frontend

pytestmark = pytest.mark.integration

# Longer than the page's 1 s poll interval: some poll is always on its way back.
LATE_S = 1.2
# How long each control is watched after its click: past two late answers.
WATCH_S = 3.0
# A request the page sends that the server holds longer than the page's own 15 s limit.
HUNG_S = 40.0


class LateServer:
    """The load generator's real app on 127.0.0.1, in a thread. Every GET /api/state is answered
    LATE_S after the state was read; with ``hang_browser_changes`` set, a change the browser
    sends is held HUNG_S and then refused, never reaching the app (the test's own changes go
    through)."""

    def __init__(self) -> None:
        # The frontends are never called: the load stays stopped throughout.
        targets = Targets((frontend("kv", "http://127.0.0.1:9"), frontend("round_robin", "http://127.0.0.1:9")),
                          "m")
        self.app = build_app(targets, load_seeds(None), dict(DEFAULT_PRESETS), Settings(),
                             followup_base_url="http://127.0.0.1:9/v1", followup_model="x")
        self.app.middlewares.append(self._late)
        self.hang_browser_changes = False
        self._released: asyncio.Event | None = None  # set at the end: a held change stops waiting
        self._thread = InThread(self._serve, "late-loadgen")
        self.url = ""

    @web.middleware
    async def _late(self, request: web.Request, handler) -> web.StreamResponse:
        if request.method == "POST" and self.hang_browser_changes and "Chrome" in request.headers.get("User-Agent", ""):
            assert self._released is not None
            try:
                await asyncio.wait_for(self._released.wait(), HUNG_S)
            except TimeoutError:
                pass
            return web.json_response({"error": "held by the test"}, status=503)
        response = await handler(request)  # the state as it is now, serialized now
        if request.method == "GET" and request.path == "/api/state":
            await asyncio.sleep(LATE_S)
        return response

    @contextlib.asynccontextmanager
    async def _serve(self) -> AsyncIterator[str]:
        self._released = asyncio.Event()
        runner = web.AppRunner(self.app)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            await runner.cleanup()

    def __enter__(self) -> LateServer:
        self.url = self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._released is not None:
            self._thread.call(self._released.set)
        self._thread.stop()


@pytest.fixture(scope="module")
def late_server() -> Iterator[LateServer]:
    with LateServer() as server:
        yield server


@pytest.fixture()
def page(late_server, chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(late_server.url + "/")
            page.wait_for_selector("#route-ab")  # the switch is built from the first answered poll
            yield page
        finally:
            browser.close()


def _holds(page, read, want, what: str) -> None:
    """``read(page)`` comes to ``want`` (the switch and the presets wait for the server's answer,
    up to LATE_S late) and then equals it at every look for WATCH_S seconds."""
    deadline = time.monotonic() + LATE_S + 5
    while read(page) != want:
        assert time.monotonic() < deadline, f"{what}: never showed {want!r}"
        page.wait_for_timeout(50)
    seen = []
    deadline = time.monotonic() + WATCH_S
    while time.monotonic() < deadline:
        seen.append(read(page))
        page.wait_for_timeout(50)
    wrong = [v for v in seen if v != want]
    assert not wrong, f"{what}: {len(wrong)} of {len(seen)} looks showed {wrong[0]!r} again instead of {want!r}"


def checked(pg) -> bool:
    return pg.locator("#auto").is_checked()


def _on(selector: str):
    return lambda pg: "on" in (pg.locator(selector).get_attribute("class") or "").split()


def test_each_control_keeps_its_new_value_while_late_polls_answer(late_server, page) -> None:
    api = LoadgenAPI(late_server.url)
    for tick in (True, False):
        page.locator("#auto").click()
        assert checked(page) is tick  # the browser ticks it at once; a late poll must not undo it
        _holds(page, checked, tick, f"auto mode, {'ticked' if tick else 'unticked'}")
        assert api.get("/api/state")["settings"]["auto"] is tick

    for button, (key, value) in (("#route-round_robin", ("routing", "round_robin")), ("#route-ab", ("ab", True)),
                                 ("#route-kv", ("routing", "kv"))):
        page.locator(button).click()
        _holds(page, _on(button), True, f"the switch's {button}")
        assert api.get("/api/state")["settings"][key] == value

    page.locator("#preset-stress").click()
    _holds(page, _on("#preset-stress"), True, "the stress preset")
    stress = api.get("/api/state")
    assert stress["settings"]["preset"] == "stress"
    assert stress["settings"]["concurrency"] == DEFAULT_PRESETS["stress"].concurrency

    page.locator("#auto_ramp_s").fill("7")
    page.locator("#auto_ramp_s").dispatch_event("change")
    page.locator("#btn-start").focus()  # off the field: the page redraws a field only when it is not being typed in
    _holds(page, lambda pg: pg.locator("#auto_ramp_s").input_value(), "7", "the ramp-up duration")
    assert api.get("/api/state")["settings"]["auto_ramp_s"] == 7


def test_a_change_that_never_answers_does_not_freeze_the_page(late_server, page) -> None:
    api = LoadgenAPI(late_server.url)
    api.post("/api/settings", {"turns_max": 6})
    page.wait_for_function("document.getElementById('turns_max').value === '6'", timeout=10_000)
    late_server.hang_browser_changes = True
    try:
        page.locator("#auto").click()  # held by the server for longer than the page waits
        # Meanwhile another presenter's change (the test's) lands; the page must show it once it
        # stops waiting for its own change (15 s), long before the server answers that one.
        api.post("/api/settings", {"turns_max": 8})
        started = time.monotonic()
        page.wait_for_function("document.getElementById('turns_max').value === '8'", timeout=25_000)
        waited = time.monotonic() - started
    finally:
        late_server.hang_browser_changes = False
    assert waited < HUNG_S - 10, waited
    # The held change never reached the app: the page shows auto mode off again, and says why.
    assert page.locator("#auto").is_checked() is False
    assert page.locator("#message").inner_text() != ""


def test_the_api_says_its_answers_are_not_to_be_kept(late_server) -> None:
    # The page asks with cache "no-store" too: Chromium otherwise queues polls of one URL behind
    # each other (its cache lock), so on a slow server they answered one at a time, ever later.
    statuses = []
    for method, path, body in (("GET", "/api/state", None), ("GET", "/api/conversations", None),
                               ("POST", "/api/settings", b'{"turns_min": 2}'),
                               ("POST", "/api/settings", b'{"turns_min": "many"}'),
                               ("POST", "/api/settings", b"not JSON"), ("GET", "/api/conversations/c-none", None)):
        req = urllib.request.Request(late_server.url + path, body, {"content-type": "application/json"},
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, cache = resp.status, resp.headers.get("Cache-Control")
        except urllib.error.HTTPError as err:
            status, cache = err.code, err.headers.get("Cache-Control")
        assert cache == "no-store", (method, path, status)
        statuses.append(status)
    assert statuses == [200, 200, 200, 422, 400, 404]  # answers and refusals alike
    with urllib.request.urlopen(late_server.url + "/static/app.js", timeout=30) as resp:
        assert resp.headers.get("Cache-Control") is None  # the page's files may be kept as usual
