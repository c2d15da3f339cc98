"""Make the collection importable as ansible_collections.do_solutions.gtc_demo.

`make setup` links the checkout under .collections/ansible_collections; the
ansible_collections namespace package then spans it and the venv's copy, so
kubernetes.core (from the ansible package) resolves as well.
"""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
COLLECTIONS = REPO / ".collections"

if not (COLLECTIONS / "ansible_collections" / "do_solutions" / "gtc_demo").exists():
    pytest.exit(f"{COLLECTIONS} is missing: run `make setup` first", returncode=2)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
