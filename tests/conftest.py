"""Test-suite wide set-up: make tests/helpers.py importable as `helpers`."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest

# How `make test` spreads the suite over two pytest-xdist workers
# (`-n 2 --dist loadgroup`): a test module stays whole on one worker, because
# its module-scoped fixtures (a rehearsal, a rendered role, a cluster of its
# own) would otherwise start once per worker, and some modules run ordered
# stages (the rehearsal: site, rerun, check, teardown). Session fixtures that
# start something under a fixed name and folder (the test cluster of
# tests/cluster, the fake DigitalOcean's control plane of tests/integration/infra,
# the stand-ins' cluster of tests/integration/stand_ins) take every module that
# uses them onto one worker, so each starts once, as in a serial run. The local
# demo takes free ports and a home of its own, so each worker that needs it
# starts its own.
SHARED_FIXTURES = ("k8s_cluster", "fake_do_cluster", "rehearsal")


def xdist_group_of(module: str, fixturenames: set[str]) -> str:
    """The worker group of a test in ``module`` that needs these fixtures."""
    used = [name for name in SHARED_FIXTURES if name in fixturenames]
    return "+".join(used) if used else module


# tryfirst: pytest-xdist's worker reads the xdist_group markers in its own
# pytest_collection_modifyitems; run after it, the groups would go unseen and
# every test would be scheduled on its own.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        group = xdist_group_of(module, set(getattr(item, "fixturenames", ())))
        # A module with one test on a shared fixture keeps all its tests in that group.
        groups[module] = group if group != module else groups.get(module, module)
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(groups[item.nodeid.split("::")[0]]))
