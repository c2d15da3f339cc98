"""The live instrument: the same conversations against real Dynamo frontends and mockers.

``LocalStack`` starts what the local demo runs (mocker workers with this repo's perf profile
and KV capacity, a KV-aware frontend and a round-robin frontend on the same workers, file
discovery, TCP request plane, ZMQ event plane: no etcd, no NATS) on ports of its own, from
the benchmark venv. ``drive`` replays conversations against an OpenAI-compatible base URL
with a small async streaming client and records what each turn cost.

Everything stays on 127.0.0.1 and is bounded: a fixed list of conversations, a per-request
timeout, and the stack is stopped (process group by process group) on exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gtc_bench.shape import ConversationShape
from gtc_bench.trace import Conversation

MODEL_NAME = "nvidia/Llama-3.1-70B-Instruct-FP8"
VOCAB_SIZE = 32_000
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "den", "mar", "pol", "ter", "quin", "bra", "sel",
              "dor", "fen", "gal", "hir", "jus", "kel", "lum", "nor", "pra", "sto", "tri", "ven", "wal", "zen", "cor"]


# ---------------------------------------------------------------- model directory


def vocabulary() -> list[str]:
    """32,000 distinct pronounceable words: every id the mocker emits decodes to one word."""
    words: list[str] = []
    seen: set[str] = set()
    n = len(_SYLLABLES)
    i = 0
    while len(words) < VOCAB_SIZE - 8:
        # i written in base n, most significant digit first, is the word's syllables
        digits, k = [], i
        while True:
            digits.append(k % n)
            k //= n
            if not k:
                break
        word = "".join(_SYLLABLES[d] for d in reversed(digits)) if i >= n else _SYLLABLES[i] + "n"
        i += 1
        if word not in seen:  # different syllable splits can spell the same word
            seen.add(word)
            words.append(word)
    return words


def write_model_dir(path: Path) -> Path:
    """tokenizer.json (word level), tokenizer_config.json (chat template), config.json (70B shape)."""
    from tokenizers import Tokenizer  # pylint: disable=import-outside-toplevel
    from tokenizers.decoders import WordPiece  # pylint: disable=import-outside-toplevel
    from tokenizers.models import WordLevel  # pylint: disable=import-outside-toplevel
    from tokenizers.pre_tokenizers import WhitespaceSplit  # pylint: disable=import-outside-toplevel

    marker = path / ".complete"
    if marker.exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "system:", "user:", "assistant:", "<pad>", "\n"]
    vocab = {tok: i for i, tok in enumerate(specials + vocabulary())}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    tok.decoder = WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tok.save(str(path / "tokenizer.json"))
    template = (
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + ' ' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "model_max_length": 131072, "chat_template": template,
    }, indent=1))
    (path / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192,
        "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
        "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 131072,
        "vocab_size": len(vocab), "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
    }, indent=1))
    marker.write_text("ok\n")
    return path


# ---------------------------------------------------------------- the stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalStack:
    """Mocker workers + KV and round-robin frontends, started from ``python`` (the bench venv)."""

    workdir: Path
    replicas: int
    profile_npz: Path
    num_gpu_blocks: int
    kv_port: int = 0  # 0: a free port of 127.0.0.1, picked at start
    rr_port: int = 0
    router_args: tuple[str, ...] = ()
    python: str = sys.executable
    procs: list[subprocess.Popen] = field(default_factory=list)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DYN_DISCOVERY_BACKEND="file", DYN_FILE_KV=str(self.workdir / "discovery"),
            DYN_REQUEST_PLANE="tcp", DYN_EVENT_PLANE="zmq", DYN_LOG=env.get("DYN_LOG", "warn"),
        )
        return env

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("w")
        # own process group: stop() ends exactly what we started
        self.procs.append(subprocess.Popen([self.python, *args], env=self._env(), stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def start(self, timeout_s: float = 180.0) -> None:
        self.kv_port = self.kv_port or free_port()
        self.rr_port = self.rr_port or free_port()
        model = write_model_dir(self.workdir.parent / "model")
        (self.workdir / "discovery").mkdir(parents=True, exist_ok=True)
        for i in range(self.replicas):
            self._spawn(f"mocker-{i}", [
                "-m", "dynamo.mocker", "--model-path", str(model), "--model-name", MODEL_NAME,
                "--engine-type", "trtllm", "--block-size", "32",
                "--num-gpu-blocks-override", str(self.num_gpu_blocks),
                "--planner-profile-data", str(self.profile_npz),
            ])
        self._spawn("frontend-kv", ["-m", "dynamo.frontend", "--http-host", "127.0.0.1", "--http-port",
                                    str(self.kv_port), "--router-mode", "kv", *self.router_args])
        self._spawn("frontend-rr", ["-m", "dynamo.frontend", "--http-host", "127.0.0.1", "--http-port",
                                    str(self.rr_port), "--router-mode", "round-robin"])
        asyncio.run(self._wait_ready(timeout_s))

    async def _wait_ready(self, timeout_s: float) -> None:
        import aiohttp  # pylint: disable=import-outside-toplevel

        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as http:
            for port in (self.kv_port, self.rr_port):
                while True:
                    dead = [p.args for p in self.procs if p.poll() is not None]
                    if dead:
                        raise RuntimeError(f"stack process exited early: {dead} (logs in {self.workdir})")
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/v1/models") as resp:
                            if resp.status == 200 and MODEL_NAME in await resp.text():
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"frontend on {port} did not list {MODEL_NAME} in {timeout_s:g} s")
                    await asyncio.sleep(1.0)
        # every worker must be known to the routers before we measure: ask each frontend
        # until requests have landed on all replicas (or give up after the deadline)
        await self._wait_workers(deadline)

    async def _wait_workers(self, deadline: float) -> None:
        import aiohttp  # pylint: disable=import-outside-toplevel

        async with aiohttp.ClientSession() as http:
            for port in (self.rr_port,):
                seen: set[Any] = set()
                while len(seen) < self.replicas and time.monotonic() < deadline:
                    rec = await _turn(http, f"http://127.0.0.1:{port}", [{"role": "user", "content": "ka lo"}], 2, 30.0)
                    if rec.get("worker") is not None:
                        seen.add(rec["worker"])
                    await asyncio.sleep(0.2)
                if len(seen) < self.replicas:
                    raise TimeoutError(f"only {len(seen)} of {self.replicas} workers answered on port {port}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self.procs.clear()

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- the client


def _words(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choices(words, k=n))


async def _turn(http: Any, base_url: str, messages: list[dict], max_tokens: int, timeout_s: float) -> dict:
    """One streamed chat completion: client TTFT, the server's timing, cached tokens, worker."""
    import aiohttp  # pylint: disable=import-outside-toplevel

    body = {
        "model": MODEL_NAME, "messages": messages, "max_tokens": max_tokens, "stream": True,
        "stream_options": {"include_usage": True}, "ignore_eos": True,
        "nvext": {"extra_fields": ["timing", "worker_id"]},
    }
    rec: dict[str, Any] = {"ok": False, "text": ""}
    parts: list[str] = []
    t0 = time.perf_counter()
    try:
        async with http.post(f"{base_url}/v1/chat/completions", json=body,
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                rec["error"] = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                return rec
            async for raw in resp.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        if "ttft_ms" not in rec:
                            rec["ttft_ms"] = (time.perf_counter() - t0) * 1000.0
                        parts.append(text)
                usage = chunk.get("usage")
                if usage:
                    rec["prompt_tokens"] = usage.get("prompt_tokens")
                    rec["cached_tokens"] = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
                nvext = chunk.get("nvext") or {}
                timing = nvext.get("timing") or {}
                if timing.get("ttft_ms") is not None:
                    rec["server_ttft_ms"] = timing["ttft_ms"]
                worker = (nvext.get("worker_id") or {}).get("decode_worker_id")
                if worker is not None:
                    rec["worker"] = worker
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
        return rec
    rec["text"] = "".join(parts)
    rec["ok"] = "ttft_ms" in rec
    return rec


async def _conversation(http: Any, base_url: str, conv: Conversation, words: list[str], t_start: float,
                        timeout_s: float, tag: str) -> list[dict]:
    # the conversation's own text: seeded by conversation and pass, so two passes never share a prefix
    rng = random.Random(f"{tag}-{conv.seed}")
    await asyncio.sleep(max(0.0, t_start + conv.start_s - time.monotonic()))
    messages = [{"role": "system", "content": _words(rng, words, conv.system_tokens)}]
    out = []
    for k, turn in enumerate(conv.turns):
        if k:
            await asyncio.sleep(turn.think_s)
        messages.append({"role": "user", "content": _words(rng, words, turn.question_tokens)})
        sent_ms = (time.monotonic() - t_start) * 1000.0
        rec = await _turn(http, base_url, messages, turn.answer_tokens, timeout_s)
        rec.update(session_id=conv.conv_id, turn=k + 1, sent_ms=sent_ms, end_ms=(time.monotonic() - t_start) * 1000.0)
        text = rec.pop("text")
        out.append(rec)
        if not rec["ok"]:
            break  # a failed turn ends the conversation; it is counted, not retried
        messages.append({"role": "assistant", "content": text})
    return out


async def drive(base_url: str, convs: list[Conversation], shape: ConversationShape, tag: str,
                timeout_s: float = 120.0) -> list[dict]:
    """Replay ``convs`` (start times, sizes, think times) against ``base_url``; per-turn records."""
    import aiohttp  # pylint: disable=import-outside-toplevel

    del shape  # sizes are already in the conversations; kept for a stable signature
    words = vocabulary()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        t_start = time.monotonic()
        results = await asyncio.gather(*(
            _conversation(http, base_url, c, words, t_start, timeout_s, tag) for c in convs))
    return [r for conv in results for r in conv]


def live_stats(records: list[dict]) -> dict:
    """Per-turn client TTFT stats in the simulator's format (miss = cached < half the prompt)."""
    from gtc_bench import sim  # pylint: disable=import-outside-toplevel

    ok = [r for r in records if r.get("ok")]
    adapted = [{
        "session_id": r["session_id"], "turn": r["turn"], "ttft_ms": r["ttft_ms"],
        "input_length": r.get("prompt_tokens") or 1, "reused": r.get("cached_tokens") or 0,
        "arrival_ms": r["sent_ms"], "end_ms": r["end_ms"],
    } for r in ok]
    stats = sim.turn_stats(adapted)
    server = [{**a, "ttft_ms": r["server_ttft_ms"]} for a, r in zip(adapted, ok) if r.get("server_ttft_ms") is not None]
    stats["server"] = sim.turn_stats(server) if server else None
    stats["errors"] = len(records) - len(ok)
    stats["requests"] = len(records)
    return stats
