"""Make the collection importable as ansible_collections.do_solutions.gtc_demo (linked by `make setup`)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
COLLECTIONS = REPO / ".collections"
if not (COLLECTIONS / "ansible_collections" / "do_solutions" / "gtc_demo" / "plugins").is_dir():
    raise pytest.UsageError(f"{COLLECTIONS}/ansible_collections/do_solutions/gtc_demo is missing: run `make setup`")
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
