"""The live instrument: the simulator's conversations against the booth's real local stack.

The stack is the collection's own (``gtc_bench.stack.RoleStack``: ``site.yml -i inventories/local``
in a benchmark home, on free ports). ``drive`` replays conversations (start times, sizes, think
times from ``gtc_bench.trace``) against a frontend with the load generator's own client
(``gtc_loadgen.client.stream_chat``, the code every ``gtc-loadgen`` request goes through, and its
stream parser, the collection's ``chat_stream``), and records what each turn cost.

The prompts are words of the demo's own tokenizer (the WordPiece vocabulary the local demo serves,
``roles/model_sync/files/local-model``), picked so that each word is exactly one token: a turn's
prompt is then as long, in the served model's tokens, as the trace says.

Everything stays on 127.0.0.1 and is bounded: a fixed list of conversations and a per-request timeout.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

from gtc_bench.trace import Conversation

# Words of at least this many letters: long enough to be whole vocabulary entries, not pieces.
MIN_WORD_LETTERS = 3


def demo_vocabulary(model_dir: Path) -> list[str]:
    """Words that the tokenizer in ``model_dir`` turns into exactly one token each, sorted.

    Candidates are the vocabulary's plain lower-case words (no ``##`` continuation pieces, no
    special or bracketed tokens); each is checked by encoding it, so the list holds only what the
    served tokenizer really keeps whole.
    """
    from tokenizers import Tokenizer  # pylint: disable=import-outside-toplevel

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    vocab = tokenizer.get_vocab()
    candidates = sorted(w for w in vocab if w.isascii() and w.isalpha() and w.islower() and len(w) >= MIN_WORD_LETTERS)
    encoded = tokenizer.encode_batch(candidates, add_special_tokens=False)
    words = [w for w, enc in zip(candidates, encoded) if enc.ids == [vocab[w]]]
    if len(words) < 1000:
        raise ValueError(f"{model_dir}: only {len(words)} one-token words; is this the demo's tokenizer?")
    return words


def _words(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choices(words, k=n))


def _record(result: Any) -> dict:
    """What the report needs of one TurnResult (gtc_loadgen.client)."""
    return {
        "ok": result.ok, "ttft_ms": result.ttft_ms, "server_ttft_ms": result.server_ttft_ms,
        "prompt_tokens": result.prompt_tokens, "cached_tokens": result.cached_tokens,
        "completion_tokens": result.completion_tokens, "worker": result.worker_id,
        "error": result.error, "error_kind": result.error_kind,
    }


async def _conversation(session: Any, base_url: str, model: str, conv: Conversation, words: list[str],
                        t_start: float, timeout_s: float, tag: str) -> list[dict]:
    from gtc_loadgen.client import stream_chat  # pylint: disable=import-outside-toplevel

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
        # ignore_eos: the answer is as long as the trace says, as in the simulator
        result = await stream_chat(session, base_url, model, messages, max_tokens=turn.answer_tokens,
                                   timeout_s=timeout_s, extra_body={"ignore_eos": True})
        rec = _record(result)
        rec.update(session_id=conv.conv_id, turn=k + 1, sent_ms=sent_ms, end_ms=(time.monotonic() - t_start) * 1000.0)
        out.append(rec)
        if not result.ok:
            break  # a failed turn ends the conversation; it is counted, not retried
        messages.append({"role": "assistant", "content": result.text})
    return out


async def drive(base_url: str, model: str, convs: list[Conversation], words: list[str], tag: str,
                timeout_s: float = 120.0) -> list[dict]:
    """Replay ``convs`` against ``base_url`` with the load generator's client; per-turn records."""
    import aiohttp  # pylint: disable=import-outside-toplevel

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        t_start = time.monotonic()
        results = await asyncio.gather(*(
            _conversation(session, base_url, model, c, words, t_start, timeout_s, tag) for c in convs))
    return [r for conv in results for r in conv]


async def wait_for_workers(base_url: str, model: str, replicas: int, deadline_s: float = 120.0) -> set[str]:
    """Ask a round-robin frontend until every replica has answered (each router knows each worker)."""
    import aiohttp  # pylint: disable=import-outside-toplevel

    from gtc_loadgen.client import stream_chat  # pylint: disable=import-outside-toplevel

    seen: set[str] = set()
    deadline = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as session:
        while len(seen) < replicas and time.monotonic() < deadline:
            result = await stream_chat(session, base_url, model, [{"role": "user", "content": "hello there"}],
                                       max_tokens=2, timeout_s=30.0)
            if result.worker_id is not None:
                seen.add(result.worker_id)
            await asyncio.sleep(0.2)
    if len(seen) < replicas:
        raise TimeoutError(f"only {len(seen)} of {replicas} workers answered on {base_url}")
    return seen


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


def prompt_length_check(records: list[dict], trace_rows: list[dict]) -> dict:
    """The served prompt lengths against the trace's: the text generator's accuracy, in the demo's tokens."""
    expected: dict[tuple[str, int], int] = {}
    turn_of: dict[str, int] = {}
    for row in trace_rows:  # a session's rows are in turn order
        turn_of[row["session_id"]] = turn_of.get(row["session_id"], 0) + 1
        expected[(row["session_id"], turn_of[row["session_id"]])] = row["input_length"]
    ratios = [r["prompt_tokens"] / expected[(r["session_id"], r["turn"])] for r in records
              if r.get("ok") and r.get("prompt_tokens") and (r["session_id"], r["turn"]) in expected]
    if not ratios:
        return {"requests": 0}
    ratios.sort()
    return {"requests": len(ratios), "served_over_trace_median": round(ratios[len(ratios) // 2], 4),
            "min": round(ratios[0], 4), "max": round(ratios[-1], 4)}


def write_records(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
