"""`make test` runs pytest on two workers and relies on --dist loadgroup keeping a
module, and each fixed-name shared cluster, on one worker (tests/conftest.py).
pytest 9.2 broke that silently with pytest-xdist 3.8.0 (pytest-dev/pytest-xdist#1386):
this checks that the pinned pair still groups."""
from __future__ import annotations

import importlib.util
import os
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
xdist_groups = _CONFTEST.xdist_groups


def test_a_module_is_its_own_group_unless_it_uses_a_shared_fixture() -> None:
    groups = xdist_groups({"tests/a.py": set(), "tests/b.py": {"k8s_cluster"}, "tests/c.py": {"fake_do_cluster"},
                           "tests/d.py": {"k8s_cluster"}})
    assert groups == {"tests/a.py": "tests/a.py", "tests/b.py": "k8s_cluster", "tests/c.py": "fake_do_cluster",
                      "tests/d.py": "k8s_cluster"}


def test_modules_that_share_any_fixture_share_one_worker() -> None:
    # The CI failure: the rehearsal used local_demo and the stand-ins' rehearsal; validate_inference
    # used local_demo only; the teardown test ended the demo on one worker while the other still used it.
    groups = xdist_groups({
        "tests/rehearsal.py": {"rehearsal", "local_demo"},
        "tests/stand_ins.py": {"rehearsal"},
        "tests/validate.py": {"local_demo"},
        "tests/image.py": {"group:loadgen_image", "local_demo"},
        "tests/cluster.py": {"k8s_cluster"},
    })
    together = {groups[m] for m in ("tests/rehearsal.py", "tests/stand_ins.py", "tests/validate.py", "tests/image.py")}
    assert together == {"group:loadgen_image+local_demo+rehearsal"}
    assert groups["tests/cluster.py"] == "k8s_cluster"


GROUP_REPORT = """
def pytest_collection_finish(session):
    for item in session.items:
        demo = "local_demo" in getattr(item, "fixturenames", ())
        last = item.get_closest_marker("local_demo_teardown") is not None
        print("GROUP", item.get_closest_marker("xdist_group").args[0], int(demo), int(last), item.nodeid)
"""


def test_every_local_demo_test_runs_before_the_teardown_on_its_worker(tmp_path: Path) -> None:
    """The real suite's groups: one group holds every test of the local demo, with the teardown last."""
    (tmp_path / "group_report.py").write_text(GROUP_REPORT)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-n", "0", "-p", "group_report", "tests/integration"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    rows = [line.split(" ", 4)[1:] for line in proc.stdout.splitlines() if line.startswith("GROUP ")]
    demo_groups = {row[0] for row in rows if row[1] == "1"}  # group, uses the demo, is the teardown, node id
    assert len(demo_groups) == 1, demo_groups
    in_group = [(row[2], row[3]) for row in rows if row[0] in demo_groups]
    assert len(in_group) > 20 and in_group[-1][0] == "1", in_group[-3:]
    assert [nodeid for last, nodeid in in_group if last == "1"] == [in_group[-1][1]]


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
