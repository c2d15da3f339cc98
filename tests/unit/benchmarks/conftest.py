"""Make the benchmark package (benchmarks/gtc_bench) and the perf-profile script importable."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
for path in (REPO / "benchmarks", REPO / "files" / "perf_profile"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
