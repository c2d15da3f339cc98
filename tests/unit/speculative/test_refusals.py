"""Combinations that cannot work are refused by site.yml before anything changes.

Runs `site.yml -i inventories/local --tags dynamo` (the dynamo role's checks
run first, tagged always) in an empty GTC_DEMO_HOME on ports nothing uses:
the run must fail naming the variables, change nothing and leave the folder
empty. About 8 s per case.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from speculative_helpers import REPO, ansible_playbook  # type: ignore[import-not-found]

CASES = {
    "unknown mode": (
        {"dynamo_speculative": "medusa"},
        ["dynamo_speculative must be none, draft or eagle3", "medusa"],
    ),
    "draft with another tokenizer": (
        {"dynamo_speculative": "draft", "dynamo_speculative_draft_model": "Qwen/Qwen2.5-0.5B-Instruct"},
        ['dynamo_speculative_draft_model "Qwen/Qwen2.5-0.5B-Instruct"', "does not share the tokenizer",
         'gtc_demo_model / dynamo_model "nvidia/Llama-3.1-70B-Instruct-FP8" (tokenizer llama3)'],
    ),
    "eagle3 on the Llama 3.1 target": (
        {"dynamo_speculative": "eagle3"},
        ["dynamo_speculative=eagle3 serves Llama 3.3 70B Instruct: set gtc_demo_model",
         'now "nvidia/Llama-3.1-70B-Instruct-FP8"'],
    ),
    "eagle3 heads of another model": (
        {"dynamo_speculative": "eagle3", "gtc_demo_model": "meta-llama/Llama-3.3-70B-Instruct",
         "dynamo_speculative_eagle3_model": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"},
        ['dynamo_speculative_eagle3_model "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B" holds EAGLE3 heads for',
         'llama-3.1-8b-instruct, not for gtc_demo_model / dynamo_model "meta-llama/Llama-3.3-70B-Instruct"'],
    ),
    "no draft tokens": (
        {"dynamo_speculative": "draft", "dynamo_speculative_max_draft_len": 0},
        ["dynamo_speculative_max_draft_len must be at least 1, got 0"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_combination_is_refused_before_anything_changes(tmp_path, case):
    extra, expected = CASES[case]
    home = tmp_path / "home"
    home.mkdir()
    # Ports nothing listens on, so a run that went too far could not reach a demo.
    extra = {"dynamo_local_kv_port": 9, "dynamo_local_round_robin_port": 7, **extra}
    env = dict(os.environ, GTC_DEMO_HOME=str(home), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [ansible_playbook(), "site.yml", "-i", "inventories/local", "--tags", "dynamo", "-e", json.dumps(extra)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    out = " ".join(proc.stdout.split())
    assert proc.returncode != 0, proc.stdout[-3000:]
    for text in expected:
        assert text in out, proc.stdout[-3000:]
    recap = [line for line in proc.stdout.splitlines() if line.startswith("localhost") and "changed=" in line]
    assert recap and "changed=0" in recap[-1] and "failed=1" in recap[-1], recap
    assert not any(Path(home).iterdir()), list(Path(home).iterdir())
