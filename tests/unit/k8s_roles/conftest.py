"""Renders the Stack 2 roles' Kubernetes objects once per inventory (render.yml).

Rendering goes through ansible-playbook with the roles' real defaults and the
real inventories, so what is checked here is what the roles would apply.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "tests" / "unit" / "k8s_roles" / "render.yml"

# name -> (inventory, extra vars)
SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("inventories/dev", {}),
    "kind": ("inventories/kind", {}),
    # Same as dev with another model: what a model change does to the objects.
    "dev_other_model": ("inventories/dev", {"gtc_demo_model": "meta-llama/Llama-3.3-70B-Instruct"}),
}


class Rendered:
    """The files render.yml wrote for one scenario."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def docs(self, role: str, name: str) -> list[dict[str, Any]]:
        text = (self.root / role / f"{name}.yaml").read_text()
        return [d for d in yaml.safe_load_all(text) if d]

    def doc(self, role: str, name: str) -> dict[str, Any]:
        (only,) = self.docs(role, name)
        return only

    def json(self, role: str, name: str) -> Any:
        return json.loads((self.root / role / f"{name}.json").read_text())

    def text(self, role: str, name: str) -> str:
        return (self.root / role / name).read_text()


def _ansible_playbook() -> str:
    candidate = Path(sys.executable).parent / "ansible-playbook"
    if not candidate.exists():
        pytest.fail(f"{candidate} not found: run `make setup`")
    if not (REPO / ".collections" / "ansible_collections" / "do_solutions" / "gtc_demo").exists():
        pytest.fail("the collection link under .collections is missing: run `make setup`")
    return str(candidate)


def _render(out: Path, inventory: str, extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    extra_vars = {"render_dir": str(out), "gtc_demo_kubeconfig": "/dev/null", **extra}
    return subprocess.run(
        [_ansible_playbook(), str(PLAYBOOK), "-i", inventory, "-e", json.dumps(extra_vars)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, Rendered]:
    """Every scenario rendered (in parallel: each run is mostly Ansible start-up)."""
    roots = {name: tmp_path_factory.mktemp(f"render-{name}") for name in SCENARIOS}
    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        runs = {name: pool.submit(_render, roots[name], *SCENARIOS[name]) for name in SCENARIOS}
    for name, future in runs.items():
        proc = future.result()
        if proc.returncode != 0:
            pytest.fail(f"render.yml failed for {name} (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return {name: Rendered(root) for name, root in roots.items()}
