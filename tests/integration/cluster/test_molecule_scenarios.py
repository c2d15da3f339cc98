"""Molecule's scenarios run from `make test`.

`default` runs its whole test sequence against the session's test cluster:
create.yml finds the cluster running and destroy.yml leaves it running (it
stops only a cluster it started). `kind` needs Docker, which CI lacks, so only
its syntax is checked here.
"""

from __future__ import annotations

import os
import re
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
    # The seven actions of the sequence ran and passed; each playbook's play shows up.
    assert re.search(r"default\s+: actions=7\s+successful=7\s+disabled=0\s+skipped=0\s+missing=0\s+failed=0",
                     output), output[-3000:]
    for play in ("Create the test cluster", "Converge - wait for the GPU pool", "Verify - the GPU pool",
                 "Destroy the test cluster if this scenario started it"):
        assert f"PLAY [{play}" in output, play
    # converge ran twice (converge, idempotence): the second time nothing changed.
    assert output.count("PLAY [Converge - wait for the GPU pool") == 2
    # destroy.yml did not stop the cluster the session started.
    assert k8s_cluster.core().list_node(label_selector="doks.digitalocean.com/node-pool=pool-gpu-h100").items


def test_molecule_kind_scenario_syntax():
    proc = molecule("syntax", "-s", "kind")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    output = proc.stdout + proc.stderr
    assert "playbook: " in output and "molecule/kind/converge.yml" in output
    assert "successful=1" in output and "failed=0" in output
