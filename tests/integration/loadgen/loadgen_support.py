"""What the load generator's integration tests share: its JSON API, the Chromium flags, and a
streaming OpenAI-style server in a thread that stands in for any number of frontends."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Generic, TypeVar

import pytest

T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
FAKE_OPENAI = Path(__file__).resolve().parents[2] / "unit" / "loadgen" / "fake_openai.py"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]


class InThread(Generic[T]):
    """An asyncio server on its own event loop in a daemon thread. ``start()`` enters ``serve()``
    there and returns what it yields; ``call(fn)`` runs ``fn`` on that loop; ``stop()`` leaves
    ``serve()`` and ends the thread."""

    def __init__(self, serve: Callable[[], AbstractAsyncContextManager[T]], name: str) -> None:
        self._serve = serve
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._served: T | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            async with self._serve() as served:
                self._served = served
                self._ready.set()
                await self._stop.wait()
        self._loop.run_until_complete(main())

    def start(self) -> T:
        self._thread.start()
        assert self._ready.wait(20), f"{self._thread.name} did not start"
        assert self._served is not None
        return self._served

    def call(self, fn: Callable[[], object]) -> None:
        self._loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)


class FakeFrontends:
    """tests/unit/loadgen/fake_openai.py served from a thread: ``url(id)`` is a frontend's base
    URL, and ``reached()`` the ids whose URL got a request (the path names the frontend)."""

    def __init__(self) -> None:
        spec = importlib.util.spec_from_file_location("gtc_fake_openai", FAKE_OPENAI)
        assert spec is not None and spec.loader is not None
        self._module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
        if spec.name not in sys.modules:
            sys.modules[spec.name] = self._module  # its dataclasses look their module up there
            spec.loader.exec_module(self._module)
        self._thread = InThread(self._module.fake_server, "fake-frontends")
        self.server = None

    def start(self) -> FakeFrontends:
        self.server = self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    def url(self, frontend_id: str) -> str:
        return f"{self.server.base}/{frontend_id}"

    def reached(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for mode, _body in list(self.server.requests):
            counts[mode] = counts.get(mode, 0) + 1
        return counts


class LoadgenAPI:
    """The app's JSON API; ``token``: the presenter token its controls (POSTs) send, if any."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.token = token

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.base + path, timeout=30) as resp:
            return json.load(resp)

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.base + path, json.dumps(body).encode(), self._headers())
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    def post_status(self, path: str, body: dict) -> tuple[int, str]:
        """(HTTP status, the error's message) of a POST the app refuses."""
        req = urllib.request.Request(self.base + path, json.dumps(body).encode(), self._headers())
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, ""
        except urllib.error.HTTPError as err:
            return err.code, json.load(err).get("error", "")

    def wait_until(self, pred, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        state = self.get("/api/state")
        while not pred(state):
            if time.monotonic() > deadline:
                pytest.fail(f"load generator: {what} not reached in {timeout:.0f} s; "
                            f"totals={state['stats']['totals']} errors={state['stats']['errors_by_kind']} "
                            f"last={state['stats']['last_errors'][-2:]}")
            time.sleep(0.5)
            state = self.get("/api/state")
        return state

    def stop_and_drain(self, timeout: float = 60) -> None:
        self.post("/api/settings", {"running": False})
        self.wait_until(lambda s: sum(s["active"].values()) == 0, timeout, "all conversations stopped")
