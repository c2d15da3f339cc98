"""Fixtures for the tests against the test cluster (tests/cluster).

``k8s_cluster`` (session scope) is defined in tests/cluster/fixture.py and
imported here; any other conftest can import it the same way (through
``load_cluster_fixture``), and the cluster still starts only once per pytest
process, however many conftests use it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
MODULE = "ansible_collections.do_solutions.gtc_demo.plugins.modules.wait_for_gpu_nodes"


def load_cluster_fixture():
    """Import tests/cluster/fixture.py once, under one name, for every conftest."""
    name = "gtc_demo_test_cluster"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "cluster" / "fixture.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


cluster_fixture = load_cluster_fixture()
k8s_cluster = cluster_fixture.k8s_cluster


@pytest.fixture
def pool_name(k8s_cluster):
    """A node pool name of this test's own; its nodes are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:6]}"
    yield name
    k8s_cluster.delete_test_nodes(owner=name)


class ModuleRun:
    def __init__(self, returncode: int, result: dict, stderr: str) -> None:
        self.returncode = returncode
        self.result = result
        self.stderr = stderr

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))


@pytest.fixture
def run_module(k8s_cluster, tmp_path):
    """Run wait_for_gpu_nodes the way Ansible does (a JSON args file, JSON on stdout).

    Auth options default to the test cluster's kubeconfig; pass ``_check_mode=True``
    for check mode.
    """
    collections = REPO / ".collections"
    if not (collections / "ansible_collections" / "do_solutions" / "gtc_demo").exists():
        pytest.fail(f"{collections} is missing: run `make setup`")

    def run(*, _check_mode: bool = False, _timeout: float = 120, **params) -> ModuleRun:
        params.setdefault("kubeconfig", str(k8s_cluster.kubeconfig))
        params.setdefault("context", k8s_cluster.context)
        args = dict(params, _ansible_check_mode=_check_mode)
        args_file = tmp_path / f"args-{uuid.uuid4().hex[:6]}.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("K8S_AUTH_", "KUBECONFIG"))}
        env["PYTHONPATH"] = str(collections)
        proc = subprocess.run([sys.executable, "-m", MODULE, str(args_file)], capture_output=True,
                              text=True, env=env, timeout=_timeout, cwd=tmp_path, check=False)
        try:
            result = json.loads(proc.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"module printed no JSON (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return ModuleRun(proc.returncode, result, proc.stderr)

    return run
