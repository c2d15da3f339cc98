"""Renders what gtc_demo_speculative changes once per scenario (render.yml)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from speculative_helpers import SCENARIOS, render  # type: ignore[import-not-found]


@pytest.fixture(scope="session")
def spec_rendered(tmp_path_factory) -> dict[str, Path]:
    """Folder of each scenario's rendered files (runs in parallel: mostly Ansible start-up)."""
    roots = {name: tmp_path_factory.mktemp(f"spec-{name}") for name in SCENARIOS}
    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        runs = {name: pool.submit(render, roots[name], SCENARIOS[name]) for name in SCENARIOS}
    for name, future in runs.items():
        proc = future.result()
        if proc.returncode != 0:
            pytest.fail(f"render.yml failed for {name}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return roots
