"""N frontends: the CLI contract (--frontend ID=URL, --frontend-title, LOADGEN_FRONTENDS), the
routing switch over any configured ids in their order, and metrics labelled by id.

Each case runs against a real local streaming server (fake_openai); the frontends differ by
the path their base URL carries, so every request says which frontend it reached.
"""

import asyncio
import json
import random

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gtc_loadgen.__main__ import main
from gtc_loadgen.corpus import load_seeds
from gtc_loadgen.engine import Engine
from gtc_loadgen.followup import FollowupWriter
from gtc_loadgen.server import ENGINE, build_app
from gtc_loadgen.settings import DEFAULT_PRESETS, Settings, SettingsError
from gtc_loadgen.stats import Stats
from gtc_loadgen.targets import Targets, TargetsError, from_flags, from_json
from fake_openai import fake_server

SEEDS = load_seeds(None)
FAST = dict(think_min_s=0.0, think_max_s=0.02, rate=0.0, turns_min=2, turns_max=2, max_tokens=4)


async def _wait_for(pred, timeout=8.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# -- the CLI contract ---------------------------------------------------------------

def test_flags_keep_their_order_and_titles():
    got = from_flags(["round_robin=http://127.0.0.1:8001", "kv=http://127.0.0.1:8000/", "random=https://r.example:9"],
                     ["kv=KV-aware", "random=Random pick"])
    assert [(f.id, f.url, f.title) for f in got] == [
        ("round_robin", "http://127.0.0.1:8001", "Round robin"),  # no title given: the id, capitalised
        ("kv", "http://127.0.0.1:8000", "KV-aware"),
        ("random", "https://r.example:9", "Random pick"),
    ]


@pytest.mark.parametrize(("flags", "titles", "needle"), [
    ([], [], "no frontend: give at least one --frontend ID=URL"),
    (["kv"], [], "--frontend takes ID=VALUE, got 'kv'"),
    (["KV=http://a:1"], [], "frontend id 'KV' must be lower-case"),
    (["kv=http://a:1/v1"], [], "give the base URL without /v1"),
    (["kv=a:1"], [], "'a:1' is not a base URL like http://host:port"),
    (["kv=http://a:1", "kv=http://b:2"], [], "frontend kv is given twice"),
    (["kv=http://a:1"], ["rr=Round"], "--frontend-title names rr, which no --frontend gives"),
])
def test_flags_refused_with_a_reason(flags, titles, needle):
    with pytest.raises(TargetsError) as err:
        Targets(from_flags(flags, titles), "m")
    assert needle in str(err.value)


def test_environment_list():
    got = from_json(json.dumps([{"id": "b", "url": "http://h:2", "title": "Bee"}, {"id": "a", "url": "http://h:1"}]))
    assert [(f.id, f.title) for f in got] == [("b", "Bee"), ("a", "A")]
    for bad, needle in (("{", "not valid JSON"), ('{"id": "a"}', "must be a JSON list"),
                        ('[{"id": "a"}]', "each entry must be {id, url[, title]}"),
                        ('[{"id": "a", "url": "http://h:1", "port": 1}]', "each entry must be")):
        with pytest.raises(TargetsError, match=None) as err:
            from_json(bad)
        assert needle in str(err.value), bad


def test_the_cli_refuses_a_routing_that_is_not_configured(capsys, monkeypatch):
    monkeypatch.delenv("LOADGEN_FRONTENDS", raising=False)
    rc = main(["serve", "--frontend", "kv=http://127.0.0.1:9", "--frontend", "rr=http://127.0.0.1:10",
               "--settings", '{"routing": "round_robin"}'])
    assert rc == 2
    assert "routing must be one of kv, rr, got 'round_robin'" in capsys.readouterr().err
    rc = main(["bench", "--frontend", "kv=http://127.0.0.1:9", "--routing", "random", "--duration", "0"])
    assert rc == 2 and "routing 'random' is not a configured frontend (kv)" in capsys.readouterr().err
    # The old two-URL flags are gone.
    with pytest.raises(SystemExit):
        main(["serve", "--kv-url", "http://127.0.0.1:9"])


def test_bench_reads_the_environment_and_loads_the_first_frontend(capsys, monkeypatch):
    async def serve_and_bench():
        async with fake_server() as srv:
            frontends = [{"id": "round_robin", "url": f"{srv.base}/rr"}, {"id": "kv", "url": f"{srv.base}/kv"}]
            monkeypatch.setenv("LOADGEN_FRONTENDS", json.dumps(frontends))
            rc = await asyncio.to_thread(main, ["bench", "--model", "m", "--concurrency", "2", "--duration", "0.5",
                                                "--warmup", "0.2", "--turns", "1", "--max-tokens", "3"])
            return rc, {mode for mode, _body in srv.requests}, srv.base
    rc, modes, base = asyncio.run(serve_and_bench())
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and modes == {"rr"}
    assert (out["routing"], out["url"]) == ("round_robin", f"{base}/rr") and out["requests"] > 0


# -- settings ---------------------------------------------------------------------------

def test_settings_take_any_configured_id():
    ids = ("round_robin", "kv", "random")
    assert Settings().for_routings(ids).routing == "round_robin"  # unset: the first
    assert Settings(routing="random").for_routings(ids).routing == "random"
    assert Settings().patched({"routing": "kv"}, routings=ids).routing == "kv"
    with pytest.raises(SettingsError, match="routing must be one of round_robin, kv, random, got 'least'"):
        Settings().patched({"routing": "least"}, routings=ids)
    with pytest.raises(SettingsError, match="routing must be one of kv, got 'random'"):
        Settings(routing="random").for_routings(("kv",))


# -- the engine and the page's API, for 1, 2 and 3 frontends -----------------------------------

async def _drive(srv, order: list[str], switch_to: list[str]):
    """Run the app over ``order`` (ids; each frontend's URL path is its id), switch through ``switch_to``."""
    frontends = tuple(from_flags([f"{fid}={srv.base}/{fid}" for fid in order], [f"{order[0]}=First one"]))
    app = build_app(Targets(frontends, "m"), SEEDS, dict(DEFAULT_PRESETS), Settings(**FAST, concurrency=2),
                    followup_base_url="http://127.0.0.1:9/v1", followup_model="x")
    out: dict = {"switched": []}
    async with TestClient(TestServer(app)) as client:
        engine = app[ENGINE]
        out["initial"] = (await (await client.get("/api/state")).json())
        await client.post("/api/settings", json={"running": True})
        for fid in [order[0], *switch_to]:
            resp = await client.post("/api/settings", json={"routing": fid})
            out["switched"].append((resp.status, (await resp.json())["settings"]["routing"]))
            await _wait_for(lambda fid=fid: sum(1 for mode, _b in srv.requests if mode == fid) >= 4)
            await _wait_for(lambda fid=fid: set(c.routing for c in engine._convs.values()) <= {fid})
        bad = await client.post("/api/settings", json={"routing": "nope"})
        out["bad"] = (bad.status, (await bad.json())["error"])
        await client.post("/api/settings", json={"running": False})
        await _wait_for(lambda: not engine._tasks)
        out["state"] = await (await client.get("/api/state")).json()
        out["metrics"] = await (await client.get("/metrics")).text()
        convs = (await (await client.get("/api/conversations")).json())["conversations"]
        out["conv_routings"] = {c["routing"] for c in convs}
    return out


@pytest.mark.parametrize("order", [["kv"], ["kv", "round_robin"], ["round_robin", "kv", "random"]],
                         ids=["one", "two", "three-round-robin-first"])
def test_every_configured_frontend_is_a_routing(order):
    async def go():
        async with fake_server() as srv:
            srv.token_gap_s = 0.0
            out = await _drive(srv, order, order[1:])
            return out, {mode for mode, _b in srv.requests}
    out, reached = asyncio.run(go())
    first = out["initial"]
    # The switch lists every frontend in order, with its title; the default is the first.
    assert [f["id"] for f in first["frontends"]] == order
    assert first["frontends"][0]["title"] == "First one"
    assert first["settings"]["routing"] == order[0]
    assert first["active"] == dict.fromkeys(order, 0)
    assert out["switched"] == [(200, fid) for fid in order]
    assert out["bad"] == (422, f"routing must be one of {', '.join(order)}, got 'nope'")
    assert reached == set(order)  # each id's requests went to its own URL
    st = out["state"]["stats"]
    assert list(st["by_turn"]) == order and list(st["followup_ttft_ms"]) == order
    assert list(st["series"]["ttft"]) == order
    assert all(st["followup_ttft_ms"][fid] > 0 for fid in order)
    assert list(st["headlines"]) == order
    for ratio in (st["median_ratio"], st["tail_ratio"]):
        if len(order) < 2:
            assert ratio == {"value": None, "slow": None, "fast": None, "collecting": True}
        else:
            assert {ratio["slow"], ratio["fast"]} <= set(order)
            # A ratio only once every routing has enough follow-ups to judge.
            judged = all(not h["collecting"] for h in st["headlines"].values())
            assert (ratio["value"] is not None) == judged and ratio["collecting"] == (not judged)
            assert ratio["value"] is None or ratio["value"] >= 1.0
    assert out["conv_routings"] == set(order)
    for fid in order:
        assert f'loadgen_requests_total{{outcome="ok",routing="{fid}"}}' in out["metrics"]
        assert f'loadgen_active_conversations{{routing="{fid}"}} 0.0' in out["metrics"]
        assert f'loadgen_ttft_seconds_count{{routing="{fid}",turn="2"}}' in out["metrics"]


def test_reordered_frontends_and_a_third_keep_labels_with_their_ids():
    """The same two frontends, swapped, plus a third: each id keeps its URL, samples and label."""
    async def run(order):
        async with fake_server() as srv, aiohttp.ClientSession() as session:
            srv.token_gap_s = 0.0
            frontends = tuple(from_flags([f"{fid}={srv.base}/{fid}" for fid in order]))
            stats = Stats()
            engine = Engine(Targets(frontends, "m"), session, SEEDS, FollowupWriter(None), stats,
                            DEFAULT_PRESETS, Settings(concurrency=1, **FAST), rng=random.Random(5))
            engine.start()
            engine.update({"running": True, "routing": "kv"})
            await _wait_for(lambda: stats.totals["requests"] >= 4)
            engine.update({"running": False})
            await engine.close()
            return engine.state(), stats, {mode for mode, _b in srv.requests}
    before, stats_before, reached_before = asyncio.run(run(["kv", "round_robin"]))
    after, stats_after, reached_after = asyncio.run(run(["round_robin", "kv", "random"]))
    assert [f["id"] for f in before["frontends"]] == ["kv", "round_robin"]
    assert [f["id"] for f in after["frontends"]] == ["round_robin", "kv", "random"]
    # Routing kv reached kv's URL in both orders, and only kv's samples were recorded.
    assert reached_before == reached_after == {"kv"}
    for stats in (stats_before, stats_after):
        assert {r for (r, _t) in stats.ttft} == {"kv"}
    assert list(stats_after.by_turn()) == ["round_robin", "kv", "random"]
    assert all(row["n"] == 0 for fid in ("round_robin", "random") for row in stats_after.by_turn()[fid])
