"""The live instrument against the real local demo (the shared ``local_demo`` fixture): the
trace's conversations, in words of the demo's own tokenizer, sent by the load generator's client.

Short conversations (2 turns, 0.2-0.4 s think time), so the test costs seconds on the demo the
suite already runs; the full comparison is ``benchmarks/run live`` (README, "Live stack vs simulator").
"""

import json
import subprocess

import pytest

pytestmark = pytest.mark.integration

DRIVE = r"""
import asyncio, json, sys
from gtc_bench import live, shape, stack, trace

kv_url, rr_url, model, replicas = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
words = live.demo_vocabulary(stack.DEMO_MODEL_DIR)
shp = shape.ConversationShape(turns_min=2, turns_max=2, system_tokens_min=600, system_tokens_max=900,
                              question_tokens_min=10, question_tokens_max=20, answer_tokens_min=8,
                              answer_tokens_max=12, think_min_s=0.2, think_max_s=0.4)
convs = trace.generate(6, shp, rate_per_s=3.0, seed=5)
rows = trace.to_mooncake(convs, shp)
workers = asyncio.run(live.wait_for_workers(rr_url, model, replicas))
out = {"words": len(words), "workers": sorted(workers)}
for fid, url in (("kv", kv_url), ("round_robin", rr_url)):
    recs = asyncio.run(live.drive(url, model, convs, words, tag=fid, timeout_s=60))
    out[fid] = {"records": recs, "stats": live.live_stats(recs), "check": live.prompt_length_check(recs, rows)}
print(json.dumps(out))
"""


def test_trace_replayed_on_the_demo_with_its_tokenizer_and_the_loadgen_client(bench_python, local_demo):
    proc = subprocess.run([bench_python, "-c", DRIVE, local_demo.kv_url, local_demo.round_robin_url, local_demo.model,
                           str(local_demo.replicas)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["words"] > 30_000  # the demo's WordPiece vocabulary, nearly all of it one-token words
    assert len(res["workers"]) == local_demo.replicas
    for fid in ("kv", "round_robin"):
        run = res[fid]
        assert run["stats"]["requests"] == 12 and run["stats"]["errors"] == 0, run["records"]
        for rec in run["records"]:
            assert rec["ttft_ms"] > 0 and rec["server_ttft_ms"] is not None
            # the client sees the first token after the server's own TTFT
            assert rec["ttft_ms"] >= rec["server_ttft_ms"] - 1.0
            assert rec["worker"] is not None and rec["completion_tokens"] >= 8
        # one token per word, as the trace counts them: the served prompt is the trace's, within
        # the chat template's tokens and the re-tokenized answers
        assert 0.9 <= run["check"]["min"] and run["check"]["max"] <= 1.1, run["check"]
    # KV routing keeps every follow-up on the replica that holds its prefix
    assert res["kv"]["stats"]["followups"]["miss"] == 0.0
    for rec in res["kv"]["records"]:
        if rec["turn"] == 2:
            assert rec["cached_tokens"] >= rec["prompt_tokens"] // 2
