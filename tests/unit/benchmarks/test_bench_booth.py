"""gtc_bench.booth: the load generator's closed loop, planned, scheduled, replayed and driven.

The loop's rules are the load generator's (apps/loadgen/src/gtc_loadgen/engine.py: exactly
`concurrency` conversations, a replacement as soon as one ends, a first turn U(0, think_min) after
its slot frees, A/B alternating the routings); the headlines are the app's (gtc_loadgen.headlines).
No Dynamo here: the simulator runs in tests/integration/benchmarks.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gtc_bench import booth
from gtc_bench.shape import BOOTH

SMALL = BOOTH.replace(system_tokens_min=64, system_tokens_max=96, think_min_s=0.02, think_max_s=0.05,
                      answer_tokens_min=2, answer_tokens_max=3, question_tokens_min=3, question_tokens_max=5,
                      turns_min=2, turns_max=3)


def test_plan_alternates_routings_and_delays_first_turns_like_the_app():
    load = booth.BoothLoad(seed=3)
    planned = booth.plan(load, 40)
    assert [p.routing for p in planned[:4]] == ["kv", "round_robin", "kv", "round_robin"]
    assert all(0.0 <= p.delay_s <= load.shape.think_min_s for p in planned)
    assert all(load.shape.turns_min <= len(p.conv.turns) <= load.shape.turns_max for p in planned)
    shp = booth.BOOTH_SHAPE
    assert all(shp.system_tokens_min <= p.conv.system_tokens <= shp.system_tokens_max
               and all(t.answer_tokens == 96 for t in p.conv.turns) for p in planned)
    assert booth.plan(load, 40) == planned  # seeded
    single = booth.plan(booth.BoothLoad(ab=False, routings=("round_robin",)), 6)
    assert {p.routing for p in single} == {"round_robin"}


def test_schedule_keeps_exactly_concurrency_conversations_going():
    load = booth.BoothLoad(concurrency=3, duration_s=20.0, seed=1)
    planned = booth.plan(load, 50)
    durations = {p.conv.conv_id: 4.0 for p in planned}
    started = booth.schedule(load, planned, durations)
    starts = [s for _conv, s in started]
    assert starts[:3] == [p.delay_s for p in planned[:3]]  # the first three fill the slots
    # a fourth starts only when one of the first three ended (4 s), after its own delay
    first_end = min(s + 4.0 for s in starts[:3])
    assert starts[3] == pytest.approx(first_end + planned[3].delay_s)
    for t in (1.0, 7.5, 13.0, 19.0):
        assert sum(1 for s in starts if s <= t < s + 4.0) <= 3
    assert max(starts) <= load.duration_s and len(started) < 50


def test_ab_rows_give_round_robin_its_misses_and_leave_kv_alone():
    load = booth.BoothLoad(concurrency=4, duration_s=30.0, seed=2)
    planned = booth.plan(load, 30)
    started = booth.schedule(load, planned, {})
    rows = booth.ab_rows(started, load.shape, replicas=2, seed=2)
    routing = {p.conv.conv_id: p.routing for p, _start in started}
    by_session: dict[str, list[dict]] = {}
    for row in rows:
        by_session.setdefault(row["session_id"], []).append(row)
    kv_ok = rr_hits = rr_misses = 0
    for sid, turns in by_session.items():
        for prev, cur in zip(turns, turns[1:]):
            shared = len(set(prev["hash_ids"][:-1]) & set(cur["hash_ids"]))
            if routing[sid] == "kv":  # every KV turn extends the previous one
                assert cur["hash_ids"][:len(prev["hash_ids"]) - 1] == prev["hash_ids"][:-1]
                kv_ok += 1
            elif shared:
                rr_hits += 1
            else:
                rr_misses += 1
    assert kv_ok and rr_hits and rr_misses
    # a round-robin turn on a worker label it never used shares no block with any other session's
    all_ids = [h for row in rows for h in row["hash_ids"]]
    owners: dict[int, set[str]] = {}
    for row in rows:
        for h in row["hash_ids"]:
            owners.setdefault(h, set()).add(row["session_id"])
    assert all(len(s) == 1 for s in owners.values()) and len(all_ids) > 0


def _rec(routing, turn, ttft, prompt, cached, end=1000.0):
    return {"routing": routing, "turn": turn, "ttft_ms": ttft, "prompt_tokens": prompt, "cached_tokens": cached,
            "end_ms": end, "ok": True}


def test_headlines_are_the_apps_and_refuse_a_ratio_while_collecting():
    from gtc_loadgen import headlines as hl

    recs = [_rec("kv", 1, 400.0, 7000, 0)] + [_rec("kv", 2, 40.0 + i, 7100, 7000) for i in range(hl.MIN_FOLLOWUPS_TO_JUDGE)]
    recs += [_rec("round_robin", 2, 500.0 if i % 3 == 0 else 50.0, 7100, 0 if i % 3 == 0 else 7000)
             for i in range(hl.MIN_FOLLOWUPS_TO_JUDGE)]
    h = booth.headlines(recs, ("kv", "round_robin"))
    kv = hl.summarize([hl.Followup(1.0, r["ttft_ms"], r["prompt_tokens"], r["cached_tokens"]) for r in recs
                       if r["routing"] == "kv" and r["turn"] >= 2])
    assert h["kv"] == {**kv.to_dict(), "turn1_p50_ms": 400.0}
    assert h["round_robin"]["miss_share"] == pytest.approx(7 / 20) and h["kv"]["miss_share"] == 0.0
    assert h["ratio_p90"] == pytest.approx(h["round_robin"]["p90_ms"] / h["kv"]["p90_ms"], rel=1e-3)
    # the simulator's records (input_length/reused) give the same numbers
    sim_recs = [{"routing": r["routing"], "turn": r["turn"], "ttft_ms": r["ttft_ms"], "input_length": r["prompt_tokens"],
                 "reused": r["cached_tokens"], "end_ms": r["end_ms"]} for r in recs]
    assert booth.headlines(sim_recs, ("kv", "round_robin")) == h
    few = booth.headlines(recs[:5] + recs[-5:], ("kv", "round_robin"))
    assert few["ratio_p90"] is None and few["kv"]["collecting"]


@asynccontextmanager
async def stream_server(active: dict[str, int]):
    seen: list[dict] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body)
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        try:
            await asyncio.sleep(0.01)
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(body["max_tokens"]):
                await resp.write(b"data: " + json.dumps({"choices": [{"delta": {"content": f" w{i}"}}]}).encode() + b"\n\n")
            usage = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": body["max_tokens"],
                                              "prompt_tokens_details": {"cached_tokens": 0}}}
            await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
            return resp
        finally:
            active["now"] -= 1

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), seen, active


def test_drive_runs_the_closed_loop_on_both_routings():
    load = booth.BoothLoad(concurrency=3, rate=0.0, duration_s=0.6, shape=SMALL, seed=5)

    async def go():
        active = {"now": 0, "max": 0}  # requests in flight on both servers together
        async with stream_server(active) as (url_a, seen_a, _stop_a), stream_server(active) as (url_b, seen_b, _stop_b):
            recs = await booth.drive({"kv": url_a, "round_robin": url_b}, "m", load, ["alpha", "bravo"], tag="t")
            return recs, seen_a, seen_b, active["max"]
    recs, seen_a, seen_b, peak = asyncio.run(go())
    assert recs and all(r["ok"] for r in recs)
    assert {r["routing"] for r in recs} == {"kv", "round_robin"} and seen_a and seen_b
    assert peak <= load.concurrency
    planned = {p.conv.conv_id: p for p in booth.plan(load, 400)}
    for r in recs:
        assert r["routing"] == planned[r["session_id"]].routing
    assert all(b["ignore_eos"] is True for b in seen_a + seen_b)
    starts = sorted({r["session_id"] for r in recs}, key=lambda s: int(s.rsplit("-", 1)[1]))
    assert len(starts) > load.concurrency  # slots were refilled


def test_booth_command_drives_loopback_frontends_only(tmp_path):
    from gtc_bench import __main__ as cli

    assert cli._frontend_urls(["kv=http://127.0.0.1:8000/", "round_robin=http://localhost:8001"]) == {
        "kv": "http://127.0.0.1:8000", "round_robin": "http://localhost:8001"}
    with pytest.raises(SystemExit, match="only 127.0.0.1"):
        cli._frontend_urls(["kv=http://10.0.0.5:8000", "round_robin=http://127.0.0.1:8001"])
    with pytest.raises(SystemExit, match="for each of"):
        cli._frontend_urls(["kv=http://127.0.0.1:8000"])
    with pytest.raises(SystemExit, match="one --replicas"):
        cli.main(["booth", "--live", "--replicas", "2", "4", "--out", str(tmp_path)])


def test_booth_table_shows_both_routings_ratio_and_load():
    from gtc_bench import report

    h = {"kv": {"p50_ms": 45.0, "p90_ms": 90.0, "miss_share": 0.0},
         "round_robin": {"p50_ms": 55.0, "p90_ms": 540.0, "miss_share": 0.29}, "ratio_p90": 6.0}
    results = {"ab": True, "gpu": "h100", "scheduler": {"max_num_tokens": 8192},
               "load": {"concurrency": 16, "rate": 4.0},
               "runs": [{"topology": "2xTP4", "seed": 1, "source": "live", "headlines": h,
                         "load_average": [[5.5, 5.0, 4.0], [6.25, 5.0, 4.0]]}]}
    md = report.booth_table(results)
    assert "| 2xTP4 | 1 | live | 45 | 90 | 0% | 55 | 540 | 29% | 6.0× | 5.5 → 6.2 |" in md


def test_page_run_sets_the_booth_preset_ab_from_a_reset_and_reads_the_pages_headlines():
    from gtc_bench import __main__ as cli

    calls: list[tuple[str, dict]] = []
    heads = {"kv": {"p50_ms": 50.0, "p90_ms": 90.0}, "round_robin": {"p50_ms": 60.0, "p90_ms": 550.0}}

    async def post(request: web.Request) -> web.Response:
        calls.append((request.path, await request.json()))
        return web.json_response({})

    async def state(request: web.Request) -> web.Response:
        calls.append((request.path, {}))
        return web.json_response({"topology": {"replicas": 2}, "stats": {"headlines": heads, "tail_ratio": {"value": 6.1}}})

    async def go():
        app = web.Application()
        for path in ("/api/preset/booth", "/api/settings", "/api/reset"):
            app.router.add_post(path, post)
        app.router.add_get("/api/state", state)
        async with TestServer(app, host="127.0.0.1") as server:
            return await cli.page_run(str(server.make_url("")).rstrip("/"), True, 0.05, drain_s=0.01)
    out = asyncio.run(go())
    assert [c[0] for c in calls] == ["/api/preset/booth", "/api/settings", "/api/reset", "/api/settings", "/api/settings",
                                     "/api/state"]
    assert [c[1] for c in calls[1:5]] == [{"ab": True}, {}, {"running": True}, {"running": False}]
    assert out["headlines"] == heads and out["tail_ratio"] == {"value": 6.1} and out["topology"] == {"replicas": 2}
