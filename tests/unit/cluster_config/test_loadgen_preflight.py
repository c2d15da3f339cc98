"""loadgen's validate entry point in site.yml's preflight (before infra and dynamo have run).

It lives beside cluster_config's preflight tests because it uses the same
harness (validate.yml). The preflight knows the shared inputs but not the
frontends' URLs, which only exist once the dynamo role has run: validate must
pass without them, and the role must still refuse to start without them.
GRADIENT_API_KEY is optional (issue 12, defect 9).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(__file__).with_name("validate.yml")


def run(playbook: Path, inventory: str, **extra) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GRADIENT_API_KEY"}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", inventory,
                           "-e", json.dumps(extra)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_loadgen_preflight_passes_before_dynamo_has_run():
    for inventory in ("inventories/dev", "inventories/kind"):
        proc = run(PLAYBOOK, inventory, validate_role="loadgen")
        assert proc.returncode == 0, (inventory, proc.stdout[-3000:])


def test_the_preflight_still_refuses_an_empty_model():
    """An empty gtc_demo_model is refused by _common's check, which every role's preflight runs first, naming the variable."""
    for role in ("model_sync", "loadgen"):
        proc = run(PLAYBOOK, "inventories/dev", validate_role=role, gtc_demo_model="")
        assert proc.returncode != 0, role
        assert 'gtc_demo_model must name a Hugging Face repository, owner/name' in proc.stdout, proc.stdout[-3000:]
        assert 'got \\"\\"' in proc.stdout or 'got ""' in proc.stdout, proc.stdout[-3000:]


def test_the_role_refuses_to_start_without_frontends(tmp_path):
    """Past the preflight, the role itself stops before any change when dynamo published no frontends."""
    playbook = tmp_path / "loadgen.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: do_solutions.gtc_demo.loadgen\n")
    proc = run(playbook, "inventories/kind", gtc_demo_kubeconfig="/nonexistent/kubeconfig")
    assert proc.returncode != 0
    assert "dynamo__output has no frontends with URLs or no model" in proc.stdout, proc.stdout[-3000:]
    assert "nonexistent" not in proc.stdout
