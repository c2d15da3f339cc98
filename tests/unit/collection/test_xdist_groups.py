"""`make test` runs pytest on two workers and relies on --dist loadgroup keeping a
module, and each fixed-name shared cluster, on one worker (tests/conftest.py).
pytest 9.2 broke that silently with pytest-xdist 3.8.0 (pytest-dev/pytest-xdist#1386):
this checks that the pinned pair still groups."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from helpers import REPO

# By path: several conftest.py files exist, and "conftest" may name another.
_SPEC = importlib.util.spec_from_file_location("gtc_tests_conftest", REPO / "tests" / "conftest.py")
assert _SPEC and _SPEC.loader
_CONFTEST = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_CONFTEST)
xdist_group_of = _CONFTEST.xdist_group_of


def test_a_module_is_its_own_group_unless_it_uses_a_shared_cluster() -> None:
    assert xdist_group_of("tests/a.py", {"tmp_path"}) == "tests/a.py"
    assert xdist_group_of("tests/a.py", {"k8s_cluster", "tmp_path"}) == "k8s_cluster"
    assert xdist_group_of("tests/b.py", {"fake_do_cluster"}) == "fake_do_cluster"


def test_the_pinned_pytest_and_xdist_keep_a_group_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_grouped.py").write_text(
        "import pytest\n\npytestmark = pytest.mark.xdist_group('one')\n\n"
        + "".join(f"def test_{i}():\n    pass\n\n" for i in range(6)))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                           "no:cacheprovider", "test_grouped.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    workers = set(re.findall(r"\[(gw\d)\] .*PASSED", proc.stdout))
    assert len(re.findall(r"PASSED", proc.stdout)) == 6 and len(workers) == 1, proc.stdout[-2000:]
