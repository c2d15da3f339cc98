"""Follow-up questions: a small model on DigitalOcean Serverless Inference, or an offline writer.

The remote writer is tried only when a key is set; any failure (no network,
HTTP error, slow answer) falls back to the deterministic offline writer and
keeps the remote one off for a while, so a missing network never slows the
load loop. The key is read from the environment and never logged or shown.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import time
from dataclasses import dataclass

import aiohttp

from .corpus import Seed

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://inference.do-ai.run/v1"
DEFAULT_MODEL = "llama3-8b-instruct"
KEY_ENV = "GRADIENT_API_KEY"

_TEMPLATES = (
    "You mentioned \"{quote}\". How does that relate to the part on \"{section}\"?",
    "Going back to \"{section}\": what changes when {keyword} is involved?",
    "Can you give a concrete example of {keyword}, as described under \"{section}\"?",
    "What is the most common mistake people make with {keyword}?",
    "How would you measure {keyword} in practice, and what number is good?",
    "You said \"{quote}\". Does that still hold at ten times the load?",
    "What in \"{section}\" matters most for someone running this on Kubernetes?",
    "How does {keyword} relate to {keyword2}, and which one should I watch first?",
    "In two sentences, what is the trade-off between {keyword} and {keyword2}?",
    "What would you check first if {keyword} suddenly got worse?",
)
_QUOTE_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]{2,}")


@dataclass(frozen=True)
class Exchange:
    question: str
    answer: str


def offline_followup(seed: Seed, history: list[Exchange], conv_id: str) -> str:
    """A deterministic question that depends on the document and on every exchange so far.

    The choice of template, section and keywords is seeded by a hash of the
    conversation id and the text of the turns so far, and the question quotes a
    few words of the last answer: two conversations on the same document that
    drifted apart ask different things, and the same conversation always asks
    the same thing.
    """
    digest = hashlib.sha256(conv_id.encode())
    for ex in history:
        digest.update(ex.question.encode())
        digest.update(b"\x00")
        digest.update(ex.answer.encode())
    rng = random.Random(digest.digest())
    asked = " ".join(ex.question for ex in history).lower()
    sections = [s for s in seed.sections if s.lower() not in asked] or list(seed.sections) or [seed.title]
    keywords = [k for k in seed.keywords if k not in asked] or list(seed.keywords) or ["this"]
    last = history[-1].answer if history else ""
    words = _QUOTE_WORD.findall(last)
    if len(words) >= 3:
        start = rng.randrange(0, len(words) - 2)
        quote = " ".join(words[start:start + 3])
    else:
        quote = (last.strip()[:40] or seed.title)
    kw = rng.choice(keywords)
    kw2 = rng.choice([k for k in keywords if k != kw] or [kw])
    template = rng.choice(_TEMPLATES)
    return template.format(quote=quote, section=rng.choice(sections), keyword=kw, keyword2=kw2)


class FollowupWriter:
    """Writes the next user turn; remote when a key is set and the service answers."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        timeout_s: float = 3.0,
        backoff_s: float = 60.0,
        api_key: str | None = None,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._timeout = timeout_s
        self._backoff_s = backoff_s
        self._key = api_key if api_key is not None else os.environ.get(KEY_ENV, "")
        self._off_until = 0.0
        self.remote_ok = 0
        self.remote_failed = 0
        self.offline = 0

    @property
    def remote_enabled(self) -> bool:
        return bool(self._key) and self._session is not None

    async def write(self, seed: Seed, history: list[Exchange], conv_id: str) -> tuple[str, str]:
        """(question, source) where source is 'remote' or 'offline'."""
        if self.remote_enabled and time.monotonic() >= self._off_until:
            text = await self._remote(seed, history)
            if text:
                self.remote_ok += 1
                return text, "remote"
            self.remote_failed += 1
            self._off_until = time.monotonic() + self._backoff_s
        self.offline += 1
        return offline_followup(seed, history, conv_id), "offline"

    async def _remote(self, seed: Seed, history: list[Exchange]) -> str | None:
        transcript = "\n".join(f"Q: {ex.question}\nA: {ex.answer[:600]}" for ex in history[-3:])
        messages = [
            {"role": "system", "content": (
                "You write the next question a curious engineer at a conference booth would ask. "
                "Reply with one question only, under 30 words, no preamble.")},
            {"role": "user", "content": (
                f"Document: {seed.title}. Sections: {', '.join(seed.sections[:8])}.\n"
                f"Conversation so far:\n{transcript}\nNext question:")},
        ]
        body = {"model": self._model, "messages": messages, "max_tokens": 60, "temperature": 0.7}
        headers = {"Authorization": f"Bearer {self._key}"}
        assert self._session is not None
        try:
            async with self._session.post(
                self._base_url + "/chat/completions", json=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                if resp.status != 200:
                    log.warning("follow-up service answered HTTP %s; using the offline writer", resp.status)
                    return None
                data = await resp.json()
            text = data["choices"][0]["message"]["content"].strip().strip('"')
        except Exception as exc:  # noqa: BLE001 - any failure means: fall back
            # The exception text never carries the key (it is only in a header).
            log.warning("follow-up service unavailable (%s); using the offline writer", type(exc).__name__)
            return None
        return text[:400] or None
