"""Make files/perf_profile (measure.py, measured.py, llama_perf_profile.py) importable."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PERF = REPO / "files" / "perf_profile"
if str(PERF) not in sys.path:
    sys.path.insert(0, str(PERF))
