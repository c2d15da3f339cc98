"""The fake DigitalOcean API behind Prism, for the infra role's contract tests.

One fake and one Prism serve the whole session (Prism takes ~10-25 s to load
DigitalOcean's 3 MB spec); each test starts from an empty fake, and fails if
Prism reported any request or response that breaks DigitalOcean's spec.

The fake's clusters are real (tests/fake_do/kube_backend.py): a test control
plane of its own (no CRDs, no nodes, loopback network; name and folder from
$GTC_FAKE_DO_CLUSTER, default gtc-fake-do in /tmp/<name>-cluster) serves every
kubeconfig the fake hands out, and the node pools' nodes appear in it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_do.harness import TOKEN, DoApi, InfraRunner
from fake_do.kube_backend import KubeBackend
from fake_do.prism import Prism
from fake_do.server import FakeServer
from helpers import cluster_support


@pytest.fixture(scope="session")
def fake_do_cluster() -> Iterator[Any]:
    """The control plane behind the fake's clusters (started here, stopped at the end)."""
    name = os.environ.get("GTC_FAKE_DO_CLUSTER", "gtc-fake-do")
    with cluster_support().rehearsal_cluster(name, crds=None, nodes=False) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def do_api_session(fake_do_cluster: Any) -> Iterator[DoApi]:
    server = FakeServer(TOKEN, cluster_backend=KubeBackend(fake_do_cluster)).start()
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
    backend = do_api_session.fake.cluster_backend
    assert not backend.errors, "the cluster backend failed: " + "; ".join(backend.errors)
    time.sleep(0.3)  # let Prism's last log lines arrive
    violations = do_api_session.prism.violations_since(do_api_session.checked_from)
    assert not violations, "Prism found traffic that breaks DigitalOcean's OpenAPI spec:\n" + "\n".join(violations)


@pytest.fixture
def infra(do_api: DoApi) -> Iterator[InfraRunner]:
    workdir = Path(tempfile.mkdtemp(prefix="gtc-demo-infra-"))
    yield InfraRunner(do_api, workdir)
    shutil.rmtree(workdir, ignore_errors=True)
