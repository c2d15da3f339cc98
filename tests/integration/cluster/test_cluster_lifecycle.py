"""tests/cluster/up and down as a person (or CI) runs them: a second, separate cluster.

It has its own folder and name, so it runs beside the session's cluster; it
checks the kubeconfig works, that `up` is idempotent and that `down` leaves
no process behind.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


def processes_under(directory: Path) -> dict[int, str]:
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) in cmdline:
            found[int(proc.name)] = cmdline
    return found


def script(name, env, timeout=600):
    return subprocess.run([str(REPO / "tests" / "cluster" / name), *([] if name == "down" else ["--no-nodes"])],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_up_twice_then_down_leaves_no_process(tmp_path):
    directory = tmp_path / "cluster"
    env = dict(os.environ, GTC_TEST_CLUSTER_DIR=str(directory),
               GTC_TEST_CLUSTER_NAME=f"gtc-lifecycle-{uuid.uuid4().hex[:6]}")
    try:
        first = script("up", env)
        assert first.returncode == 0, first.stderr[-3000:]
        kubeconfig = Path(first.stdout.strip().splitlines()[-1])
        assert kubeconfig == directory / "kubeconfig" and kubeconfig.is_file()
        running = processes_under(directory)
        for component in COMPONENTS:
            assert any(f"/{component} " in cmd or cmd.startswith(f"{component} ") for cmd in running.values()), \
                (component, running)

        again = script("up", env)
        assert again.returncode == 0 and "reusing the running cluster" in again.stderr, again.stderr[-3000:]
        assert set(processes_under(directory)) == set(running)
    finally:
        down = script("down", env)
    assert down.returncode == 0, down.stderr[-3000:]
    assert processes_under(directory) == {}
    assert not (directory / "kubeconfig").exists()


def test_command_line_adds_a_booting_node_that_turns_ready(k8s_cluster):
    fixture = [str(REPO / ".venv" / "bin" / "python"), str(REPO / "tests" / "cluster" / "fixture.py")]
    name = f"cli-{uuid.uuid4().hex[:6]}"
    env = k8s_cluster.env()
    try:
        added = subprocess.run([*fixture, "add-node", name, "--pool", "cli-pool", "--not-ready"], env=env,
                               capture_output=True, text=True, timeout=120, check=False)
        assert added.returncode == 0, added.stderr
        node = k8s_cluster.core().read_node(name)
        assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["False"]
        assert node.metadata.labels["doks.digitalocean.com/node-pool"] == "cli-pool"
        ready = subprocess.run([*fixture, "ready-node", name], env=env, capture_output=True, text=True,
                               timeout=120, check=False)
        assert ready.returncode == 0, ready.stderr
        node = k8s_cluster.core().read_node(name)
        assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
        assert node.status.allocatable["nvidia.com/gpu"] == "8"
    finally:
        k8s_cluster.delete_test_nodes(owner="cli")
