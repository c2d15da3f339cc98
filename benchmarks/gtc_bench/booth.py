"""The booth's own load, measured live and in Dynamo's simulator: a closed loop, as the load generator runs it.

``gtc_bench.trace`` starts conversations as a Poisson process (an open loop), which is how the
simulator's sweeps describe load. The booth's load generator does something else
(``apps/loadgen/src/gtc_loadgen/engine.py``): it keeps exactly ``concurrency`` conversations going,
starts a replacement the moment one ends, delays each first turn by U(0, think_min) and spaces
request starts ``1/rate`` apart; in A/B mode new conversations alternate between the routings, so
both routings share the same workers. This module reproduces that loop:

- ``plan``: the conversations, in start order, each with its routing and first-turn delay (seeded);
- ``drive``: the live loop against the frontends (the load generator's client, as ``gtc_bench.live``);
- ``simulate``: the same loop in ``run_trace_replay``. A trace has fixed start times, so the loop is
  solved by iteration: start times from the previous pass's end times, until they settle.

Round-robin in an A/B replay. The replay routes every request one way. A/B is replayed with the KV
router, and each round-robin conversation's turn draws a worker label uniformly (seeded), as
round-robin's cycle does for one conversation among others. The prompt blocks it sends are named
per (conversation, label): a turn whose label served an earlier turn reuses that turn's blocks (a
hit), a new label's blocks are new to every worker (a miss: a full prefill, placed where the KV
router finds the least load). So round-robin's misses cost the shared workers what they cost live;
only their placement is the router's, not the cycle's (``README.md``, "The tail").
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from dataclasses import dataclass
from typing import Any, Sequence

from gtc_bench import shape as shapes
from gtc_bench.trace import Conversation, Turn, to_mooncake

# The booth preset of the load generator (apps/loadgen/src/gtc_loadgen/settings.py DEFAULT_PRESETS
# "booth": concurrency 16, rate 4.0, think 4-12 s; Settings: turns 3-5, max_tokens 96).
BOOTH_CONCURRENCY = 16
BOOTH_RATE = 4.0
# The booth's system prompt in the demo's tokenizer: two of the app's 15 corpus documents
# (gtc_loadgen.corpus, Seed.system_prompt, context_docs 2) are 4,433-6,468 tokens of the WordPiece
# vocabulary (200 draws, median 4,991; measured 2026-12-01 against the page's own misses, which
# recomputed 5,800 tokens each). Issue 17's 5.5-9.3K estimate ran the first measurements
# (results/booth.json records the shape of each run). Answers are max_tokens 96.
BOOTH_SHAPE = shapes.BOOTH.replace(system_tokens_min=4400, system_tokens_max=6500,
                                   answer_tokens_min=96, answer_tokens_max=96)


@dataclass(frozen=True)
class BoothLoad:
    """The load generator's loop: how many conversations, how fast, which routings."""

    concurrency: int = BOOTH_CONCURRENCY
    rate: float = BOOTH_RATE  # request starts per second across all conversations; 0 = no cap
    routings: tuple[str, ...] = ("kv", "round_robin")
    ab: bool = True  # conversations alternate between the routings; False: all on routings[0]
    duration_s: float = 150.0  # no conversation starts after this
    shape: shapes.ConversationShape = BOOTH_SHAPE
    seed: int = 1

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.duration_s <= 0 or self.rate < 0 or not self.routings:
            raise ValueError(f"bad booth load {self}")


@dataclass(frozen=True)
class Planned:
    conv: Conversation
    routing: str
    delay_s: float  # before its first turn, after its slot frees up (U(0, think_min), as the app)


def plan(load: BoothLoad, count: int) -> list[Planned]:
    """``count`` conversations in the order the loop starts them (start times are the loop's)."""
    rng = random.Random(load.seed)
    shp = load.shape
    out = []
    for i in range(count):
        n_turns = rng.randint(shp.turns_min, shp.turns_max)
        turns = tuple(Turn(question_tokens=rng.randint(shp.question_tokens_min, shp.question_tokens_max),
                           answer_tokens=rng.randint(shp.answer_tokens_min, shp.answer_tokens_max),
                           think_s=0.0 if k == 0 else rng.uniform(shp.think_min_s, shp.think_max_s))
                      for k in range(n_turns))
        conv = Conversation(f"booth-{load.seed}-{i:05d}", 0.0, rng.randint(shp.system_tokens_min, shp.system_tokens_max),
                            turns, rng.getrandbits(32))
        routing = load.routings[i % len(load.routings)] if load.ab else load.routings[0]
        out.append(Planned(conv, routing, rng.uniform(0.0, shp.think_min_s)))
    return out


