"""One source for the engine's iteration scheduler (dynamo_scheduler in roles/dynamo/defaults/main.yml).

The graph's TensorRT-LLM engine config (doks), the mocker workers' flags (local programs, kind's
graph) and the benchmarks' simulator (benchmarks/gtc_bench/scheduler.py) must run the same
limits, or the demo, its model and the real deployment disagree on how long a follow-up waits
(benchmarks/README.md, "The tail"). The refusals run `site.yml --tags dynamo` as
tests/unit/speculative/test_refusals.py does (about 8 s each).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from dynamo_render import REPO, main_container  # type: ignore[import-not-found]
from gtc_bench import scheduler as bench_scheduler
from helpers import run_playbook


def _defaults() -> dict:
    return yaml.safe_load((REPO / "roles" / "dynamo" / "defaults" / "main.yml").read_text())["dynamo_scheduler"]


def _mocker_flags(args: list[str]) -> dict[str, str | bool]:
    out: dict[str, str | bool] = {}
    for flag in ("--max-num-seqs", "--max-num-batched-tokens"):
        assert args.count(flag) == 1, (flag, args)
        out[flag] = args[args.index(flag) + 1]
    out["chunked"] = "--enable-chunked-prefill" in args and "--no-enable-chunked-prefill" not in args
    return out


def test_engine_config_mocker_flags_and_simulator_read_one_source(rendered):
    source = _defaults()
    bench = bench_scheduler.load()
    assert (bench.max_batch_size, bench.max_num_tokens, bench.chunked_prefill, bench.context_chunking_policy) == (
        source["max_batch_size"], source["max_num_tokens"], source["chunked_prefill"], source["context_chunking_policy"])
    # doks: the TensorRT-LLM engine config.
    engine = yaml.safe_load(rendered["dev"].text("trtllm_engine.yaml"))
    assert engine["max_batch_size"] == engine["cuda_graph_config"]["max_batch_size"] == source["max_batch_size"]
    assert engine["max_num_tokens"] == source["max_num_tokens"]
    assert engine["enable_chunked_prefill"] is source["chunked_prefill"]
    assert engine["scheduler_config"] == {"context_chunking_policy": source["context_chunking_policy"]}
    expected = {"--max-num-seqs": str(source["max_batch_size"]), "--max-num-batched-tokens": str(source["max_num_tokens"]),
                "chunked": source["chunked_prefill"]}
    # kind: the mocker workers of the graph.
    worker = rendered["kind"].components()["worker"]
    container = main_container(worker)
    assert _mocker_flags(container.get("args", [])) == expected
    # local: every mocker program.
    conf = rendered["local_reordered"].text("supervisor.conf")
    commands = re.findall(r"^command=(.*?dynamo\.mocker.*?)^environment=", conf, re.S | re.M)
    assert len(commands) == 2
    for command in commands:
        assert _mocker_flags(shlex.split(command.replace("\n", " "))) == expected
    # The simulator's engine: the same keys the live mocker parses them into (dynamo.mocker.config).
    assert bench.mocker_engine_args() == {"max_num_seqs": source["max_batch_size"],
                                          "max_num_batched_tokens": source["max_num_tokens"],
                                          "enable_chunked_prefill": source["chunked_prefill"]}


def test_simulator_refuses_a_policy_the_mocker_cannot_run():
    with pytest.raises(ValueError, match="first come, first served only"):
        bench_scheduler.load().replace(context_chunking_policy="EQUAL_PROGRESS").mocker_engine_args()


NOWHERE = {"kv": {"router_mode": "kv", "local_port": 9}, "round_robin": {"router_mode": "round-robin", "local_port": 7}}
REFUSED = {
    "equal progress on the mocker": (
        {"context_chunking_policy": "EQUAL_PROGRESS"},
        ["context_chunking_policy EQUAL_PROGRESS cannot run on local", "first come, first served only"]),
    "no chunking with prompts longer than an iteration": (
        {"chunked_prefill": False, "max_num_tokens": 8192},
        ["chunked_prefill is false", "max_num_tokens (8192) is below dynamo_k8s_engine.max_seq_len (16384)"]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_local_refuses_a_scheduler_it_cannot_run(tmp_path, case):
    change, expected = REFUSED[case]
    home = tmp_path / "home"
    home.mkdir()
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({"gtc_demo_frontends": NOWHERE, "dynamo_scheduler": {**_defaults(), **change}}))
    run = run_playbook("site.yml", "--tags", "dynamo", "-e", f"@{vars_file}", env={"GTC_DEMO_HOME": str(home)},
                       json_output=True, timeout=300)
    assert run.returncode != 0, run.output[-3000:]
    failed = run.failed_tasks()
    assert [(t.role, t.action) for t in failed] == [("do_solutions.gtc_demo.dynamo", "ansible.builtin.assert")], \
        [(t.role, t.name) for t in failed]
    message = " ".join(str(failed[0].result["msg"]).split())
    for text in expected:
        assert text in message, message
    assert not [t for t in run.tasks() if t.changed]
    assert not any(Path(home).iterdir()), list(Path(home).iterdir())
