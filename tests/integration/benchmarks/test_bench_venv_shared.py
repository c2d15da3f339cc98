"""The benchmark venv is cached once per machine and shared by every checkout: each
checkout's launcher must import that checkout's code, whichever checkout built the venv.
(A CI run failed when the cached venv held an editable install of a deleted clone.)"""

import shutil
import subprocess
from pathlib import Path

from helpers import REPO


def _checkout(root: Path, marker: str) -> Path:
    """A checkout with benchmarks/run and a gtc_bench, perf_profile and gtc_loadgen that say who they are."""
    (root / "benchmarks").mkdir(parents=True)
    for name in ("benchmarks/run", "benchmarks/requirements.txt", "benchmarks/pyproject.toml",
                 "files/local/dynamo-requirements.txt", "apps/loadgen/pyproject.toml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    for package in ("benchmarks/gtc_bench", "files/perf_profile", "apps/loadgen/src/gtc_loadgen"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text(f"WHERE = {marker!r}\n")
    return root


def test_each_checkout_imports_its_own_code_from_the_shared_venv(bench_python: str, tmp_path: Path) -> None:
    venv = Path(bench_python).parents[2]  # <venv>/checkouts/<id>/python
    assert (venv / ".complete").exists(), venv
    seen = {}
    for name in ("one", "two"):
        checkout = _checkout(tmp_path / name, name)
        proc = subprocess.run([str(checkout / "benchmarks" / "run"), "--print-python"], capture_output=True,
                              text=True, timeout=300, check=False, env={"GTC_BENCH_VENV": str(venv), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        launcher = proc.stdout.strip().splitlines()[-1]
        code = "import gtc_bench, perf_profile, gtc_loadgen, dynamo; print(gtc_bench.WHERE, perf_profile.WHERE, gtc_loadgen.WHERE)"
        out = subprocess.run([launcher, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        seen[name] = (launcher, out.stdout.split())
    assert seen["one"][1] == ["one"] * 3 and seen["two"][1] == ["two"] * 3
    assert seen["one"][0] != seen["two"][0]
    # The venv itself holds no checkout's code.
    assert not list(venv.glob("lib/python*/site-packages/__editable__*"))
    shutil.rmtree(tmp_path / "one")
    out = subprocess.run([seen["two"][0], "-c", "import gtc_bench; print(gtc_bench.WHERE)"], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.stdout.split() == ["two"], out.stderr[-2000:]
