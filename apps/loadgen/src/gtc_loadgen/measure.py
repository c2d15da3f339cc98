"""Client-side timing of one streamed chat completion.

Pure code: it is fed the SSE ``data:`` lines of a stream with the time each
arrived, and turns them into TTFT, ITL and what the server said about itself
(Dynamo's ``nvext`` timing and worker id, the usage block). Keeping it free of
I/O lets the tests replay recorded streams byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class StreamError(Exception):
    """The stream was not a valid OpenAI chat-completion stream."""


@dataclass
class StreamRecord:
    """What one stream delivered, with arrival times in seconds since the request was sent."""

    # (arrival time, text) of every chunk that carried content.
    content_chunks: list[tuple[float, str]] = field(default_factory=list)
    done: bool = False  # saw "data: [DONE]"
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    server_ttft_ms: float | None = None
    server_total_ms: float | None = None
    kv_hit_rate: float | None = None
    worker_id: str | None = None
    error: str | None = None  # an error object sent inside the stream

    # -- feeding ---------------------------------------------------------
    def feed_line(self, line: bytes | str, t: float) -> None:
        """Take one raw SSE line (with or without its newline) received at time ``t``."""
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        line = line.strip()
        if not line or line.startswith(":"):
            return  # blank separator or SSE comment (keep-alive)
        if line.startswith("event:") or line.startswith("id:") or line.startswith("retry:"):
            return
        if not line.startswith("data:"):
            raise StreamError(f"unexpected SSE line: {line[:80]!r}")
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise StreamError(f"chunk is not JSON: {payload[:80]!r}") from exc
        if not isinstance(chunk, dict):
            raise StreamError("chunk is not a JSON object")
        self.feed_chunk(chunk, t)

    def feed_chunk(self, chunk: dict[str, Any], t: float) -> None:
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            self.error = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            return
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                self.content_chunks.append((t, text))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        nvext = chunk.get("nvext")
        if isinstance(nvext, dict):
            self._take_nvext(nvext)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
            self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)
            details = usage.get("prompt_tokens_details") or {}
            if details.get("cached_tokens") is not None:
                self.cached_tokens = int(details["cached_tokens"])

    def _take_nvext(self, nvext: dict[str, Any]) -> None:
        # Dynamo repeats worker_id on every chunk and sends timing once, on
        # the chunk that carries finish_reason.
        worker = nvext.get("worker_id")
        if isinstance(worker, dict):
            wid = worker.get("decode_worker_id", worker.get("prefill_worker_id"))
            if wid is not None:
                self.worker_id = str(wid)
        timing = nvext.get("timing")
        if isinstance(timing, dict):
            if timing.get("ttft_ms") is not None:
                self.server_ttft_ms = float(timing["ttft_ms"])
            if timing.get("total_time_ms") is not None:
                self.server_total_ms = float(timing["total_time_ms"])
            if timing.get("kv_hit_rate") is not None:
                self.kv_hit_rate = float(timing["kv_hit_rate"])

    # -- results -----------------------------------------------------------
    @property
    def text(self) -> str:
        return "".join(text for _t, text in self.content_chunks)

    @property
    def complete(self) -> bool:
        """The server ended the stream properly (a finish reason or [DONE])."""
        return self.done or self.finish_reason is not None

    def ttft_ms(self) -> float | None:
        """Time to the first chunk that carries text (role-only chunks do not count)."""
        if not self.content_chunks:
            return None
        return self.content_chunks[0][0] * 1000.0

    def output_tokens(self) -> int:
        """Tokens generated: the server's count when it sent one, else one per content chunk."""
        if self.completion_tokens:
            return int(self.completion_tokens)
        return len(self.content_chunks)

    def itl_ms(self) -> float | None:
        """Mean inter-token latency, corrected for chunks that carry several tokens.

        (last token time - first token time) / (output tokens - 1), the
        definition aiperf and vLLM's benchmarks use: a chunk with three tokens
        counts as three tokens, not as one slow one.
        """
        n = self.output_tokens()
        if len(self.content_chunks) < 2 or n < 2:
            return None
        span = self.content_chunks[-1][0] - self.content_chunks[0][0]
        return span * 1000.0 / (n - 1)

    def itl_samples_ms(self) -> list[float]:
        """Per-token gaps for a histogram: each chunk's gap spread over the tokens it carries.

        When the server counted more tokens than there were chunks, tokens are
        attributed to chunks in proportion to the words they carry (at least
        one each), so a chunk of three words yields three samples of a third
        of its gap.
        """
        chunks = self.content_chunks
        if len(chunks) < 2:
            return []
        counts = attribute_tokens([text for _t, text in chunks], self.output_tokens())
        samples: list[float] = []
        for i in range(1, len(chunks)):
            gap_ms = (chunks[i][0] - chunks[i - 1][0]) * 1000.0
            k = counts[i]
            samples.extend([gap_ms / k] * k)
        return samples

    def cache_hit(self) -> float | None:
        """Share of the prompt served from the KV cache, 0..1.

        Prefers the usage block's cached_tokens / prompt_tokens (filled by both
        routing modes), then the KV router's own kv_hit_rate.
        """
        if self.cached_tokens is not None and self.prompt_tokens:
            return min(1.0, self.cached_tokens / self.prompt_tokens)
        return self.kv_hit_rate


def attribute_tokens(texts: list[str], total: int) -> list[int]:
    """Split ``total`` tokens over chunks, at least one each, by the words each carries."""
    n = len(texts)
    if n == 0:
        return []
    if total <= n:
        return [1] * n
    weights = [max(1, len(t.split())) for t in texts]
    if sum(weights) == total:
        return weights
    extra = total - n
    whole = sum(weights)
    shares = [extra * w / whole for w in weights]
    counts = [1 + int(s) for s in shares]
    # Hand the rounding remainder to the chunks with the largest fractions.
    left = total - sum(counts)
    order = sorted(range(n), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    for i in order[:left]:
        counts[i] += 1
    return counts