def schedule(load: BoothLoad, planned: Sequence[Planned], durations_s: dict[str, float]) -> list[tuple[Planned, float]]:
    """Start times of the closed loop, given each conversation's duration (first turn sent to last answer).

    ``concurrency`` slots; a conversation takes the slot that frees first and starts ``delay_s``
    after; none starts after ``duration_s``. Returns (conversation, start_s) in start order.
    """
    free = [0.0] * load.concurrency
    out = []
    for p in planned:
        j = min(range(len(free)), key=free.__getitem__)
        start = free[j] + p.delay_s
        if start > load.duration_s:
            break
        out.append((p, start))
        free[j] = start + durations_s.get(p.conv.conv_id, _estimate_s(p.conv))
    return out


def _estimate_s(conv: Conversation, turn_s: float = 1.5) -> float:
    return len(conv.turns) * turn_s + sum(t.think_s for t in conv.turns)


# --- the simulator ------------------------------------------------------------------------------

def ab_rows(started: Sequence[tuple[Planned, float]], shp: shapes.ConversationShape, replicas: int,
            seed: int, rr_routing: str = "round_robin") -> list[dict]:
    """Mooncake rows of the loop (start times fixed), with round-robin conversations re-blocked per label."""
    convs = [dataclasses.replace(p.conv, start_s=start) for p, start in started]
    rows = to_mooncake(convs, shp)
    rr = {p.conv.conv_id for p, _start in started if p.routing == rr_routing}
    rng = random.Random(f"rr-{seed}")
    next_id = 1 + max((h for r in rows for h in r["hash_ids"]), default=0)
    names: dict[tuple[str, int], dict[int, int]] = {}
    for row in rows:  # a session's rows stay in turn order
        if row["session_id"] not in rr:
            continue
        label = rng.randrange(replicas)
        table = names.setdefault((row["session_id"], label), {})
        renamed = []
        for h in row["hash_ids"]:
            if h not in table:
                table[h] = next_id
                next_id += 1
            renamed.append(table[h])
        row["hash_ids"] = renamed
    return rows


def simulate(load: BoothLoad, replicas: int, tp: int, engine: Any, router: Any, passes: int = 4,
             count: int = 400) -> dict[str, Any]:
    """The loop in ``run_trace_replay``; per-request records by routing, and how the start times settled.

    ``engine``: a ``sim.EngineSpec``; ``router``: a ``sim.RouterSettings`` (the KV side). With
    ``ab`` the replay runs the KV router (round-robin as in ``ab_rows``); a single round-robin
    routing replays in ``round_robin`` mode.
    """
    import tempfile  # pylint: disable=import-outside-toplevel
    from pathlib import Path  # pylint: disable=import-outside-toplevel

    from gtc_bench import sim  # pylint: disable=import-outside-toplevel
    from gtc_bench.trace import write_jsonl  # pylint: disable=import-outside-toplevel

    planned = plan(load, count)
    routing_of = {p.conv.conv_id: p.routing for p in planned}
    durations: dict[str, float] = {}
    topo = sim.Topology(replicas, tp)
    mode = "round_robin" if (not load.ab and load.routings[0] == "round_robin") else "kv_router"
    shifts = []
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gtc-booth-") as tmp:
        for _pass in range(passes):
            started = schedule(load, planned, durations)
            rows = ab_rows(started, load.shape, replicas, load.seed) if load.ab else \
                to_mooncake([dataclasses.replace(p.conv, start_s=s) for p, s in started], load.shape)
            path = write_jsonl(rows, Path(tmp) / "booth.jsonl")
            records = sim.simulate(path, topo, mode, router, engine)
            spans: dict[str, list[float]] = {}
            for r in records:
                span = spans.setdefault(r["session_id"], [r["arrival_ms"], r["end_ms"]])
                span[0], span[1] = min(span[0], r["arrival_ms"]), max(span[1], r["end_ms"])
            new = {sid: (b - a) / 1000.0 for sid, (a, b) in spans.items()}
            shifts.append(max((abs(new[s] - durations.get(s, new[s])) for s in new), default=0.0))
            durations.update(new)
    for r in records:
        r["routing"] = routing_of[r["session_id"]]
    return {"records": records, "passes": passes, "last_shift_s": round(shifts[-1], 3), "shifts_s": shifts}


