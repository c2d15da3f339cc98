"""Fixtures for the dynamo role's tests: every scenario rendered once (dynamo_render.py),
and a venv with the pinned ai-dynamo."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dynamo_render import REPO, SCENARIOS, Rendered, render  # type: ignore[import-not-found]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, Rendered]:
    """Every scenario rendered (in parallel: each run is mostly Ansible start-up)."""
    if not (REPO / ".collections" / "ansible_collections" / "do_solutions" / "gtc_demo").exists():
        pytest.fail("the collection link under .collections is missing: run `make setup`")
    roots = {name: tmp_path_factory.mktemp(f"dynamo-render-{name}") for name in SCENARIOS}
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {name: pool.submit(render, roots[name], *SCENARIOS[name]) for name in SCENARIOS}
    for name, future in runs.items():
        proc = future.result()
        if proc.returncode != 0:
            pytest.fail(f"render.yml failed for {name} (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return {name: Rendered(root) for name, root in roots.items()}


@pytest.fixture(scope="session")
def dynamo_python() -> Path:
    """Python of a venv holding the pinned ai-dynamo (1.6.1, the local demo's pins).

    benchmarks/run builds it once into ~/.cache/gtc-demo (or $GTC_BENCH_VENV)
    from files/local/dynamo-requirements.txt and prints its interpreter.
    """
    proc = subprocess.run([str(REPO / "benchmarks" / "run"), "--print-python"], cwd=REPO,
                          capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        pytest.fail(f"benchmarks/run --print-python failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    python = Path(proc.stdout.strip().splitlines()[-1])
    assert python.exists(), python
    return python
