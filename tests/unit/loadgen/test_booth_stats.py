"""The booth's headlines in the app: the page (snapshot), /metrics and A/B routing agree."""

import asyncio
import random

import aiohttp
import pytest
from fake_openai import fake_server
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gtc_loadgen import headlines
from gtc_loadgen.client import TurnResult
from gtc_loadgen.corpus import load_seeds
from gtc_loadgen.engine import Engine
from gtc_loadgen.followup import FollowupWriter
from gtc_loadgen.settings import DEFAULT_PRESETS, Settings, SettingsError
from gtc_loadgen.stats import Stats
from gtc_loadgen.targets import Targets, frontend
from gtc_loadgen.topology import Topology


def _res(ttft, prompt=1000, cached=990):
    return TurnResult(ok=True, text="x", ttft_ms=ttft, prompt_tokens=prompt, cached_tokens=cached)


def _scrape(stats):
    out = {}
    for fam in text_string_to_metric_families(generate_latest(stats.metrics.registry).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _booth(now=10_000.0):
    st = Stats()
    st.track(["kv", "round_robin"])
    for i in range(30):
        st.record("kv", 1, _res(400.0, cached=0), now=now - 60 + i)  # first turns: not follow-ups
        st.record("kv", 2 + i % 3, _res(30.0 + i % 5), now=now - 60 + i)
        miss = i % 10 < 3
        st.record("round_robin", 2 + i % 3, _res(300.0 + i if miss else 35.0, cached=0 if miss else 990),
                  now=now - 60 + i)
    return st


def test_every_series_exists_at_zero_before_the_first_request():
    # Prometheus's rate() loses what a series holds at its first scrape: a series born
    # with its first request drops that request from the rules, not from the page.
    scraped = _scrape(_fresh())
    for turn in [str(t) for t in range(1, 11)]:  # turns_max is at most 10
        assert scraped[("loadgen_ttft_seconds_count", (("routing", "kv"), ("turn", turn)))] == 0.0
    for cache in ("hit", "miss"):
        assert scraped[("loadgen_followups_total", (("cache", cache), ("routing", "round_robin")))] == 0.0
    assert scraped[("loadgen_recomputed_prompt_tokens_total", (("routing", "kv"),))] == 0.0
    assert scraped[("loadgen_requests_total", (("outcome", "ok"), ("routing", "kv")))] == 0.0


def _fresh():
    st = Stats()
    st.track(["kv", "round_robin"])
    return st


def test_page_and_metrics_report_the_same_headlines(monkeypatch):
    now = 10_000.0
    st = _booth(now)
    monkeypatch.setattr("gtc_loadgen.stats.time.time", lambda: now)
    snap = st.snapshot(now)
    heads = snap["headlines"]
    assert heads["round_robin"]["miss_share"] == 0.3 and heads["kv"]["miss_share"] == 0.0
    assert heads["kv"]["n"] == 30  # turn 1 is not a follow-up
    assert heads["round_robin"]["recomputed_per_min"] == pytest.approx((9 * 1000 + 21 * 10) / 5.0)
    scraped = _scrape(st)
    for r, h in heads.items():
        lab = (("routing", r),)
        assert scraped[("loadgen_headline_followup_miss_ratio", lab)] == pytest.approx(h["miss_share"])
        assert scraped[("loadgen_headline_recomputed_tokens_per_minute", lab)] == pytest.approx(h["recomputed_per_min"])
        assert scraped[("loadgen_headline_followups", lab)] == h["n"]
        for q, key in (("0.5", "p50_ms"), ("0.9", "p90_ms")):
            got = scraped[("loadgen_headline_followup_ttft_seconds", (("quantile", q), ("routing", r)))] * 1000
            assert got == pytest.approx(h[key], abs=0.05)
        # The counters behind the rules count the same follow-ups.
        hits = scraped[("loadgen_followups_total", (("cache", "hit"), ("routing", r)))]
        misses = scraped[("loadgen_followups_total", (("cache", "miss"), ("routing", r)))]
        assert (hits + misses, misses) == (h["measured"], h["misses"])
        assert scraped[("loadgen_recomputed_prompt_tokens_total", lab)] == h["recomputed_tokens"]
    tail = snap["tail_ratio"]
    assert (tail["slow"], tail["fast"]) == ("round_robin", "kv") and not tail["collecting"]
    assert tail["value"] == round(heads["round_robin"]["p90_ms"] / heads["kv"]["p90_ms"], 2)
    # Every follow-up is a dot: [t, TTFT ms, miss]; turn 1 is not.
    assert len(snap["dots"]["round_robin"]) == 30 and sum(d[2] for d in snap["dots"]["round_robin"]) == 9
    # TTFT over time: follow-ups and first turns apart.
    series = snap["series"]
    assert {v for v in series["ttft_first"]["kv"] if v is not None} == {400.0}
    assert all(v is None or v < 100 for v in series["ttft"]["kv"])


def test_too_few_followups_say_collecting_and_give_no_ratio():
    now = 10_000.0
    st = Stats()
    st.track(["kv", "round_robin"])
    for i in range(headlines.MIN_FOLLOWUPS_TO_JUDGE - 1):
        st.record("kv", 2, _res(30.0), now=now - i)
        st.record("round_robin", 2, _res(300.0, cached=0), now=now - i)
    snap = st.snapshot(now)
    assert all(h["collecting"] for h in snap["headlines"].values())
    assert snap["tail_ratio"]["value"] is None and snap["median_ratio"]["value"] is None
    assert snap["tail_ratio"]["collecting"]


def test_headlines_cover_the_window_not_a_sample_count():
    # The old page median pooled fixed-size per-turn windows (400 samples each),
    # which need not be the requests a [5m] rule sees; the headlines are time-windowed.
    now = 10_000.0
    st = Stats(samples_per_key=5)
    st.track(["kv"])
    for i in range(50):
        st.record("kv", 2, _res(10.0 if i < 25 else 100.0), now=now - 400 + i)  # older than the window
    for i in range(30):
        st.record("kv", 2, _res(50.0), now=now - 30 + i)
    h = st.snapshot(now)["headlines"]["kv"]
    assert h["n"] == 30 and h["p50_ms"] == 50.0


def test_unmeasured_followups_are_not_counted_as_hits_or_misses():
    st = Stats()
    st.track(["kv"])
    for i in range(25):
        st.record("kv", 2, TurnResult(ok=True, text="x", ttft_ms=30.0, prompt_tokens=1000), now=100.0 + i)
    h = st.snapshot(130.0)["headlines"]["kv"]
    assert h["n"] == 25 and h["measured"] == 0 and h["miss_share"] is None
    assert ("loadgen_headline_followup_miss_ratio", (("routing", "kv"),)) not in _scrape(st)


def test_ab_mode_keeps_both_routings_live():
    seeds = load_seeds(None)

    async def go(patch):
        async with fake_server() as srv, aiohttp.ClientSession() as session:
            srv.token_gap_s = 0.0
            t = Targets((frontend("kv", f"{srv.base}/ok"), frontend("round_robin", f"{srv.base}/ok_other")), "m")
            engine = Engine(t, session, seeds, FollowupWriter(None), Stats(), DEFAULT_PRESETS,
                            Settings(concurrency=6, think_min_s=0.0, think_max_s=0.02, rate=0.0, turns_min=2,
                                     turns_max=2, max_tokens=4), rng=random.Random(5))
            engine.start()
            engine.update({"running": True, **patch})
            seen = []
            for _poll in range(40):
                await asyncio.sleep(0.05)
                seen.append(engine.active_by_routing())
            state = engine.state()
            engine.update({"running": False})
            await engine.close()
            return seen, state

    seen, state = asyncio.run(go({"ab": True}))
    assert state["settings"]["ab"] and state["effective"]["alternating"]
    # Both live side by side, balanced, all along.
    assert all(abs(a["kv"] - a["round_robin"]) <= 1 for a in seen[5:]), seen
    assert all(a["kv"] >= 2 and a["round_robin"] >= 2 for a in seen[5:]), seen
    # Auto mode alternates too, whatever the switch says.
    seen, state = asyncio.run(go({"auto": True, "routing": "kv", "auto_ramp_s": 2}))
    assert state["effective"]["alternating"] and any(a["round_robin"] > 0 for a in seen)
    # The single-routing switch stays.
    seen, state = asyncio.run(go({"routing": "round_robin"}))
    assert not state["effective"]["alternating"] and all(a["kv"] == 0 for a in seen)


def test_topology_label_and_refusals():
    t = Topology.from_dict({"replicas": 2, "tensor_parallel": 4, "engine": "tensorrt_llm", "gpu": "8 × H100",
                            "model": "nvidia/Llama-3.1-70B-Instruct-FP8"})
    assert t.label == "2 × TP4 · 8 × H100 · nvidia/Llama-3.1-70B-Instruct-FP8"
    assert t.to_dict()["label"] == t.label
    with pytest.raises(SettingsError, match="missing gpu"):
        Topology.from_dict({"replicas": 2, "tensor_parallel": 4, "engine": "mocker", "model": "m"})
    with pytest.raises(SettingsError, match="replicas must be a whole number"):
        Topology.from_dict({"replicas": "2", "tensor_parallel": 4, "engine": "mocker", "gpu": "g", "model": "m"})
    with pytest.raises(SettingsError, match="engine must be one of"):
        Topology.from_dict({"replicas": 2, "tensor_parallel": 4, "engine": "vllm", "gpu": "g", "model": "m"})
