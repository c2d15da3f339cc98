"""The load loop and the web API against a real local streaming server."""

import asyncio
import random

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from gtc_loadgen.corpus import load_seeds
from gtc_loadgen.engine import Engine, RateLimiter
from gtc_loadgen.followup import FollowupWriter
from gtc_loadgen.server import ENGINE, build_app
from gtc_loadgen.settings import DEFAULT_PRESETS, Settings
from gtc_loadgen.stats import Stats
from gtc_loadgen.targets import Targets, frontend
from fake_openai import fake_server

SEEDS = load_seeds(None)
FAST = dict(think_min_s=0.0, think_max_s=0.02, rate=0.0, turns_min=2, turns_max=3, max_tokens=4)


def targets(model="m", **urls):
    """Targets from routing id -> base URL, in the keyword arguments' order."""
    return Targets(tuple(frontend(fid, url) for fid, url in urls.items()), model)


async def _wait_for(pred, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_concurrency_routing_switch_and_stop():
    async def go():
        async with fake_server() as srv, aiohttp.ClientSession() as session:
            stats = Stats()
            engine = Engine(targets(kv=f"{srv.base}/ok", round_robin=f"{srv.base}/ok_other"), session, SEEDS,
                            FollowupWriter(None), stats, DEFAULT_PRESETS,
                            Settings(concurrency=4, routing="kv", **FAST), rng=random.Random(3))
            engine.start()
            engine.update({"running": True})
            await _wait_for(lambda: stats.totals["requests"] >= 20)
            assert engine.active_by_routing()["kv"] == 4
            # The switch takes effect for conversations started from now on.
            engine.update({"routing": "round_robin"})
            before = len(srv.requests)
            await _wait_for(lambda: sum(1 for mode, _body in srv.requests[before:] if mode == "ok_other") >= 10)
            await _wait_for(lambda: engine.active_by_routing() == {"kv": 0, "round_robin": 4})
            engine.update({"concurrency": 1})
            await _wait_for(lambda: sum(engine.active_by_routing().values()) == 1)
            engine.update({"running": False})
            await _wait_for(lambda: not engine._tasks, timeout=3)
            await engine.close()
            return stats, srv.requests
    stats, reqs = asyncio.run(go())
    assert stats.totals["errors"] == 0
    by_turn = stats.by_turn()
    assert by_turn["kv"][0]["n"] > 0 and by_turn["round_robin"][0]["n"] > 0
    assert any(r["turn"] >= 2 and r["n"] > 0 for r in by_turn["kv"])
    # Follow-ups resend the whole conversation: later prompts extend earlier ones.
    lengths = {}
    for _mode, body in reqs:
        sys_prompt = body["messages"][0]["content"]
        lengths.setdefault(sys_prompt, []).append(len(body["messages"]))
    assert any(ls[:3] == [2, 4, 6][: len(ls[:3])] and len(ls) >= 2 for ls in lengths.values())
    assert all(ls == sorted(ls) for ls in lengths.values())


def test_faults_are_counted_and_the_loop_keeps_running():
    async def go():
        async with fake_server() as srv, aiohttp.ClientSession() as session:
            stats = Stats()
            # KV-aware target refuses connections; round-robin target answers 500.
            engine = Engine(targets(kv="http://127.0.0.1:9", round_robin=f"{srv.base}/http500"), session, SEEDS,
                            FollowupWriter(None), stats, DEFAULT_PRESETS,
                            Settings(concurrency=3, **FAST), rng=random.Random(1))
            engine.start()
            engine.update({"running": True})
            await _wait_for(lambda: stats.errors_by_kind.get("unreachable", 0) >= 3)
            engine.update({"routing": "round_robin"})
            await _wait_for(lambda: stats.errors_by_kind.get("http_5xx", 0) >= 3)
            alive = engine._loop_task is not None and not engine._loop_task.done()
            engine.update({"running": False})
            await engine.close()
            return stats, alive
    stats, alive = asyncio.run(go())
    assert alive
    assert stats.totals["errors"] == stats.totals["requests"] > 0
    assert {e["kind"] for e in stats.last_errors} <= {"unreachable", "http_5xx"}


def test_history_stays_bounded():
    async def go():
        async with fake_server() as srv, aiohttp.ClientSession() as session:
            srv.token_gap_s = 0.0
            stats = Stats(samples_per_key=30, series_seconds=5, max_conversations=10)
            engine = Engine(targets(kv=f"{srv.base}/ok", round_robin=f"{srv.base}/ok"), session, SEEDS,
                            FollowupWriter(None), stats, DEFAULT_PRESETS,
                            Settings(concurrency=8, **{**FAST, "think_max_s": 0.0}), rng=random.Random(2))
            engine.start()
            engine.update({"running": True})
            await _wait_for(lambda: stats.totals["requests"] >= 300, timeout=20)
            engine.update({"running": False})
            await engine.close()
            return stats, engine
    stats, engine = asyncio.run(go())
    assert len(stats.conversations) == 10
    assert all(len(w) <= 30 for w in stats.ttft.values()) and len(stats.buckets) <= 5
    assert len(stats.last_errors) <= 20 and len(stats.overhead) <= 4000
    assert not engine._convs and not engine._tasks and not engine._wake


def test_auto_mode_drives_concurrency():
    async def go():
        async with fake_server() as srv, aiohttp.ClientSession() as session:
            engine = Engine(targets(kv=f"{srv.base}/ok"), session, SEEDS,
                            FollowupWriter(None), Stats(), DEFAULT_PRESETS, Settings(**FAST))
            engine.update({"running": True, "auto": True, "auto_ramp_s": 5, "auto_steady_s": 5})
            conc, rate = engine.effective()
            phase = engine.auto_phase
            engine.update({"auto": False, "concurrency": 3})
            manual = engine.effective()
            await engine.close()
            return conc, rate, phase, manual
    conc, rate, phase, manual = asyncio.run(go())
    assert phase == "ramp-up" and conc == DEFAULT_PRESETS["idle"].concurrency
    assert rate == DEFAULT_PRESETS["idle"].rate and manual == (3, 0.0)


def test_rate_limiter_spaces_requests():
    async def go():
        lim = RateLimiter(50.0)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _i in range(11):
            await lim.acquire()
        return loop.time() - t0
    elapsed = asyncio.run(go())
    assert 0.18 <= elapsed < 0.6  # 10 gaps of 20 ms


def test_web_api():
    async def go():
        async with fake_server() as srv:
            app = build_app(targets("test-model", kv=f"{srv.base}/ok", round_robin=f"{srv.base}/ok_other"), SEEDS,
                            dict(DEFAULT_PRESETS), Settings(**FAST, concurrency=2),
                            followup_base_url="http://127.0.0.1:9/v1", followup_model="x")
            async with TestClient(TestServer(app)) as client:
                out = {}
                out["index"] = await (await client.get("/")).text()
                out["js"] = (await client.get("/static/app.js")).status
                out["health"] = await (await client.get("/healthz")).json()
                bad = await client.post("/api/settings", json={"concurrency": 10_000})
                out["bad"] = (bad.status, (await bad.json())["error"])
                notjson = await client.post("/api/settings", data="nope")
                out["notjson"] = notjson.status
                unknown = await client.post("/api/preset/party", json={})
                out["unknown_preset"] = unknown.status
                ok = await client.post("/api/preset/idle", json={})
                out["preset"] = (await ok.json())["settings"]["preset"]
                start = {"running": True, "concurrency": 2, "rate": 0, "think_min_s": 0, "think_max_s": 0.02}
                await client.post("/api/settings", json=start)
                engine = app[ENGINE]
                await _wait_for(lambda: engine.stats.totals["requests"] >= 4)
                state = await (await client.get("/api/state")).json()
                out["state"] = state
                convs = (await (await client.get("/api/conversations")).json())["conversations"]
                out["detail"] = await (await client.get(f"/api/conversations/{convs[-1]['id']}")).json()
                out["missing"] = (await client.get("/api/conversations/nope")).status
                out["metrics"] = await (await client.get("/metrics")).text()
                await client.post("/api/settings", json={"running": False})
                return out
    out = asyncio.run(go())
    assert "<canvas" in out["index"] and out["js"] == 200
    assert out["health"] == {"status": "ok", "model": "test-model", "running": False}
    assert out["bad"] == (422, "concurrency must be between 0 and 512, got 10000")
    assert out["notjson"] == 400 and out["unknown_preset"] == 404 and out["preset"] == "idle"
    st = out["state"]
    assert st["stats"]["totals"]["requests"] >= 4 and st["model"] == "test-model"
    assert set(st["stats"]["series"]) >= {"t", "rps", "errors", "active", "itl_ms", "ttft"}
    assert list(st["stats"]["series"]["ttft"]) == ["kv", "round_robin"]
    assert st["frontends"] == [{"id": "kv", "title": "Kv"}, {"id": "round_robin", "title": "Round robin"}]
    assert out["detail"]["turns"][0]["ttft_ms"] > 0 and out["detail"]["turns"][0]["worker_id"] == "7"
    assert out["missing"] == 404
    m = out["metrics"]
    for series in ("loadgen_ttft_seconds_bucket", "loadgen_itl_seconds_bucket", "loadgen_requests_total",
                   "loadgen_active_conversations"):
        assert series in m, series
    assert 'routing="kv",turn="1"' in m
