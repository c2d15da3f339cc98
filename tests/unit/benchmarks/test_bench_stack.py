"""gtc_bench.stack: the benchmarks bring the booth's stack up with site.yml and down with teardown.yml.

A stand-in ansible-playbook (GTC_BENCH_ANSIBLE_PLAYBOOK) records how it was called and answers as
the JSON callback does, with the dynamo__output the role publishes; the real playbooks run in the
live benchmark (benchmarks/run live) and in tests/integration/benchmarks.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from gtc_bench import stack

FAKE_PLAYBOOK = r'''#!{python}
import json, os, sys
playbook, varfile = sys.argv[1], sys.argv[sys.argv.index("-e") + 1].lstrip("@")
variables = json.load(open(varfile))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "home": os.environ.get("GTC_DEMO_HOME"),
                          "callback": os.environ.get("ANSIBLE_STDOUT_CALLBACK"), "vars": variables,
                          "virtual_env": os.environ.get("VIRTUAL_ENV")}}) + "\n")
name = os.path.basename(playbook)
if os.environ.get("FAKE_FAIL") == name:
    print(json.dumps({{"plays": [], "stats": {{"localhost": {{"failures": 1}}}}}}))
    sys.exit(2)
facts = {{}}
if name == "site.yml":
    facts["dynamo__output"] = {{
        "model": "nvidia/Llama-3.1-70B-Instruct-FP8",
        "frontends": {{fid: {{"url": "http://127.0.0.1:%d" % f["local_port"], "router_mode": f["router_mode"]}}
                      for fid, f in variables["gtc_demo_frontends"].items()}},
    }}
    if os.environ.get("FAKE_LEGACY"):  # the shape before issue 13: two fixed URLs
        facts["dynamo__output"] = {{"kv_url": "http://127.0.0.1:8000", "round_robin_url": "http://127.0.0.1:8001"}}
task = {{"task": {{"name": "Publish the output"}}, "hosts": {{"localhost": {{"ansible_facts": facts, "changed": False}}}}}}
print(json.dumps({{"plays": [{{"play": {{"name": "x"}}, "tasks": [task]}}], "stats": {{}}}}))
'''

FRONTENDS = {"kv": {"router_mode": "kv", "title": "KV-aware"}, "round_robin": "round-robin", "third": "random"}


@pytest.fixture
def fake_playbook(tmp_path, monkeypatch) -> Path:
    exe = tmp_path / "ansible-playbook"
    exe.write_text(FAKE_PLAYBOOK.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("GTC_BENCH_ANSIBLE_PLAYBOOK", str(exe))
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("VIRTUAL_ENV", "/somewhere/bench-venv")
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_variables_give_every_frontend_a_free_port_and_set_the_topology(tmp_path):
    booth = stack.RoleStack(tmp_path / "home", FRONTENDS, replicas=4, tensor_parallel_size=2, gpu="h200",
                            router_policy={"overlap_score_credit": 2.0, "prefill_load_scale": 4.0})
    got = booth.variables()
    frontends = got["gtc_demo_frontends"]
    assert list(frontends) == ["kv", "round_robin", "third"]  # the switch's order is kept
    assert frontends["kv"] == {"router_mode": "kv", "title": "KV-aware", "local_port": booth.ports["kv"]}
    assert frontends["third"]["router_mode"] == "random" and frontends["third"]["title"] == "Third"
    base = got["dynamo_local_worker_metrics_port_base"]
    ports = [f["local_port"] for f in frontends.values()] + [got["loadgen_local_port"]] + [base + i + 1 for i in range(4)]
    assert len(set(ports)) == len(ports)
    assert base + 4 <= 32767  # Dynamo reads DYN_SYSTEM_PORT as a signed 16-bit number
    for port in ports:  # nothing listens there: binding works
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    assert (got["dynamo_replicas"], got["dynamo_tensor_parallel_size"]) == (4, 2)
    assert got["gtc_demo_gpu_node_size"] == "gpu-h200x8-1128gb"
    assert got["dynamo_kv_router_policy"] == {"overlap_score_credit": 2.0, "prefill_load_scale": 4.0}
    assert booth.variables() == got  # ports are picked once


def test_up_runs_site_yml_in_its_home_and_takes_the_urls_from_dynamo_output(tmp_path, fake_playbook):
    home = tmp_path / "bench-home" / "4xTP2"
    with stack.RoleStack(home, FRONTENDS, replicas=4, tensor_parallel_size=2,
                         extra_vars={"dynamo_local_speedup_ratio": 0}) as booth:
        assert booth.urls == {fid: f"http://127.0.0.1:{booth.ports[fid]}" for fid in FRONTENDS}
        assert booth.model == "nvidia/Llama-3.1-70B-Instruct-FP8"
        assert [Path(c["argv"][0]).name for c in calls(fake_playbook)] == ["site.yml"]
    site, teardown = calls(fake_playbook)
    assert Path(site["argv"][0]) == stack.REPO / "site.yml"
    assert Path(teardown["argv"][0]) == stack.REPO / "playbooks" / "teardown.yml"
    for call in (site, teardown):
        assert call["argv"][1:3] == ["-i", str(stack.REPO / "inventories" / "local")]
        assert call["home"] == str(home) and call["callback"] == "ansible.builtin.json"
        assert call["virtual_env"] is None  # the bench venv does not leak into the roles' pip runs
        assert call["vars"]["dynamo_local_speedup_ratio"] == 0
    assert teardown["vars"] == site["vars"]  # the same ports and home come down
    assert set(booth.seconds) == {"site", "teardown"}


def test_a_failed_site_yml_is_torn_down_and_says_where_its_log_is(tmp_path, fake_playbook, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "site.yml")
    booth = stack.RoleStack(tmp_path / "home", FRONTENDS)
    with pytest.raises(RuntimeError, match=r"site.yml failed \(rc 2\).*home-site.json"):
        with booth:
            pytest.fail("the body must not run")
    assert [Path(c["argv"][0]).name for c in calls(fake_playbook)] == ["site.yml", "teardown.yml"]


def test_an_output_without_the_frontends_mapping_is_refused_and_torn_down(tmp_path, fake_playbook, monkeypatch):
    monkeypatch.setenv("FAKE_LEGACY", "1")
    with pytest.raises(RuntimeError, match="dynamo__output.frontends is None"):
        with stack.RoleStack(tmp_path / "home", FRONTENDS):
            pytest.fail("the body must not run")
    assert [Path(c["argv"][0]).name for c in calls(fake_playbook)] == ["site.yml", "teardown.yml"]


def test_find_fact_takes_the_last_value_set():
    doc = {"plays": [{"tasks": [
        {"hosts": {"localhost": {"ansible_facts": {"dynamo__output": {"rollout": 1}}}}},
        {"hosts": {"localhost": {"changed": True}}},
        {"hosts": {"localhost": {"ansible_facts": {"dynamo__output": {"rollout": 2}, "other": 1}}}},
    ]}]}
    assert stack.find_fact(doc, "dynamo__output") == {"rollout": 2}
    assert stack.find_fact(doc, "loadgen__output") is None


def test_missing_ansible_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("GTC_BENCH_ANSIBLE_PLAYBOOK", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="make setup"):
        stack.ansible_playbook()
