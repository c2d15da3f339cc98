"""The load loop: keeps N conversations going, paced by a rate cap, routed by the switch."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable

import aiohttp

from .client import stream_chat
from .conversation import Conversation, TurnRecord
from .corpus import Seed
from .followup import FollowupWriter
from .settings import AutoSchedule, Preset, Settings, SettingsError
from .stats import Stats
from .targets import Frontend, Targets
from .topology import Topology

log = logging.getLogger(__name__)

_VISITORS = ("platform engineer", "ML engineer", "SRE", "startup CTO", "student", "data scientist",
             "solutions architect", "researcher", "product manager", "DevOps lead")
# After a failed turn a conversation waits at least this long, so an endpoint
# that refuses at once cannot turn the loop into a busy spin.
ERROR_BACKOFF_S = 0.5


class RateLimiter:
    """Spaces request starts 1/rate apart across all conversations; rate 0 means no cap."""

    def __init__(self, rate: float = 0.0) -> None:
        self._rate = rate
        self._next = 0.0

    def set_rate(self, rate: float) -> None:
        if rate != self._rate:
            self._rate = rate
            self._next = 0.0  # a new rate takes effect at once, without a backlog

    async def acquire(self) -> None:
        if self._rate <= 0:
            return
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + 1.0 / self._rate
        if slot > now:
            await asyncio.sleep(slot - now)


class Engine:
    def __init__(
        self,
        targets: Targets,
        session: aiohttp.ClientSession,
        seeds: list[Seed],
        writer: FollowupWriter,
        stats: Stats,
        presets: dict[str, Preset],
        settings: Settings | None = None,
        *,
        rng: random.Random | None = None,
        topology: Topology | None = None,
        on_change: Callable[[Settings], None] | None = None,
    ) -> None:
        self.topology = topology
        # Called with the new settings after every accepted change (persist.Keeper.save).
        self.on_change = on_change
        self.targets = targets
        self.session = session
        self.seeds = seeds
        self.writer = writer
        self.stats = stats
        self.stats.track(targets.ids)
        self.presets = presets
        # Settings name a routing id: the first frontend's unless they say another.
        self.settings = (settings or Settings()).for_routings(targets.ids)
        self.rng = rng or random.Random()
        self.limiter = RateLimiter(self.settings.rate)
        self._ids = itertools.count(1)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._convs: dict[str, Conversation] = {}
        self._retire: set[str] = set()
        self._wake: dict[str, asyncio.Event] = {}
        self._auto_started: float | None = None
        self._ab_turn = itertools.count()
        self.auto_phase: str | None = None
        self._loop_task: asyncio.Task[None] | None = None

    # -- control ---------------------------------------------------------------
    def update(self, patch: dict) -> Settings:
        """Apply a change from the page; raises SettingsError and changes nothing when refused."""
        new = self.settings.patched(patch, routings=self.targets.ids)
        self._adopt(new)
        return new

    def apply_preset(self, name: str) -> Settings:
        new = self.settings.with_preset(name, self.presets)
        self._adopt(new)
        return new

    def _adopt(self, new: Settings) -> None:
        if new.auto and not self.settings.auto:
            self._auto_started = time.monotonic()
        if not new.auto:
            self._auto_started = None
            self.auto_phase = None
        self.settings = new
        self._reconcile()
        if self.on_change is not None:
            self.on_change(new)

    def effective(self) -> tuple[int, float]:
        """(concurrency, rate) in force now: auto mode's schedule or the manual controls."""
        s = self.settings
        if not s.running:
            return 0, s.rate
        if s.auto and self._auto_started is not None:
            phase = AutoSchedule.from_settings(s, self.presets).at(time.monotonic() - self._auto_started)
            self.auto_phase = phase.name
            return phase.concurrency, phase.rate
        return s.concurrency, s.rate

    @property
    def alternating(self) -> bool:
        """New conversations alternate between the frontends: A/B mode, and always in auto mode
        (an unattended booth shows every routing)."""
        return len(self.targets.ids) > 1 and (self.settings.ab or self.settings.auto)

    def next_routing(self) -> str:
        """The routing a new conversation takes: the frontends in turn when alternating,
        else the routing switch's."""
        if not self.alternating:
            return self.settings.routing
        # The routing with the fewest live conversations, ties in the switch's order then by
        # turn: the pair stays balanced even when conversations of one side end sooner.
        active = self.active_by_routing()
        ids = self.targets.ids
        start = next(self._ab_turn) % len(ids)
        order = ids[start:] + ids[:start]
        return min(order, key=lambda r: active.get(r, 0))

    def active_by_routing(self) -> dict[str, int]:
        out = dict.fromkeys(self.targets.ids, 0)
        for cid, conv in self._convs.items():
            if cid not in self._retire:
                out[conv.routing] = out.get(conv.routing, 0) + 1
        return out

    # -- the loop -----------------------------------------------------------------
    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._supervise(), name="loadgen-supervisor")

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self) -> None:
        while True:
            try:
                self._reconcile()
                self.stats.sample_active(self.active_by_routing())
            except Exception:  # noqa: BLE001 - the loop must outlive any bug in one pass
                log.exception("supervisor pass failed")
            await asyncio.sleep(0.25)

    def _reconcile(self) -> None:
        target, rate = self.effective()
        self.limiter.set_rate(rate)
        live = [cid for cid in self._convs if cid not in self._retire]
        # Grow: start new conversations (they pick the routing in force now).
        for _slot in range(target - len(live)):
            self._spawn()
        # Shrink: retire the youngest first; each leaves after its current turn.
        if len(live) > target:
            for cid in sorted(live, key=lambda c: self._convs[c].created_at, reverse=True)[: len(live) - target]:
                self._retire.add(cid)
                self._wake[cid].set()

    def _spawn(self) -> None:
        s = self.settings
        cid = f"c{next(self._ids):06d}"
        picked = self.rng.sample(self.seeds, min(len(self.seeds), s.context_docs))
        conv = Conversation(
            id=cid, seed=picked[0], related=tuple(picked[1:]), routing=self.next_routing(),
            turns_planned=self.rng.randint(s.turns_min, s.turns_max),
            visitor=f"{self.rng.choice(_VISITORS)} #{self.rng.randrange(1000, 9999)}",
        )
        self._convs[cid] = conv
        self._wake[cid] = asyncio.Event()
        self.stats.add_conversation(conv)
        self._tasks[cid] = asyncio.create_task(self._run(conv), name=f"conv-{cid}")

    async def _pause(self, cid: str, seconds: float) -> bool:
        """Think time; returns False when the conversation was retired meanwhile."""
        if seconds > 0:
            try:
                await asyncio.wait_for(self._wake[cid].wait(), timeout=seconds)
            except TimeoutError:
                pass
        return cid not in self._retire

    async def _run(self, conv: Conversation) -> None:
        cid = conv.id
        try:
            # Spread first turns so a jump in concurrency is not one burst.
            s = self.settings
            if not await self._pause(cid, self.rng.uniform(0, s.think_min_s)):
                conv.status = "stopped"
                return
            while not conv.finished:
                await self.limiter.acquire()
                if cid in self._retire:
                    conv.status = "stopped"
                    return
                await self._turn(conv)
                if conv.finished:
                    break
                s = self.settings
                think = self.rng.uniform(s.think_min_s, s.think_max_s)
                last = conv.turns[-1].result
                if last is not None and not last.ok:
                    think = max(think, ERROR_BACKOFF_S)
                if not await self._pause(cid, think):
                    conv.status = "stopped"
                    return
            failed = all(t.result is not None and not t.result.ok for t in conv.turns)
            conv.status = "failed" if failed else "done"
        except asyncio.CancelledError:
            conv.status = "stopped"
            raise
        except Exception as exc:  # noqa: BLE001 - one broken conversation must not stop the loop
            log.exception("conversation %s failed", cid)
            conv.status = "failed"
            self.stats.last_errors.append({"t": time.time(), "routing": conv.routing, "turn": conv.next_turn,
                                           "kind": "internal", "error": repr(exc)})
        finally:
            self._convs.pop(cid, None)
            self._tasks.pop(cid, None)
            self._wake.pop(cid, None)
            self._retire.discard(cid)
            # Replace a finished conversation at once rather than at the next
            # supervisor pass, so concurrency holds steady.
            if self._loop_task is not None and not self._loop_task.done():
                self._reconcile()

    async def _turn(self, conv: Conversation) -> None:
        n = conv.next_turn
        history = conv.history()
        if not history:
            question, source = conv.seed.opening_question(), "opening"
        else:
            question, source = await self.writer.write(conv.seed, history, conv.id)
        messages = conv.messages_for(question)
        record = TurnRecord(index=n, question=question, question_source=source, started_at=time.time())
        conv.turns.append(record)
        self.stats.sent(conv.routing)
        record.result = await stream_chat(
            self.session, self.targets.url(conv.routing), self.targets.model, messages,
            max_tokens=self.settings.max_tokens, timeout_s=self.targets.request_timeout_s,
        )
        # A conversation's first failed turn makes it one of the routing's affected conversations.
        first_failure = not record.result.ok and conv.failed_turns == 1
        self.stats.record(conv.routing, n, record.result, first_failure=first_failure, sent_at=record.started_at)

    # -- views ------------------------------------------------------------------------
    def state(self) -> dict:
        conc, rate = self.effective()
        return {
            "settings": self.settings.to_dict(),
            "effective": {"concurrency": conc, "rate": rate, "auto_phase": self.auto_phase,
                          "alternating": self.alternating},
            "active": self.active_by_routing(),
            "presets": {k: vars(v) for k, v in self.presets.items()},
            "followups": {"remote_enabled": self.writer.remote_enabled, "remote_ok": self.writer.remote_ok,
                          "remote_failed": self.writer.remote_failed, "offline": self.writer.offline},
            "model": self.targets.model,
            # What the demo runs on (dynamo__output.topology), or None when not configured.
            "topology": None if self.topology is None else self.topology.to_dict(),
            # The routing switch, in order: id and the page's title (URLs stay server-side).
            "frontends": [{"id": f.id, "title": f.title} for f in self.targets.frontends],
        }


__all__ = ["Engine", "Frontend", "RateLimiter", "SettingsError", "Targets"]
