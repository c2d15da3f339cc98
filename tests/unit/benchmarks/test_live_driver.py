"""gtc_bench.live drives the trace's conversations with the load generator's client.

Against a small OpenAI-compatible stream server on 127.0.0.1 that counts one token per word (as
the demo's tokenizer does for the words live.py sends) and reports a cache hit for the prompt a
session already sent; the real stack is driven in tests/integration/benchmarks.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer

from gtc_bench import live, trace
from gtc_bench.trace import Conversation, Turn

WORDS = ["alpha", "bravo", "charlie", "delta", "echo"]
MODEL = "nvidia/Llama-3.1-70B-Instruct-FP8"


@asynccontextmanager
async def stream_server(fail_on_turn: int | None = None):
    requests: list[dict] = []
    sent: dict[str, int] = {}  # system prompt -> words of the last prompt of that conversation

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        requests.append(body)
        turn = sum(1 for m in body["messages"] if m["role"] == "user")
        if turn == fail_on_turn:
            return web.json_response({"error": {"message": "engine exploded"}}, status=500)
        words = sum(len(m["content"].split()) for m in body["messages"])
        system = body["messages"][0]["content"]
        cached = sent.get(system, 0)
        sent[system] = words
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(body["max_tokens"]):
            chunk = {"choices": [{"delta": {"content": f" w{i}"}}], "nvext": {"worker_id": {"decode_worker_id": 4}}}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        final = {"choices": [{"delta": {}, "finish_reason": "length"}], "nvext": {"timing": {"ttft_ms": 0.5}}}
        usage = {"choices": [], "usage": {"prompt_tokens": words, "completion_tokens": body["max_tokens"],
                                          "prompt_tokens_details": {"cached_tokens": cached}}}
        for chunk in (final, usage):
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with TestServer(app, host="127.0.0.1") as server:  # a free port of 127.0.0.1
        yield str(server.make_url("")).rstrip("/"), requests


CONVS = [
    Conversation("s0", 0.0, 40, (Turn(5, 3, 0.0), Turn(6, 2, 0.05), Turn(4, 2, 0.05)), seed=1),
    Conversation("s1", 0.05, 30, (Turn(7, 2, 0.0), Turn(3, 4, 0.05)), seed=2),
]


def run(fail_on_turn: int | None = None) -> tuple[list[dict], list[dict]]:
    async def go():
        async with stream_server(fail_on_turn) as (url, requests):
            return await live.drive(url, MODEL, CONVS, WORDS, tag="t"), requests
    return asyncio.run(go())


def test_each_turn_is_sent_as_the_trace_says_and_timed_by_the_client():
    records, requests = run()
    assert [(r["session_id"], r["turn"]) for r in sorted(records, key=lambda r: (r["session_id"], r["turn"]))] == [
        ("s0", 1), ("s0", 2), ("s0", 3), ("s1", 1), ("s1", 2)]
    assert all(r["ok"] and r["ttft_ms"] > 0 and r["server_ttft_ms"] == 0.5 and r["worker"] == "4" for r in records)
    assert all(r["end_ms"] >= r["sent_ms"] for r in records)
    s0 = [b for b in requests if len(b["messages"][0]["content"].split()) == 40]
    assert [b["max_tokens"] for b in s0] == [3, 2, 2]
    assert all(b["ignore_eos"] is True and b["stream"] is True and b["model"] == MODEL for b in requests)
    last = s0[-1]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [len(m["content"].split()) for m in last if m["role"] == "user"] == [5, 6, 4]
    assert last[2]["content"] == " w0 w1 w2"  # the answer goes back into the conversation
    assert set(" ".join(m["content"] for m in last if m["role"] != "assistant").split()) <= set(WORDS)
    # the follow-ups found their prefix in the (fake) cache: no misses, in the simulator's terms
    stats = live.live_stats(records)
    assert stats["requests"] == 5 and stats["errors"] == 0
    assert stats["followups"]["miss"] == 0.0 and stats["turns"][1]["miss"] == 1.0
    assert stats["server"]["followups"]["median"] == 0.5


def test_a_failed_turn_ends_its_conversation_and_is_counted():
    records, _requests = run(fail_on_turn=2)
    by_session = {s: [r for r in records if r["session_id"] == s] for s in ("s0", "s1")}
    assert [r["ok"] for r in by_session["s0"]] == [True, False]
    assert by_session["s0"][1]["error_kind"] == "http_5xx" and "engine exploded" in by_session["s0"][1]["error"]
    stats = live.live_stats(records)
    assert (stats["requests"], stats["errors"]) == (4, 2)


def test_two_passes_never_share_text():
    async def go():
        async with stream_server() as (url, requests):
            await live.drive(url, MODEL, CONVS[:1], WORDS * 100, tag="kv")
            await live.drive(url, MODEL, CONVS[:1], WORDS * 100, tag="round_robin")
            return requests
    requests = asyncio.run(go())
    assert requests[0]["messages"][0]["content"] != requests[3]["messages"][0]["content"]


def test_prompt_length_check_compares_served_tokens_with_the_trace():
    rows = trace.to_mooncake(CONVS)
    records, _requests = run()
    check = live.prompt_length_check(records, rows)
    assert check["requests"] == 5
    # the fake counts words only; the trace adds 5 template tokens per message
    expected_first = rows[0]["input_length"]
    served_first = next(r["prompt_tokens"] for r in records if (r["session_id"], r["turn"]) == ("s0", 1))
    assert served_first == 45 and expected_first == 40 + 5 + 5 + 5
    assert check["min"] <= served_first / expected_first <= check["max"] < 1.0
