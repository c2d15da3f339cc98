"""Fixtures of the load generator's integration tests: its API on the local demo, and Chromium."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from loadgen_support import CHROMIUM, LoadgenAPI


@pytest.fixture(scope="session")
def loadgen(local_demo) -> LoadgenAPI:
    # The demo's controls need the presenter token when the environment that ran site.yml gave one
    # (roles/loadgen's loadgen_presenter_token_env, GTC_PRESENTER_TOKEN by default).
    api = LoadgenAPI(local_demo.loadgen_url, token=os.environ.get("GTC_PRESENTER_TOKEN") or None)
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
