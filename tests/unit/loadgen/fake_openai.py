"""A real HTTP server speaking the OpenAI streaming protocol, with faults on demand.

The first path segment picks the behaviour: ``http://host:port/<mode>`` is a
base URL whose /v1/chat/completions answers in that mode. Every request body
is kept in ``server.requests`` (mode, body) for the tests to inspect.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def _chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {"id": "x", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@dataclass
class FakeServer:
    base: str = ""
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    token_gap_s: float = 0.002

    async def handle(self, request: web.Request) -> web.StreamResponse:
        mode = request.match_info["mode"]
        body = await request.json()
        self.requests.append((mode, body))
        if mode == "http500":
            return web.json_response({"error": {"message": "engine exploded"}}, status=500)
        if mode == "http404":
            return web.json_response({"error": {"message": "model not found"}}, status=404)
        if mode == "slow":
            await asyncio.sleep(1.5)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        prompt_words = sum(len(m["content"].split()) for m in body["messages"])
        n = int(body.get("max_tokens", 8))
        worker = {"worker_id": {"decode_worker_id": 7 if mode != "ok_other" else 8}}
        if mode == "malformed":
            await resp.write(b"data: {not json\n\n")
            return resp
        if mode == "error_in_stream":
            await resp.write(b'data: {"error": {"message": "worker lost"}}\n\n')
            await resp.write(b"data: [DONE]\n\n")
            return resp
        await resp.write(_chunk(None, role="assistant"))  # role-only chunk: not a token
        if mode == "empty":
            await resp.write(_chunk(None, "stop"))
            await resp.write(b"data: [DONE]\n\n")
            return resp
        if mode == "multi":
            # three chunks carrying 1, 3 and 4 tokens: 8 tokens in all.
            for text in ("alpha", "beta gamma delta", "e f g h"):
                await asyncio.sleep(self.token_gap_s)
                await resp.write(_chunk(text, nvext=worker))
            n = 8
        else:
            for i in range(n):
                await asyncio.sleep(self.token_gap_s)
                await resp.write(_chunk(f" word{i}", nvext=worker))
                if mode == "cut" and i == 1:
                    # Close the connection mid-stream, without a finish reason.
                    request.transport.close()
                    return resp
        await resp.write(_chunk(None, "length", nvext={**worker, "timing": {"ttft_ms": 1.0, "kv_hit_rate": 0.5}}))
        usage = {"prompt_tokens": prompt_words, "completion_tokens": n, "total_tokens": prompt_words + n,
                 "prompt_tokens_details": {"cached_tokens": prompt_words // 2}}
        await resp.write(b"data: " + json.dumps({"id": "x", "choices": [], "usage": usage}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp


@asynccontextmanager
async def fake_server():
    server = FakeServer()
    app = web.Application()
    app.router.add_post("/{mode}/v1/chat/completions", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.base = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
