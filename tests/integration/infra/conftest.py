"""The fake DigitalOcean API behind Prism, for the infra role's contract tests.

One fake and one Prism serve the whole session (Prism takes ~10-25 s to load
DigitalOcean's 3 MB spec); each test starts from an empty fake, and fails if
Prism reported any request or response that breaks DigitalOcean's spec.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_do.harness import TOKEN, DoApi, InfraRunner
from fake_do.prism import Prism
from fake_do.server import FakeServer


@pytest.fixture(scope="session")
def do_api_session() -> Iterator[DoApi]:
    server = FakeServer(TOKEN).start()
    prism = Prism(server.url)
    try:
        prism.start()
    except Exception:
        server.stop()
        raise
    try:
        yield DoApi(server, prism)
    finally:
        prism.stop()
        server.stop()


@pytest.fixture
def do_api(do_api_session: DoApi) -> Iterator[DoApi]:
    """An empty fake for this test; Prism's verdict on its traffic is checked afterwards."""
    do_api_session.control("/_fake/reset", {"token": TOKEN, "provision_seconds": 0.5, "node_seconds": 0.5,
                                            "delete_seconds": 0.3})
    do_api_session.checked_from = do_api_session.prism.mark()
    yield do_api_session
    time.sleep(0.3)  # let Prism's last log lines arrive
    violations = do_api_session.prism.violations_since(do_api_session.checked_from)
    assert not violations, "Prism found traffic that breaks DigitalOcean's OpenAPI spec:\n" + "\n".join(violations)


@pytest.fixture
def infra(do_api: DoApi) -> Iterator[InfraRunner]:
    workdir = Path(tempfile.mkdtemp(prefix="gtc-demo-infra-"))
    yield InfraRunner(do_api, workdir)
    shutil.rmtree(workdir, ignore_errors=True)
