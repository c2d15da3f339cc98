"""The benchmark venv, built (once, cached) by the benchmark's own command."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
RUN = REPO / "benchmarks" / "run"


@pytest.fixture(scope="session")
def bench_python() -> str:
    """The venv's python: Dynamo 1.6.1, matplotlib, and this checkout's gtc_bench, perf_profile and gtc_loadgen."""
    proc = subprocess.run([str(RUN), "--print-python"], capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, f"benchmarks/run could not build its venv:\n{proc.stderr[-3000:]}"
    python = proc.stdout.strip().splitlines()[-1]
    assert Path(python).exists(), python
    return python
