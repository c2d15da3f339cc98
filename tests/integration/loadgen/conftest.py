"""Helpers for the load generator's integration tests: its JSON API and Chromium."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


class LoadgenAPI:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.base + path, timeout=30) as resp:
            return json.load(resp)

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.base + path, json.dumps(body).encode(),
                                     {"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

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


@pytest.fixture(scope="session")
def loadgen(local_demo) -> LoadgenAPI:
    api = LoadgenAPI(local_demo.loadgen_url)
    health = api.get("/healthz")
    assert health["model"] == local_demo.model, health
    return api


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's chromium, installed here when missing (CI starts from a fresh machine)."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.fail("Debian's chromium is missing and cannot be installed here: apt-get install -y chromium")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
            if proc.returncode != 0:
                pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    assert CHROMIUM.exists(), "apt-get install chromium did not provide /usr/bin/chromium"
    return CHROMIUM
