"""Send one streamed chat completion and time it on the wire.

The stream is parsed by ``chat_stream`` (a link to the collection's
plugins/module_utils/chat_stream.py, the parser validate_inference uses too):
this file is only the HTTP side and the error classification.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from .chat_stream import ChatStream, StreamError, StreamServerError

# Error kinds, shown on the page and used as a Prometheus label.
ERR_CONNECT = "unreachable"
ERR_HTTP_4XX = "http_4xx"
ERR_HTTP_5XX = "http_5xx"
ERR_CUT = "stream_cut"
ERR_TIMEOUT = "timeout"
ERR_MALFORMED = "malformed"
ERR_EMPTY = "empty_stream"
ERROR_KINDS = (ERR_CONNECT, ERR_HTTP_4XX, ERR_HTTP_5XX, ERR_CUT, ERR_TIMEOUT, ERR_MALFORMED, ERR_EMPTY)


@dataclass
class TurnResult:
    """One request's outcome: timings, token counts, text, or the error it met."""

    ok: bool
    text: str = ""
    error_kind: str | None = None
    error: str | None = None
    ttft_ms: float | None = None
    itl_ms: float | None = None
    itl_samples_ms: list[float] | None = None
    latency_ms: float | None = None
    server_ttft_ms: float | None = None
    kv_hit_rate: float | None = None
    cache_hit: float | None = None
    cached_tokens: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    worker_id: str | None = None

    @classmethod
    def from_stream(cls, rec: ChatStream, latency_s: float) -> TurnResult:
        """Arrival times in ``rec`` are seconds since the request was sent."""
        return cls(
            ok=True,
            text=rec.text,
            ttft_ms=rec.ttft_ms(),
            itl_ms=rec.itl_ms(),
            itl_samples_ms=rec.itl_samples_ms(),
            latency_ms=latency_s * 1000.0,
            server_ttft_ms=rec.server_timing("ttft_ms"),
            kv_hit_rate=rec.server_timing("kv_hit_rate"),
            cache_hit=rec.cache_hit(),
            cached_tokens=rec.cached_tokens,
            prompt_tokens=rec.prompt_tokens,
            completion_tokens=rec.output_tokens(),
            worker_id=rec.worker_id,
        )


def build_request(model: str, messages: list[dict[str, str]], max_tokens: int,
                  extra_body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request body; ``extra_body`` adds fields (the benchmarks' ``ignore_eos``)."""
    return {
        "model": model,
        "messages": messages,
        "stream": True,
        "max_tokens": max_tokens,
        # usage (with cached_tokens) arrives in a last chunk with no choices.
        "stream_options": {"include_usage": True},
        # Dynamo-only: timing (ttft_ms, kv_hit_rate) on the finishing chunk,
        # worker_id on every chunk. Other servers ignore it.
        "nvext": {"extra_fields": ["timing", "worker_id"]},
        **(extra_body or {}),
    }


async def stream_chat(
    session: aiohttp.ClientSession,
    base_url: str,
    model: str,
    messages: list[dict[str, str]],
    *,
    max_tokens: int = 64,
    timeout_s: float = 60.0,
    headers: dict[str, str] | None = None,
    extra_body: dict[str, Any] | None = None,
) -> TurnResult:
    """POST {base_url}/v1/chat/completions with stream=true; never raises for network faults."""
    url = base_url.rstrip("/") + "/v1/chat/completions"
    body = build_request(model, messages, max_tokens, extra_body)
    rec = ChatStream()
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(url, json=body, headers=headers) as resp:
                if resp.status >= 400:
                    detail = (await resp.text())[:200]
                    kind = ERR_HTTP_5XX if resp.status >= 500 else ERR_HTTP_4XX
                    return TurnResult(ok=False, error_kind=kind, error=f"HTTP {resp.status}: {detail}")
                # Timestamp each line as it is read: the parse cost of one
                # chunk does not leak into the next one's arrival time.
                # Read to the end of the body (not just to [DONE]) so the
                # connection goes back to the pool for the next turn.
                async for line in resp.content:
                    rec.feed_line(line, time.perf_counter() - start)
                rec.close()
    except StreamServerError as exc:
        return TurnResult(ok=False, error_kind=ERR_HTTP_5XX, error=f"error in stream: {exc.detail}")
    except StreamError as exc:
        return TurnResult(ok=False, error_kind=ERR_MALFORMED, error=str(exc))
    except TimeoutError:
        return TurnResult(ok=False, error_kind=ERR_TIMEOUT, error=f"no complete answer within {timeout_s:g} s")
    except aiohttp.ClientPayloadError as exc:
        return TurnResult(ok=False, error_kind=ERR_CUT, error=f"stream cut: {exc}")
    except aiohttp.ClientConnectorError as exc:
        return TurnResult(ok=False, error_kind=ERR_CONNECT, error=f"cannot connect to {url}: {exc.os_error}")
    except (aiohttp.ClientError, OSError) as exc:
        return TurnResult(ok=False, error_kind=ERR_CUT, error=f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - start
    if not rec.finished:
        return TurnResult(ok=False, error_kind=ERR_CUT, error="stream ended before a finish reason or [DONE]")
    if not rec.content:
        return TurnResult(ok=False, error_kind=ERR_EMPTY, error="stream carried no text")
    return TurnResult.from_stream(rec, latency)
