"""The conversation model shared by the trace generator and (later) the load generator.

One place for the shape of a booth conversation, so the simulator's traces and the live
load generator describe the same workload. Pure standard library on purpose: the load
generator can import it (or read ``ConversationShape.to_dict()``) without the benchmark's
dependencies.

A conversation: a per-conversation system document (a few thousand tokens), then 3-5 turns.
Each turn appends a follow-up question; the model's answer is appended before the next turn,
so each turn's prompt extends the previous turn's prompt. Between turns the user "thinks"
for a random time. Conversations start at random (Poisson) times.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConversationShape:
    """Sizes are in tokens, times in seconds; every range is inclusive and sampled uniformly."""

    turns_min: int = 3
    turns_max: int = 5
    system_tokens_min: int = 3000  # the conversation's document, as the system prompt
    system_tokens_max: int = 6000
    question_tokens_min: int = 20  # a follow-up question
    question_tokens_max: int = 80
    answer_tokens_min: int = 64  # the model's answer (max_tokens of the request)
    answer_tokens_max: int = 96
    think_min_s: float = 4.0  # pause after an answer before the next question
    think_max_s: float = 12.0
    # Chat-template tokens around each message (Llama 3 header + eot: about 5).
    template_tokens_per_message: int = 5

    def __post_init__(self) -> None:
        for lo, hi in (
            ("turns_min", "turns_max"),
            ("system_tokens_min", "system_tokens_max"),
            ("question_tokens_min", "question_tokens_max"),
            ("answer_tokens_min", "answer_tokens_max"),
            ("think_min_s", "think_max_s"),
        ):
            a, b = getattr(self, lo), getattr(self, hi)
            if a < 0 or a > b:
                raise ValueError(f"{lo} ({a}) must be >= 0 and <= {hi} ({b})")
        if self.turns_min < 1:
            raise ValueError("turns_min must be at least 1")

    @property
    def mean_turns(self) -> float:
        return (self.turns_min + self.turns_max) / 2

    @property
    def mean_think_s(self) -> float:
        return (self.think_min_s + self.think_max_s) / 2

    def replace(self, **changes: Any) -> ConversationShape:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The booth's conversations (the load generator's defaults: 3-5 turns, think 4-12 s,
# max_tokens 96; a document of a few thousand tokens as the system prompt).
BOOTH = ConversationShape()

# Issue 9's first probe: 4 turns, 8K-token contexts, think 4-12 s.
PROBE_8K = ConversationShape(
    turns_min=4,
    turns_max=4,
    system_tokens_min=8192,
    system_tokens_max=8192,
    question_tokens_min=64,
    question_tokens_max=64,
    answer_tokens_min=200,
    answer_tokens_max=200,
)

# Context lengths the sweep covers: the document size (tokens) of each level.
CONTEXTS: dict[str, tuple[int, int]] = {
    "2k": (1500, 2500),
    "4k": (3000, 6000),  # the booth default
    "8k": (7000, 9000),
    "16k": (14000, 18000),
}


def with_context(shape: ConversationShape, context: str) -> ConversationShape:
    """``shape`` with the document size of a named context level."""
    lo, hi = CONTEXTS[context]
    return shape.replace(system_tokens_min=lo, system_tokens_max=hi)


def conversation_rate_for(concurrency: float, shape: ConversationShape, turn_s: float = 1.5) -> float:
    """Poisson start rate (conversations/s) that keeps ``concurrency`` conversations active.

    Little's law: active = rate x duration; a conversation lasts its turns' response times
    (``turn_s`` each, a rough mean) plus the think times between them.
    """
    duration = shape.mean_turns * turn_s + (shape.mean_turns - 1) * shape.mean_think_s
    return concurrency / duration
