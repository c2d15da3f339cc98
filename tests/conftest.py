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
# start one thing per run take every module that uses them onto one worker,
# and so does any module that shares a module with such a fixture: the groups
# are the connected components of "uses the same shared fixture".
# - k8s_cluster, fake_do_cluster and the stand-ins' `rehearsal` start under a
#   fixed name and folder, so two workers would fight over them.
# - local_demo could start once per worker (free ports, its own home), but its
#   teardown test (marked local_demo_teardown, moved to the end) tears down the
#   demo of the worker it runs on: every module that uses the demo must run
#   before it, on that worker. A CI run that spread them failed on it (the
#   validate_inference tests found the demo gone).
SHARED_FIXTURES = ("k8s_cluster", "fake_do_cluster", "rehearsal", "local_demo")


def xdist_groups(modules: dict[str, set[str]]) -> dict[str, str]:
    """The worker group of each module, from the shared fixtures (or explicit groups) it uses.

    ``modules`` maps a module to the shared fixtures and explicit ``xdist_group``
    names of its tests. A module that uses none is a group of its own.
    """
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for module, shared in modules.items():
        for name in shared:
            parent[root(name)] = root(module)
    members: dict[str, set[str]] = {}
    for module, shared in modules.items():
        members.setdefault(root(module), set()).update(shared)
    return {module: "+".join(sorted(members[root(module)])) or module for module in modules}


# tryfirst: pytest-xdist's worker reads the xdist_group markers in its own
# pytest_collection_modifyitems; run after it, the groups would go unseen and
# every test would be scheduled on its own.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    modules: dict[str, set[str]] = {}
    for item in items:
        shared = modules.setdefault(item.nodeid.split("::")[0], set())
        shared.update(name for name in SHARED_FIXTURES if name in getattr(item, "fixturenames", ()))
        shared.update(f"group:{mark.args[0]}" for mark in item.iter_markers("xdist_group") if mark.args)
    groups = xdist_groups(modules)
    for item in items:
        # One mark per test: xdist reads the first; an explicit one is replaced by its component's.
        item.own_markers = [m for m in item.own_markers if m.name != "xdist_group"]
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid.split("::")[0]]))
