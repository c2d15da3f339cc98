"""Fixtures of the chart tests (helpers in charts_support.py)."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from charts_support import INVENTORIES, render_plan  # noqa: E402  pylint: disable=wrong-import-position
from helpers import cluster_support  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def helm() -> Path:
    path = cluster_support().build_binaries() / "helm"
    assert path.is_file(), f"tests/cluster/build did not make {path}"
    return path


@pytest.fixture(scope="session")
def plans(helm, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """{inventory name: the plan render_plan.yml wrote}, rendered in parallel."""
    root = tmp_path_factory.mktemp("plans")
    with ThreadPoolExecutor(max_workers=len(INVENTORIES)) as pool:
        runs = {name: pool.submit(render_plan, inv, root / f"{name}.json", helm_dir=helm.parent)
                for name, inv in INVENTORIES.items()}
    out = {}
    for name, future in runs.items():
        proc = future.result()
        assert proc.returncode == 0, f"render_plan.yml failed for {name}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
        out[name] = json.loads((root / f"{name}.json").read_text())
    return out
