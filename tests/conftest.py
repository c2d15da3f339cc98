"""Test-suite wide set-up: make tests/helpers.py importable as `helpers`."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest

# Session fixtures that start something under a fixed name and folder: the
# test cluster (tests/cluster), the fake DigitalOcean's control plane
# (tests/integration/infra) and the stand-ins' cluster (tests/integration/
# stand_ins). Under pytest-xdist (`make test` runs `-n 2 --dist loadgroup`)
# every test that uses one of them runs on the same worker, so each starts
# once, as in a serial run. The local demo takes free ports and a home of its
# own, so each worker that needs it starts its own and its tests spread.
SHARED_FIXTURES = ("k8s_cluster", "fake_do_cluster", "rehearsal")


def xdist_group_of(fixturenames: set[str]) -> str | None:
    """The worker group of a test that needs these fixtures; None: any worker."""
    used = [name for name in SHARED_FIXTURES if name in fixturenames]
    return "+".join(used) if used else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group_of(set(getattr(item, "fixturenames", ())))
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
