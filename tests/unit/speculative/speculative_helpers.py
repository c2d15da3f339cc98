"""Helpers of the speculative decoding tests: where ansible-playbook is, rendering (render.yml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "tests" / "unit" / "speculative" / "render.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

# name -> extra vars, all on inventories/dev (the TensorRT-LLM engine of doks).
SCENARIOS: dict[str, dict[str, Any]] = {
    "none": {},
    "draft": {"gtc_demo_speculative": "draft"},
    "eagle3": {"gtc_demo_speculative": "eagle3", "gtc_demo_model": "nvidia/Llama-3.3-70B-Instruct-FP8",
               "dynamo_speculative_max_draft_len": 4},
    # For TensorRT-LLM releases without Eagle3DecodingConfig.eagle3_one_model.
    "eagle3_without_one_model": {"gtc_demo_speculative": "eagle3", "gtc_demo_model": "meta-llama/Llama-3.3-70B-Instruct",
                                 "dynamo_speculative_eagle3_one_model": None},
}


def ansible_playbook() -> str:
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.fail(f"{ANSIBLE_PLAYBOOK} not found: run `make setup`")
    if not (REPO / ".collections" / "ansible_collections" / "do_solutions" / "gtc_demo").exists():
        pytest.fail("the collection link under .collections is missing: run `make setup`")
    return str(ANSIBLE_PLAYBOOK)


def render(out: Path, extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    extra_vars = {"render_dir": str(out), "gtc_demo_kubeconfig": "/dev/null", **extra}
    return subprocess.run(
        [ansible_playbook(), str(PLAYBOOK), "-i", "inventories/dev", "-e", json.dumps(extra_vars)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
