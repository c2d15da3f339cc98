"""Molecule's scenarios run from `make test`.

`default` runs its whole test sequence against the session's test cluster:
create.yml finds the cluster running and destroy.yml leaves it running (it
stops only a cluster it started). `kind` needs Docker, which CI lacks, so only
its syntax is checked here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def molecule(*args, env=None, timeout=600):
    bin_dir = Path(sys.executable).parent
    run_env = dict(env or os.environ)
    run_env["PATH"] = f"{bin_dir}{os.pathsep}{run_env.get('PATH', '')}"
    run_env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    run_env["NO_COLOR"] = "1"
    return subprocess.run([str(bin_dir / "molecule"), *args], cwd=REPO, env=run_env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def test_molecule_default_scenario_against_the_test_cluster(k8s_cluster):
    proc = molecule("test", "-s", "default", env=k8s_cluster.env())
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for action in ("create", "converge", "idempotence", "verify", "destroy"):
        assert f"default ➜ {action}: Executed: Successful" in output, action
    # destroy.yml did not stop the cluster the session started.
    assert k8s_cluster.core().list_node(label_selector="doks.digitalocean.com/node-pool=pool-gpu-h100").items


def test_molecule_kind_scenario_syntax():
    proc = molecule("syntax", "-s", "kind")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "kind ➜ syntax: Executed: Successful" in proc.stdout + proc.stderr
