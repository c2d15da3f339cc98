"""One multi-turn conversation: its seed, routing mode, messages and turn records."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .client import TurnResult
from .corpus import Seed
from .followup import Exchange


@dataclass
class TurnRecord:
    index: int  # 1-based turn number
    question: str
    question_source: str  # "opening", "remote" or "offline"
    started_at: float  # wall clock, for the viewer
    result: TurnResult | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        out: dict[str, Any] = {
            "turn": self.index, "question": self.question, "question_source": self.question_source,
            "started_at": self.started_at,
        }
        if r is not None:
            out.update(
                # A turn whose request failed (a frontend restarting, a worker lost): the viewer marks it.
                ok=r.ok, affected=not r.ok, answer=r.text, error=r.error, error_kind=r.error_kind,
                ttft_ms=_r(r.ttft_ms), itl_ms=_r(r.itl_ms), latency_ms=_r(r.latency_ms),
                server_ttft_ms=_r(r.server_ttft_ms), cache_hit=_r(r.cache_hit, 3),
                kv_hit_rate=_r(r.kv_hit_rate, 3), cached_tokens=r.cached_tokens,
                prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                worker_id=r.worker_id,
            )
        return out


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


@dataclass
class Conversation:
    id: str
    seed: Seed
    routing: str
    turns_planned: int
    created_at: float = field(default_factory=time.time)
    visitor: str = ""  # a per-conversation line that opens the system prompt
    related: tuple[Seed, ...] = ()  # further documents appended to the context
    turns: list[TurnRecord] = field(default_factory=list)
    status: str = "active"  # active | done | failed | stopped

    def messages_for(self, question: str) -> list[dict[str, str]]:
        """The full chat so far plus the new question: the prompt grows turn by turn.

        Failed turns are left out so a retry-free conversation keeps a clean
        prefix (their question is asked again in the next turn's place).
        """
        session_line = f"Booth session {self.id}, visitor {self.visitor or self.id}."
        msgs = [{"role": "system", "content": self.seed.system_prompt(session_line, self.related)}]
        for t in self.turns:
            if t.result is not None and t.result.ok:
                msgs.append({"role": "user", "content": t.question})
                msgs.append({"role": "assistant", "content": t.result.text})
        msgs.append({"role": "user", "content": question})
        return msgs

    def history(self) -> list[Exchange]:
        return [Exchange(t.question, t.result.text) for t in self.turns if t.result is not None and t.result.ok]

    @property
    def failed_turns(self) -> int:
        return sum(1 for t in self.turns if t.result is not None and not t.result.ok)

    @property
    def next_turn(self) -> int:
        return len(self.turns) + 1

    @property
    def finished(self) -> bool:
        return len(self.turns) >= self.turns_planned

    def summary(self) -> dict[str, Any]:
        ttfts = [t.result.ttft_ms for t in self.turns if t.result is not None and t.result.ttft_ms is not None]
        return {
            "id": self.id, "title": self.seed.title, "routing": self.routing, "status": self.status,
            "turns_planned": self.turns_planned, "turns_done": len(self.turns), "created_at": self.created_at,
            "ttft_ms": [_r(x) for x in ttfts],
            "errors": self.failed_turns,
            "affected": self.failed_turns > 0,
        }

    def detail(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "document_words": self.seed.words + sum(r.words for r in self.related),
            "turns": [t.to_dict() for t in self.turns],
        }
