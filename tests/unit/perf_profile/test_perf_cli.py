"""files/perf_profile works both ways: as the package the benchmarks import, and as the file the
dynamo role runs (``python files/perf_profile/llama_perf_profile.py --gpu G --tp N --out F``)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import perf_profile
from perf_profile import llama_perf_profile as perf

FOLDER = Path(__file__).resolve().parents[3] / "files" / "perf_profile"


def test_the_package_is_the_collection_folder():
    assert Path(perf_profile.__file__).resolve().parent == FOLDER
    assert perf.build_profile("h200", 2).source.startswith("measured on NVIDIA H200")


@pytest.mark.parametrize("tp", [2, 4])
def test_the_cli_as_the_dynamo_role_runs_it(tmp_path, tp):
    out = tmp_path / f"h200-tp{tp}.npz"
    # from another folder, with nothing on PYTHONPATH: the file finds its siblings by itself
    proc = subprocess.run([sys.executable, str(FOLDER / "llama_perf_profile.py"), "--gpu", "h200", "--tp", str(tp),
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, check=False,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    profile = perf.build_profile("h200", tp)
    assert printed == {**perf.summary(profile), "npz": str(out)}
    assert printed["num_gpu_blocks"] == perf.kv_capacity("h200", tp).num_gpu_blocks
    expected = perf.write_npz(profile, tmp_path / "from-the-package.npz")
    assert out.read_bytes() == expected.read_bytes()


def test_measured_runs_as_a_file():
    proc = subprocess.run([sys.executable, str(FOLDER / "measured.py")], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "H200" in proc.stdout and "|" in proc.stdout  # its markdown tables
