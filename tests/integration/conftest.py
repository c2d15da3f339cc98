"""The local demo as a session fixture, shared by every integration test that
needs the running stack (Dynamo frontends, mocker workers, load generator).

The first test that asks for `local_demo` runs `site.yml -i inventories/local`
for real, on free ports and in a temporary GTC_DEMO_HOME, so a developer's own
demo on the default ports is left alone. The teardown test (marked
`local_demo_teardown`) is moved to the very end of the run.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from helpers import REPO, PlaybookRun, cluster_support, free_ports, processes_mentioning, run_playbook

MODEL = "nvidia/Llama-3.1-70B-Instruct-FP8"

# The real control plane with kwok DOKS nodes (tests/cluster), shared by every
# test folder that asks for it; started once per session.
k8s_cluster = cluster_support().k8s_cluster
REPLICAS = 2
# `make demo` installs ansible-core alone (requirements/demo.txt), without the
# `ansible` package's collections: the local demo runs with no collection but
# this one visible, so a local code path that needs kubernetes.core (or any
# other) fails here rather than on a newcomer's laptop.
# The one exception is ansible.posix, for the tests' own JSON callback
# (ansible.builtin.json redirects to it).


def _lean_collections() -> Path:
    """A collections path with this collection and ansible.posix (the callback) only."""
    from ansible_collections.ansible import posix  # the `ansible` package's, in the tooling venv

    # Outside the checkout (a link back into it would loop any tree walk), one per test process.
    path = Path(tempfile.mkdtemp(prefix="gtc-lean-collections-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    for link, target in ((path / "ansible_collections" / "do_solutions" / "gtc_demo", REPO),
                         (path / "ansible_collections" / "ansible" / "posix", Path(posix.__path__[0]))):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return path


LEAN_ANSIBLE = {"ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False", "ANSIBLE_COLLECTIONS_PATH": str(_lean_collections())}


@dataclass
class LocalDemo:
    """Where the running local demo answers, and how it was brought up."""

    home: Path
    extra_vars_file: Path
    frontends: dict[str, str]  # routing id -> base URL, in gtc_demo_frontends' order
    loadgen_url: str
    worker_metrics_urls: list[str]
    model: str = MODEL
    replicas: int = REPLICAS
    first_run: PlaybookRun | None = None
    runs: list[PlaybookRun] = field(default_factory=list)

    @property
    def kv_url(self) -> str:
        return self.frontends["kv"]

    @property
    def round_robin_url(self) -> str:
        return self.frontends["round_robin"]

    def playbook(self, playbook: str, *extra: str, json_output: bool = False,
                 env: dict[str, str] | None = None) -> PlaybookRun:
        run = run_playbook(
            playbook, "-e", f"@{self.extra_vars_file}", *extra,
            env={**(env or {}), "GTC_DEMO_HOME": str(self.home), **LEAN_ANSIBLE}, json_output=json_output,
        )
        self.runs.append(run)
        return run


def default_frontends_on(ports: list[int]) -> dict[str, dict]:
    """roles/_common's gtc_demo_frontends (the one definition), each on a port of ours."""
    defaults = yaml.safe_load((REPO / "roles" / "_common" / "defaults" / "main.yml").read_text())
    frontends = defaults["gtc_demo_frontends"]
    assert len(ports) == len(frontends)
    return {key: {**spec, "local_port": port} for (key, spec), port in zip(frontends.items(), ports)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the local demo's teardown test after every other test."""
    last = [i for i in items if i.get_closest_marker("local_demo_teardown")]
    for item in last:
        items.remove(item)
        items.append(item)


@pytest.fixture(scope="session")
def local_demo() -> Iterator[LocalDemo]:
    home = Path(tempfile.mkdtemp(prefix="gtc-demo-test-"))
    *frontend_ports, loadgen = free_ports(3)
    metrics_base = free_ports(REPLICAS + 1, consecutive=True)[0]
    frontends = default_frontends_on(frontend_ports)
    extra_vars = {
        "gtc_demo_frontends": frontends,
        "dynamo_local_worker_metrics_port_base": metrics_base,
        "loadgen_local_port": loadgen,
    }
    # Outside `home`: teardown removes home, and reruns still need the file.
    extra_vars_file = Path(tempfile.mkdtemp(prefix="gtc-demo-vars-")) / "test-vars.json"
    extra_vars_file.write_text(json.dumps(extra_vars))
    demo = LocalDemo(
        home=home,
        extra_vars_file=extra_vars_file,
        frontends={key: f"http://127.0.0.1:{spec['local_port']}" for key, spec in frontends.items()},
        loadgen_url=f"http://127.0.0.1:{loadgen}",
        worker_metrics_urls=[f"http://127.0.0.1:{metrics_base + i + 1}/metrics" for i in range(REPLICAS)],
    )
    demo.first_run = demo.playbook("site.yml")
    if demo.first_run.returncode != 0:
        demo.playbook("playbooks/teardown.yml")
        _kill_leftovers(home)
        pytest.fail(f"site.yml -i inventories/local failed:\n{demo.first_run.output[-6000:]}")
    yield demo
    # The teardown test normally did this already; make sure nothing is left
    # running even when it was not selected or failed half-way.
    if home.exists():
        demo.playbook("playbooks/teardown.yml")
        _kill_leftovers(home)
        shutil.rmtree(home, ignore_errors=True)


def _kill_leftovers(home: Path) -> None:
    """Last resort after a failed run: no process of this test demo may outlive the session.

    The teardown test asserts that teardown alone leaves nothing; this only
    keeps a broken run from leaving a supervisord behind for the next one.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [int(line.split(":", 1)[0]) for line in processes_mentioning(str(home))]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if pids:
            time.sleep(3)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def pool_name(k8s_cluster):
    """A node pool of this test's own; its nodes are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:6]}"
    yield name
    k8s_cluster.delete_test_nodes(owner=name)
