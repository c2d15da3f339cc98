"""Conversations drawn from the shared conversation model, and their Mooncake-format trace.

``generate`` draws the conversations (sizes, think times, Poisson start times) once; the
simulator consumes them as a Mooncake JSONL trace (``to_mooncake``) and the live client
replays the very same conversations as chat requests, so both instruments see one workload.

Mooncake rows: ``timestamp`` (ms), ``input_length``, ``output_length``, ``hash_ids`` (one id
per 32-token block of the prompt), ``session_id``. Follow-up turns also carry ``delay`` (ms):
Dynamo's replay dispatches a session's next turn that long after the previous turn
*completes* (it prefers ``delay`` over timestamp differences), which is how a user waits for
the answer and then thinks. ``timestamp`` of a follow-up is an estimate for readers that
only understand absolute times.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from gtc_bench.shape import BOOTH, PROBE_8K, ConversationShape, with_context

BLOCK_SIZE = 32


@dataclass(frozen=True)
class Turn:
    question_tokens: int
    answer_tokens: int  # requested output length (max_tokens)
    think_s: float  # pause before this turn, after the previous answer (0 for the first turn)


@dataclass(frozen=True)
class Conversation:
    conv_id: str
    start_s: float  # Poisson arrival of the first turn
    system_tokens: int
    turns: tuple[Turn, ...]
    seed: int  # per-conversation seed, for the live client's text


def generate(
    n: int,
    shape: ConversationShape = BOOTH,
    rate_per_s: float = 0.5,
    seed: int = 0,
) -> list[Conversation]:
    """``n`` conversations starting as a Poisson process of ``rate_per_s`` conversations/s."""
    if n < 1:
        raise ValueError("n must be at least 1")
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    rng = random.Random(seed)
    convs: list[Conversation] = []
    t = 0.0
    for i in range(n):
        # Exponential gaps: random arrivals. Regular spacing would march conversations
        # through round-robin in lock step and make it accidentally sticky.
        t += rng.expovariate(rate_per_s)
        n_turns = rng.randint(shape.turns_min, shape.turns_max)
        turns = tuple(
            Turn(
                question_tokens=rng.randint(shape.question_tokens_min, shape.question_tokens_max),
                answer_tokens=rng.randint(shape.answer_tokens_min, shape.answer_tokens_max),
                think_s=0.0 if k == 0 else rng.uniform(shape.think_min_s, shape.think_max_s),
            )
            for k in range(n_turns)
        )
        system = rng.randint(shape.system_tokens_min, shape.system_tokens_max)
        convs.append(Conversation(f"conv-{seed}-{i:05d}", t, system, turns, rng.getrandbits(32)))
    return convs


class _Blocks:
    """The prompt of one conversation as 32-token blocks with stable ids.

    Appending text completes the trailing partial block; a completed block keeps its id
    for the rest of the conversation, so every turn's hash_ids extend the previous turn's.
    A partial block is content no one has seen before: it gets a fresh id every turn.
    """

    def __init__(self, ids: _IdSource, block_size: int) -> None:
        self._ids = ids
        self._bs = block_size
        self.full: list[int] = []
        self.tokens = 0

    def append(self, n_tokens: int) -> None:
        before = self.tokens // self._bs
        self.tokens += n_tokens
        self.full.extend(self._ids.take(self.tokens // self._bs - before))

    def hash_ids(self) -> list[int]:
        tail = [self._ids.take(1)[0]] if self.tokens % self._bs else []
        return self.full + tail


class _IdSource:
    def __init__(self) -> None:
        self._next = 1

    def take(self, k: int) -> list[int]:
        out = list(range(self._next, self._next + k))
        self._next += k
        return out


def prompt_lengths(conv: Conversation, shape_template_tokens: int) -> list[int]:
    """Prompt tokens of each turn (system + history + question, with template tokens)."""
    out, total = [], conv.system_tokens + shape_template_tokens
    for turn in conv.turns:
        total += turn.question_tokens + shape_template_tokens
        out.append(total)
        total += turn.answer_tokens + shape_template_tokens
    return out


def to_mooncake(
    convs: Iterable[Conversation],
    shape: ConversationShape = BOOTH,
    block_size: int = BLOCK_SIZE,
    est_turn_s: float = 1.5,
) -> list[dict]:
    """Mooncake rows for ``convs``, sorted by timestamp (a session's rows stay in turn order)."""
    ids = _IdSource()
    rows: list[dict] = []
    tmpl = shape.template_tokens_per_message
    for conv in convs:
        blocks = _Blocks(ids, block_size)
        blocks.append(conv.system_tokens + tmpl)
        ts_ms = conv.start_s * 1000.0
        for k, turn in enumerate(conv.turns):
            blocks.append(turn.question_tokens + tmpl)
            row = {
                "timestamp": round(ts_ms, 3),
                "input_length": blocks.tokens,
                "output_length": turn.answer_tokens,
                "hash_ids": blocks.hash_ids(),
                "session_id": conv.conv_id,
            }
            if k:
                row["delay"] = round(turn.think_s * 1000.0, 3)
            rows.append(row)
            blocks.append(turn.answer_tokens + tmpl)
            if k + 1 < len(conv.turns):
                ts_ms += (est_turn_s + conv.turns[k + 1].think_s) * 1000.0
    rows.sort(key=lambda r: r["timestamp"])  # stable: ties keep turn order
    return rows


def write_jsonl(rows: Iterable[dict], path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    return out


SHAPES = {"booth": BOOTH, "probe_8k": PROBE_8K}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a Mooncake-format multi-turn trace.")
    parser.add_argument("--conversations", type=int, default=64)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="booth")
    parser.add_argument("--context", help="override the document size: 2k, 4k, 8k, 16k")
    parser.add_argument("--rate", type=float, default=0.5, help="conversation starts per second (Poisson)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    shape = SHAPES[args.shape]
    if args.context:
        shape = with_context(shape, args.context)
    convs = generate(args.conversations, shape, args.rate, args.seed)
    write_jsonl(to_mooncake(convs, shape), args.out)
    print(f"{args.out}: {sum(len(c.turns) for c in convs)} requests in {len(convs)} conversations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
