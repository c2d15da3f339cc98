"""Fixtures for the tests against the test cluster (tests/cluster).

``k8s_cluster`` (session scope, tests/cluster/fixture.py) and ``pool_name``
come from tests/integration/conftest.py, shared with every other folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
MODULE = "ansible_collections.do_solutions.gtc_demo.plugins.modules.wait_for_gpu_nodes"


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
