"""Renders the dynamo role's objects once per scenario (render.yml) for the tests here.

Rendering goes through ansible-playbook with the role's real defaults and the
real inventories, so what is checked is what the role would apply.
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
PLAYBOOK = Path(__file__).with_name("render.yml")

# name -> (inventory, extra vars)
SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("inventories/dev", {}),
    "kind": ("inventories/kind", {}),
    "dev_no_grove": ("inventories/dev", {"dynamo_k8s_grove": False}),
}


class Rendered:
    """The files render.yml wrote for one scenario."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def yaml(self, name: str) -> Any:
        return yaml.safe_load((self.root / name).read_text())

    def text(self, name: str) -> str:
        return (self.root / name).read_text()

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    @property
    def vars(self) -> dict[str, Any]:
        return json.loads((self.root / "vars.json").read_text())

    @property
    def graph(self) -> dict[str, Any]:
        return self.yaml("graph.yaml")

    def components(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.graph["spec"]["components"]}

    def frontends(self) -> list[dict[str, Any]]:
        return [c for c in self.graph["spec"]["components"] if c["type"] == "frontend"]


def main_container(component: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in component["podTemplate"]["spec"]["containers"] if c["name"] == "main")


def render(out: Path, inventory: str, extra: dict[str, Any], repo: Path = REPO) -> subprocess.CompletedProcess[str]:
    playbook = Path(sys.executable).parent / "ansible-playbook"
    env = dict(os.environ, ANSIBLE_CONFIG=str(repo / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    extra_vars = {"render_dir": str(out), "gtc_demo_kubeconfig": "/dev/null", **extra}
    return subprocess.run(
        [str(playbook), str(repo / "tests" / "unit" / "dynamo" / "render.yml"), "-i", inventory,
         "-e", json.dumps(extra_vars)],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False,
    )


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, Rendered]:
    """Every scenario rendered (in parallel: each run is mostly Ansible start-up)."""
    if not (REPO / ".collections" / "ansible_collections" / "do_solutions" / "gtc_demo").exists():
        pytest.fail("the collection link under .collections is missing: run `make setup`")
    roots = {name: tmp_path_factory.mktemp(f"dynamo-render-{name}") for name in SCENARIOS}
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {name: pool.submit(render, roots[name], *SCENARIOS[name]) for name in SCENARIOS}
    for name, future in runs.items():
        proc = future.result()
        if proc.returncode != 0:
            pytest.fail(f"render.yml failed for {name} (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return {name: Rendered(root) for name, root in roots.items()}


@pytest.fixture(scope="session")
def dynamo_python() -> Path:
    """Python of a venv holding the pinned ai-dynamo (1.6.1, the local demo's pins).

    benchmarks/run builds it once into ~/.cache/gtc-demo (or $GTC_BENCH_VENV)
    from files/local/dynamo-requirements.txt and prints its interpreter.
    """
    proc = subprocess.run([str(REPO / "benchmarks" / "run"), "--print-python"], cwd=REPO,
                          capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        pytest.fail(f"benchmarks/run --print-python failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    python = Path(proc.stdout.strip().splitlines()[-1])
    assert python.exists(), python
    return python


def pinned_dynamo_version() -> str:
    defaults = yaml.safe_load((REPO / "roles" / "dynamo" / "defaults" / "main.yml").read_text())
    return str(defaults["dynamo_local_version"])
