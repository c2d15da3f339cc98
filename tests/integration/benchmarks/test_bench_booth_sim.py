"""The booth's closed loop in Dynamo 1.6.1's simulator, and the scheduling behind its tail.

benchmarks/README.md, "The tail": a KV-aware follow-up that is slow waited, on the replica
holding its conversation, for another request's long prefill; the mocker (and TensorRT-LLM's
default FIRST_COME_FIRST_SERVED chunking) lets a running context take the iteration's whole
token budget, so smaller chunks do not help. Each check runs in the benchmark venv in seconds.
"""

import json
import subprocess

import pytest

pytestmark = pytest.mark.integration

MICRO = r"""
import json
from gtc_bench import sim, trace
from dynamo.replay.api import run_trace_replay
rows = [{"timestamp": 0, "input_length": 8000, "output_length": 20, "hash_ids": list(range(1, 251)), "session_id": "a"},
        {"timestamp": 100, "input_length": 160, "output_length": 20, "hash_ids": list(range(1000, 1005)), "session_id": "b"}]
path = trace.write_jsonl(rows, __import__("sys").argv[1] + "/micro.jsonl")
out = {}
for tokens in (8192, 2048, 512):
    spec = sim.EngineSpec(gpu="h100", scheduler=sim.scheduler_source.load().replace(max_num_tokens=tokens))
    rep = run_trace_replay(str(path), num_workers=1, router_mode="round_robin", trace_block_size=32,
                           capture_per_request=True, extra_engine_args=spec.engine_args(4))
    t = {("long" if r["input_length"] == 8000 else "short"): r["ttft_ms"] for r in rep.per_request}
    out[tokens] = t
print(json.dumps(out))
"""

LOOP = r"""
import json
from gtc_bench import booth, sim, sweep
out = {}
for ab, routings in ((True, ("kv", "round_robin")), (False, ("kv",)), (False, ("round_robin",))):
    load = booth.BoothLoad(routings=routings, ab=ab, duration_s=120.0, seed=4)
    res = booth.simulate(load, 2, 4, sim.EngineSpec(gpu="h100"), sweep.RECOMMENDED, passes=3)
    recs = res["records"]
    for r in recs:
        r["first_ms"] = r["arrival_ms"] + r["ttft_ms"]
        r["new"] = r["input_length"] - r["reused"]
    slow = []
    if ab:
        kv = [r for r in recs if r["routing"] == "kv" and r["turn"] >= 2 and r["new"] < 1000]
        median = sorted(r["ttft_ms"] for r in kv)[len(kv) // 2]
        for r in kv:
            if r["ttft_ms"] > 3 * median:
                big = [o for o in recs if o is not r and o["worker"] == r["worker"] and o["new"] > 4000
                       and o["arrival_ms"] < r["first_ms"] and o["first_ms"] > r["arrival_ms"]]
                slow.append(len(big))
    out["ab" if ab else routings[0]] = {"headlines": booth.headlines(recs, routings), "slow_waits": slow}
print(json.dumps(out))
"""


def _run(python, script, tmp_path):
    proc = subprocess.run([python, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_short_context_waits_for_a_running_long_one_whatever_the_chunk(bench_python, tmp_path):
    res = _run(bench_python, MICRO, tmp_path)
    for tokens, t in res.items():
        # the short request's first token comes with (or after) the long prefill's: it waited for all of it
        assert t["short"] + 100 >= t["long"] - 1, (tokens, t)
    assert res["512"]["long"] > res["8192"]["long"]  # smaller chunks only make the long prefill slower


def test_booth_loop_kv_tail_is_waiting_behind_long_prefills(bench_python, tmp_path):
    res = _run(bench_python, LOOP, tmp_path)
    ab = res["ab"]["headlines"]
    assert ab["kv"]["miss_share"] < 0.05 and ab["round_robin"]["miss_share"] > 0.2
    assert ab["kv"]["p50_ms"] < ab["round_robin"]["p90_ms"] / 3
    # every slow KV follow-up (a cache hit) overlapped another request's long prefill on its replica
    assert res["ab"]["slow_waits"] and all(n >= 1 for n in res["ab"]["slow_waits"]), res["ab"]["slow_waits"]
    # one routing at a time, the booth preset's p90 ratio clears 3x at 2 x TP4
    assert res["round_robin"]["headlines"]["round_robin"]["p90_ms"] >= 3 * res["kv"]["headlines"]["kv"]["p90_ms"]
