"""Rendering the dynamo role's objects (render.yml) for the tests here, and their helpers.

Rendering goes through ansible-playbook with the role's real defaults and the
real inventories, so what is checked is what the role would apply.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(__file__).with_name("render.yml")

# The frontends in another order, with a third one: nothing may depend on
# the first being KV-aware or on there being two.
REORDERED_FRONTENDS: dict[str, Any] = {
    "round_robin": {"router_mode": "round-robin", "title": "Round-robin", "local_port": 18301, "component": "frontend-rr"},
    "kv": {"router_mode": "kv", "title": "KV-aware", "local_port": 18300, "component": "frontend",
           "args": ["--kv-cache-block-size", "32"]},
    "random": {"router_mode": "random", "local_port": 18302},
}

# name -> (inventory, extra vars)
SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("inventories/dev", {}),
    "kind": ("inventories/kind", {}),
    "dev_no_grove": ("inventories/dev", {"dynamo_k8s_grove": False}),
    # Also another GPU pool: the size names the GPU, gtc_demo_gpus_per_node 0
    # takes the size's count (dynamo__output.topology.gpu follows both).
    "dev_reordered": ("inventories/dev", {"gtc_demo_frontends": REORDERED_FRONTENDS,
                                          "gtc_demo_gpu_node_size": "gpu-h200x8-1128gb", "gtc_demo_gpus_per_node": 0,
                                          "gtc_demo_gpu_node_count": 2}),
    "local_reordered": ("inventories/local", {"gtc_demo_frontends": REORDERED_FRONTENDS, "render_platform_values": False}),
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
    def output(self) -> dict[str, Any]:
        """dynamo__output as the outputs entry point published it."""
        return json.loads((self.root / "dynamo_output.json").read_text())

    def podmonitors(self) -> list[dict[str, Any]]:
        return [self.yaml("podmonitor-frontend.yaml"), self.yaml("podmonitor-worker.yaml")]

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


def pinned_dynamo_version() -> str:
    defaults = yaml.safe_load((REPO / "roles" / "dynamo" / "defaults" / "main.yml").read_text())
    return str(defaults["dynamo_local_version"])
