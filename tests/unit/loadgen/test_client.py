"""stream_chat against a real local HTTP server, in every fault mode."""

import asyncio

import aiohttp
import pytest

from gtc_loadgen import client
from fake_openai import fake_server

MSGS = [{"role": "system", "content": "doc " * 50}, {"role": "user", "content": "q?"}]


async def _one(mode: str, timeout_s: float = 5.0, max_tokens: int = 6):
    async with fake_server() as srv, aiohttp.ClientSession() as session:
        res = await client.stream_chat(session, f"{srv.base}/{mode}", "m", MSGS,
                                       max_tokens=max_tokens, timeout_s=timeout_s)
        return res, srv.requests


def test_ok_stream_and_request_shape():
    res, reqs = asyncio.run(_one("ok"))
    assert res.ok and res.error_kind is None
    assert res.text == "".join(f" word{i}" for i in range(6))
    assert res.ttft_ms is not None and res.ttft_ms > 0
    assert res.itl_ms is not None and res.completion_tokens == 6
    assert res.server_ttft_ms == 1.0 and res.worker_id == "7"
    assert res.cached_tokens == res.prompt_tokens // 2
    body = reqs[0][1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["nvext"] == {"extra_fields": ["timing", "worker_id"]}
    assert body["messages"] == MSGS and body["max_tokens"] == 6


def test_multi_token_chunks():
    res, _reqs = asyncio.run(_one("multi"))
    assert res.ok and res.completion_tokens == 8
    assert len(res.itl_samples_ms) == 7


@pytest.mark.parametrize(("mode", "kind"), [
    ("http500", client.ERR_HTTP_5XX),
    ("http404", client.ERR_HTTP_4XX),
    ("cut", client.ERR_CUT),
    ("malformed", client.ERR_MALFORMED),
    ("error_in_stream", client.ERR_HTTP_5XX),
    ("empty", client.ERR_EMPTY),
])
def test_faults_are_classified_not_raised(mode, kind):
    res, _reqs = asyncio.run(_one(mode))
    assert not res.ok
    assert res.error_kind == kind, res.error
    assert res.error


def test_slow_server_times_out():
    res, _reqs = asyncio.run(_one("slow", timeout_s=0.3))
    assert not res.ok and res.error_kind == client.ERR_TIMEOUT


def test_unreachable_endpoint():
    async def go():
        async with aiohttp.ClientSession() as session:
            # Port 9 on loopback: nothing listens there.
            return await client.stream_chat(session, "http://127.0.0.1:9", "m", MSGS, timeout_s=2)
    res = asyncio.run(go())
    assert not res.ok and res.error_kind == client.ERR_CONNECT
    assert "127.0.0.1:9" in res.error
