"""The load generator run by site.yml, against the real local Dynamo stack
(the inventory's frontends, KV-aware and round-robin, over the same mocker workers)."""
from __future__ import annotations

import urllib.request

import pytest

pytestmark = pytest.mark.integration

# A short, bounded run: a few conversations of exactly three turns, short answers.
RUN = {"concurrency": 6, "rate": 0, "think_min_s": 0.3, "think_max_s": 1.2, "turns_min": 3,
       "turns_max": 3, "max_tokens": 24, "auto": False}
PER_TURN = 6  # samples wanted for each of turns 1..3


def _enough(routing: str):
    def check(state: dict) -> bool:
        rows = {r["turn"]: r["n"] for r in state["stats"]["by_turn"][routing]}
        return all(rows.get(t, 0) >= PER_TURN for t in (1, 2, 3))
    return check


def _run(loadgen, routing: str) -> dict:
    loadgen.post("/api/settings", {**RUN, "routing": routing, "running": True})
    state = loadgen.wait_until(_enough(routing), 120, f"{PER_TURN} {routing} samples on each of turns 1-3")
    loadgen.stop_and_drain()
    return {r["turn"]: r for r in state["stats"]["by_turn"][routing]}


def test_the_role_started_it_and_printed_its_url(local_demo, loadgen) -> None:
    assert f"Load generator: {local_demo.loadgen_url}/" in local_demo.first_run.output
    with urllib.request.urlopen(local_demo.loadgen_url + "/", timeout=10) as resp:
        assert "<canvas" in resp.read().decode()
    state = loadgen.get("/api/state")
    assert set(state["presets"]) >= {"idle", "booth", "busy", "stress"}
    assert state["model"] == local_demo.model


def test_short_run_in_each_routing_mode(loadgen) -> None:
    loadgen.stop_and_drain()
    loadgen.post("/api/reset", {})
    # Every frontend the demo has, in the switch's order (inventories/local: kv, round_robin).
    ids = [f["id"] for f in loadgen.get("/api/state")["frontends"]]
    assert "kv" in ids, ids
    rows = {fid: _run(loadgen, fid) for fid in ids}
    state = loadgen.get("/api/state")
    assert state["stats"]["totals"]["errors"] == 0, state["stats"]["last_errors"]
    for by_turn in rows.values():
        for turn in (1, 2, 3):
            assert by_turn[turn]["ttft_p50"] > 0 and by_turn[turn]["cache_hit"] is not None
    # Turn 1 carries a new, conversation-specific context: nothing to reuse.
    # Later turns extend it, and the KV-aware router sends them where it is cached.
    kv = rows["kv"]
    followup_hit = min(kv[2]["cache_hit"], kv[3]["cache_hit"])
    assert followup_hit > kv[1]["cache_hit"] + 0.3, kv
    for fid, by_turn in rows.items():
        print(f"\n{fid}: TTFT p50 by turn {[by_turn[t]['ttft_p50'] for t in (1, 2, 3)]} ms, "
              f"cache hit {[by_turn[t]['cache_hit'] for t in (1, 2, 3)]}")


def test_conversation_detail_and_metrics(local_demo, loadgen) -> None:
    convs = loadgen.get("/api/conversations")["conversations"]
    done = [c for c in convs if c["status"] == "done"]
    assert done, convs[:3]
    detail = loadgen.get(f"/api/conversations/{done[0]['id']}")
    assert len(detail["turns"]) == 3
    for turn in detail["turns"]:
        assert turn["ok"] and turn["answer"].strip() and turn["worker_id"]
        assert turn["prompt_tokens"] > 1000 and turn["server_ttft_ms"] is not None
    # Each turn's question differs and the prompt grows.
    assert len({t["question"] for t in detail["turns"]}) == 3
    assert detail["turns"][2]["prompt_tokens"] > detail["turns"][0]["prompt_tokens"]
    with urllib.request.urlopen(local_demo.loadgen_url + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    for needle in ('loadgen_ttft_seconds_bucket{le="0.005",routing="kv",turn="2"}',
                   'loadgen_ttft_seconds_count{routing="round_robin",turn="3"}',
                   'loadgen_requests_total{outcome="ok",routing="kv"}'):
        assert needle in metrics, needle