# --- live ---------------------------------------------------------------------------------------

async def drive(urls: dict[str, str], model: str, load: BoothLoad, words: list[str], tag: str,
                timeout_s: float = 120.0, count: int = 400) -> list[dict]:
    """The loop against live frontends (routing id -> base URL); per-turn records with their routing."""
    import aiohttp  # pylint: disable=import-outside-toplevel

    from gtc_loadgen.client import stream_chat  # pylint: disable=import-outside-toplevel
    from gtc_loadgen.engine import RateLimiter  # pylint: disable=import-outside-toplevel

    from gtc_bench.live import _record, _words  # pylint: disable=import-outside-toplevel

    queue = list(plan(load, count))
    queue.reverse()
    limiter = RateLimiter(load.rate)  # the app's own, so the loop paces as the booth does
    records: list[dict] = []
    t0 = time.monotonic()

    async def one(session: Any, p: Planned) -> None:
        rng = random.Random(f"{tag}-{p.conv.seed}")
        messages = [{"role": "system", "content": _words(rng, words, p.conv.system_tokens)}]
        for k, turn in enumerate(p.conv.turns):
            if k:
                await asyncio.sleep(turn.think_s)
            await limiter.acquire()
            messages.append({"role": "user", "content": _words(rng, words, turn.question_tokens)})
            sent_ms = (time.monotonic() - t0) * 1000.0
            result = await stream_chat(session, urls[p.routing], model, messages, max_tokens=turn.answer_tokens,
                                       timeout_s=timeout_s, extra_body={"ignore_eos": True})
            rec = _record(result)
            rec.update(session_id=p.conv.conv_id, routing=p.routing, turn=k + 1, sent_ms=sent_ms,
                       end_ms=(time.monotonic() - t0) * 1000.0)
            records.append(rec)
            if not result.ok:
                return
            messages.append({"role": "assistant", "content": result.text})

    async def slot(session: Any) -> None:
        while queue:
            p = queue.pop()
            await asyncio.sleep(p.delay_s)
            if time.monotonic() - t0 > load.duration_s:
                return
            await one(session, p)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(slot(session) for _slot in range(load.concurrency)))
    return records


# --- the headlines --------------------------------------------------------------------------------

def headlines(records: Sequence[dict], routings: Sequence[str], ttft_key: str = "ttft_ms") -> dict[str, Any]:
    """The page's headlines per routing, computed with the app's own definitions (gtc_loadgen.headlines).

    ``records``: live records (``prompt_tokens``/``cached_tokens``) or simulator records
    (``input_length``/``reused``), each with ``routing`` and ``turn``.
    """
    from gtc_loadgen import headlines as hl  # pylint: disable=import-outside-toplevel

    out: dict[str, Any] = {}
    summaries = {}
    for routing in routings:
        follow = []
        for r in records:
            if r.get("routing") != routing or not hl.is_followup(r["turn"]) or r.get(ttft_key) is None:
                continue
            if r.get("ok") is False:
                continue
            prompt = r.get("prompt_tokens", r.get("input_length"))
            cached = r.get("cached_tokens", r.get("reused"))
            follow.append(hl.Followup(t=r["end_ms"] / 1000.0, ttft_ms=r[ttft_key], prompt_tokens=prompt,
                                      cached_tokens=cached))
        summaries[routing] = hl.summarize(follow)
        out[routing] = summaries[routing].to_dict()
        first = [r[ttft_key] for r in records if r.get("routing") == routing and r["turn"] == 1
                 and r.get(ttft_key) is not None and r.get("ok") is not False]
        out[routing]["turn1_p50_ms"] = hl.percentile(first, 50)
    if len(routings) >= 2:
        slow, fast = summaries[routings[1]], summaries[routings[0]]
        out["ratio_p90"] = hl.ratio(slow, fast, "p90_ms")
        out["ratio_p50"] = hl.ratio(slow, fast, "p50_ms")
    return out
