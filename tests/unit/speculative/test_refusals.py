"""Combinations that cannot work are refused by site.yml before anything changes.

Runs `site.yml -i inventories/local --tags dynamo` (the preflight and the
dynamo role's checks run first, tagged always) in an empty GTC_DEMO_HOME with
frontends on ports nothing uses: the run must fail in one check naming the
variables, change nothing and leave the folder empty. The unknown mode is the
shared input's argument spec (roles/_common); the combinations are the dynamo
role's own checks. About 8 s per case.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run_playbook

CASES = {
    "unknown mode": (
        {"gtc_demo_speculative": "medusa"},
        ("do_solutions.gtc_demo._common", "ansible.builtin.validate_argument_spec"),
        ["gtc_demo_speculative must be one of: none, draft, eagle3", "medusa"],
    ),
    "draft with another tokenizer": (
        {"gtc_demo_speculative": "draft", "gtc_demo_speculative_draft_model": "Qwen/Qwen2.5-0.5B-Instruct"},
        ("do_solutions.gtc_demo.dynamo", "ansible.builtin.assert"),
        ['gtc_demo_speculative_draft_model "Qwen/Qwen2.5-0.5B-Instruct"', "does not share the tokenizer",
         'gtc_demo_model "nvidia/Llama-3.1-70B-Instruct-FP8" (tokenizer llama3)', "tokenizer own:Qwen/Qwen2.5-0.5B-Instruct"],
    ),
    "eagle3 on the Llama 3.1 target": (
        {"gtc_demo_speculative": "eagle3"},
        ("do_solutions.gtc_demo.dynamo", "ansible.builtin.assert"),
        ["gtc_demo_speculative=eagle3 serves Llama 3.3 70B Instruct: set gtc_demo_model",
         'now "nvidia/Llama-3.1-70B-Instruct-FP8"'],
    ),
    "eagle3 heads of another model": (
        {"gtc_demo_speculative": "eagle3", "gtc_demo_model": "meta-llama/Llama-3.3-70B-Instruct",
         "gtc_demo_speculative_eagle3_model": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"},
        ("do_solutions.gtc_demo.dynamo", "ansible.builtin.assert"),
        ['gtc_demo_speculative_eagle3_model "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B" holds EAGLE3 heads for',
         'llama-3.1-8b-instruct, not for gtc_demo_model "meta-llama/Llama-3.3-70B-Instruct"'],
    ),
    "no draft tokens": (
        {"gtc_demo_speculative": "draft", "dynamo_speculative_max_draft_len": 0},
        ("do_solutions.gtc_demo.dynamo", "ansible.builtin.assert"),
        ["dynamo_speculative_max_draft_len must be at least 1, got 0"],
    ),
}

# Ports nothing listens on, so a run that went too far could not reach a demo.
NOWHERE = {"kv": {"router_mode": "kv", "local_port": 9}, "round_robin": {"router_mode": "round-robin", "local_port": 7}}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_combination_is_refused_before_anything_changes(tmp_path, case):
    extra, (role, action), expected = CASES[case]
    home = tmp_path / "home"
    home.mkdir()
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({"gtc_demo_frontends": NOWHERE, **extra}))
    run = run_playbook("site.yml", "--tags", "dynamo", "-e", f"@{vars_file}", env={"GTC_DEMO_HOME": str(home)},
                       json_output=True, timeout=300)
    assert run.returncode != 0, run.output[-3000:]
    failed = run.failed_tasks()
    assert [(t.role, t.action) for t in failed] == [(role, action)], [(t.role, t.name) for t in failed]
    message = " ".join(str(failed[0].result["msg"]).split())
    for text in expected:
        assert text in message, message
    assert not [t for t in run.tasks() if t.changed]
    assert not any(Path(home).iterdir()), list(Path(home).iterdir())
