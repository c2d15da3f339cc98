"""Bad input stops the Stack 2 roles before they reach the cluster.

The kubeconfig here points at a closed port: had a role tried to change (or
even read) anything, the run would fail with a connection error instead of the
message that names the variable at fault.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import fake_helm

REPO = Path(__file__).resolve().parents[3]
STACK2 = Path(__file__).resolve().parent  # stack2.yml and its inventory
SECRETS = {"HF_TOKEN": "hf_x", "GRADIENT_API_KEY": "g_x", "DIGITALOCEAN_ACCESS_TOKEN": "dop_x",
           "SPACES_ACCESS_KEY_ID": "id_x", "SPACES_SECRET_ACCESS_KEY": "secret_x"}


@pytest.fixture(scope="module")
def dead_kubeconfig(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kube") / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "dead", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "dead"}}],
    }))
    return path


@pytest.fixture(scope="module")
def helm_on_path(tmp_path_factory) -> Path:
    """cluster_config's preflight wants a Helm v3 on PATH; this one only answers `helm version --short`."""
    return fake_helm(tmp_path_factory.mktemp("bin"))


def run(kubeconfig: Path, *args: str, drop: tuple[str, ...] = (), helm_dir: Path | None = None,
        **extra) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8S_AUTH_")}
    env.update(SECRETS, KUBECONFIG=str(kubeconfig), K8S_AUTH_CONTEXT="dead", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    if helm_dir is not None:
        env["PATH"] = f"{helm_dir}{os.pathsep}{env.get('PATH', '')}"
    for name in drop:
        env.pop(name, None)
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(STACK2 / "stack2.yml"),
           "-i", str(STACK2 / "inventory"), "-e", json.dumps(extra), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("missing", ["HF_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"])
def test_a_missing_secret_variable_is_named(dead_kubeconfig, helm_on_path, missing):
    proc = run(dead_kubeconfig, drop=(missing,), helm_dir=helm_on_path)
    assert proc.returncode != 0
    assert f"Set the environment variable(s) {missing} before running cluster_config" in proc.stdout, proc.stdout[-3000:]
    assert "Connection refused" not in proc.stdout and "127.0.0.1:9" not in proc.stdout
    for value in SECRETS.values():
        assert value not in proc.stdout


def test_a_model_typo_is_refused_before_the_graph(dead_kubeconfig, helm_on_path):
    proc = run(dead_kubeconfig, "--tags", "dynamo", helm_dir=helm_on_path, gtc_demo_model="nvidia/Llama-3.1-70B-Instruct-FP9")
    assert proc.returncode != 0
    # model_sync's check or dynamo's, whichever runs first: both name the model and say it is unknown.
    out = " ".join(proc.stdout.split())
    assert '"nvidia/Llama-3.1-70B-Instruct-FP9" is not a known model' in out, proc.stdout[-3000:]
    assert "Connection refused" not in proc.stdout


def test_more_gpus_than_the_pool_is_refused(dead_kubeconfig, helm_on_path):
    proc = run(dead_kubeconfig, "--tags", "dynamo", helm_dir=helm_on_path, dynamo_replicas=3)
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "dynamo_replicas (3) x dynamo_tensor_parallel_size (4) needs 12 GPUs" in out, proc.stdout[-3000:]
    assert "Connection refused" not in proc.stdout


def test_a_worker_wider_than_a_node_is_refused(dead_kubeconfig, helm_on_path):
    proc = run(dead_kubeconfig, "--tags", "dynamo", helm_dir=helm_on_path, dynamo_replicas=1, dynamo_tensor_parallel_size=8,
               gtc_demo_gpus_per_node=4, gtc_demo_gpu_node_count=2)
    assert proc.returncode != 0
    out = " ".join(proc.stdout.split())
    assert "dynamo_tensor_parallel_size (8) is more than the 4 GPUs of a node (gtc_demo_gpus_per_node)" in out, proc.stdout[-3000:]
