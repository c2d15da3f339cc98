"""Bounded live statistics for the page and Prometheus metrics for scrapers.

Everything here has a fixed size: per (routing, turn) sample windows, a
ring of one-second buckets and a ring of recent conversations. Hours of auto
mode cost the same memory as minutes.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .client import TurnResult
from .conversation import Conversation

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)


def turn_label(turn: int) -> str:
    return str(turn) if turn <= 10 else "10+"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of a small list; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[k]


class Metrics:
    """Prometheus series, on a registry of their own (one per app instance)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ttft = Histogram("loadgen_ttft_seconds", "Client-side time to first token",
                              ["routing", "turn"], buckets=TTFT_BUCKETS, registry=self.registry)
        self.itl = Histogram("loadgen_itl_seconds", "Client-side mean inter-token latency per request",
                             ["routing", "turn"], buckets=ITL_BUCKETS, registry=self.registry)
        self.requests = Counter("loadgen_requests", "Chat requests finished, by outcome",
                                ["routing", "outcome"], registry=self.registry)
        self.errors = Counter("loadgen_errors", "Failed chat requests by kind",
                              ["routing", "kind"], registry=self.registry)
        self.cached_tokens = Counter("loadgen_cached_prompt_tokens", "Prompt tokens the server reported as cached",
                                     ["routing"], registry=self.registry)
        self.prompt_tokens = Counter("loadgen_prompt_tokens", "Prompt tokens sent",
                                     ["routing"], registry=self.registry)
        self.active = Gauge("loadgen_active_conversations", "Conversations in progress",
                            ["routing"], registry=self.registry)


@dataclass
class _Bucket:
    t: int
    requests: int = 0
    errors: int = 0
    ttft_sum: dict[str, float] = field(default_factory=dict)
    ttft_n: dict[str, int] = field(default_factory=dict)
    itl_sum: float = 0.0
    itl_n: int = 0
    active: int = 0


class Stats:
    """Statistics by routing id. The ids are reported in the order ``track`` first saw them
    (the engine tracks its frontends' order), then any other id as it first records."""

    def __init__(self, *, samples_per_key: int = 400, series_seconds: int = 300,
                 max_conversations: int = 200, max_turn: int = 10) -> None:
        self.routings: list[str] = []
        self.samples_per_key = samples_per_key
        self.max_turn = max_turn
        self.ttft: dict[tuple[str, int], deque[float]] = {}
        self.cache: dict[tuple[str, int], deque[float]] = {}
        self.overhead: deque[float] = deque(maxlen=4000)
        self.buckets: deque[_Bucket] = deque(maxlen=series_seconds)
        self.conversations: OrderedDict[str, Conversation] = OrderedDict()
        self.max_conversations = max_conversations
        self.totals = {"requests": 0, "errors": 0}
        self.errors_by_kind: dict[str, int] = {}
        self.last_errors: deque[dict[str, Any]] = deque(maxlen=20)
        self.metrics = Metrics()
        self.started = time.time()

    # -- recording -----------------------------------------------------------
    def track(self, routings: Iterable[str]) -> None:
        """Report these routing ids, in this order, even before they have data."""
        for routing in routings:
            if routing not in self.routings:
                self.routings.append(routing)

    def _bucket(self, now: float) -> _Bucket:
        sec = int(now)
        if not self.buckets or self.buckets[-1].t < sec:
            self.buckets.append(_Bucket(t=sec))
        return self.buckets[-1]

    def add_conversation(self, conv: Conversation) -> None:
        self.conversations[conv.id] = conv
        while len(self.conversations) > self.max_conversations:
            self.conversations.popitem(last=False)

    def record(self, routing: str, turn: int, res: TurnResult, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.track((routing,))
        b = self._bucket(now)
        b.requests += 1
        self.totals["requests"] += 1
        m = self.metrics
        label = turn_label(turn)
        key_turn = min(turn, self.max_turn)
        if not res.ok:
            b.errors += 1
            self.totals["errors"] += 1
            kind = res.error_kind or "unknown"
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
            self.last_errors.append({"t": now, "routing": routing, "turn": turn, "kind": kind, "error": res.error})
            m.requests.labels(routing, "error").inc()
            m.errors.labels(routing, kind).inc()
            return
        m.requests.labels(routing, "ok").inc()
        if res.ttft_ms is not None:
            self._window(self.ttft, (routing, key_turn)).append(res.ttft_ms)
            b.ttft_sum[routing] = b.ttft_sum.get(routing, 0.0) + res.ttft_ms
            b.ttft_n[routing] = b.ttft_n.get(routing, 0) + 1
            m.ttft.labels(routing, label).observe(res.ttft_ms / 1000.0)
            if res.server_ttft_ms is not None:
                self.overhead.append(res.ttft_ms - res.server_ttft_ms)
        if res.itl_ms is not None:
            b.itl_sum += res.itl_ms
            b.itl_n += 1
            m.itl.labels(routing, label).observe(res.itl_ms / 1000.0)
        if res.cache_hit is not None:
            self._window(self.cache, (routing, key_turn)).append(res.cache_hit)
        if res.prompt_tokens:
            m.prompt_tokens.labels(routing).inc(res.prompt_tokens)
        if res.cached_tokens:
            m.cached_tokens.labels(routing).inc(res.cached_tokens)

    def sample_active(self, by_routing: dict[str, int], now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._bucket(now).active = sum(by_routing.values())
        for routing, n in by_routing.items():
            self.metrics.active.labels(routing).set(n)

    def _window(self, store: dict[tuple[str, int], deque[float]], key: tuple[str, int]) -> deque[float]:
        window = store.get(key)
        if window is None:
            window = store[key] = deque(maxlen=self.samples_per_key)
        return window

    # -- reading ---------------------------------------------------------------
    def by_turn(self) -> dict[str, list[dict[str, Any]]]:
        """{routing: [{turn, n, ttft_p50, ttft_p90, cache_hit}]} for turns seen so far."""
        out: dict[str, list[dict[str, Any]]] = {}
        turns = sorted({t for (_r, t) in self.ttft} | {t for (_r, t) in self.cache})
        for routing in self.routings:
            rows = []
            for t in turns:
                vals = list(self.ttft.get((routing, t), ()))
                hits = list(self.cache.get((routing, t), ()))
                rows.append({
                    "turn": t, "n": len(vals),
                    "ttft_p50": _round(percentile(vals, 50)), "ttft_p90": _round(percentile(vals, 90)),
                    "cache_hit": _round(sum(hits) / len(hits), 3) if hits else None,
                })
            out[routing] = rows
        return out

    def followup_ttft(self, routing: str) -> float | None:
        """Median TTFT over turns >= 2: the headline number."""
        vals = [v for (r, t), w in self.ttft.items() if r == routing and t >= 2 for v in w]
        return _round(percentile(vals, 50))

    def series(self, now: float | None = None, seconds: int = 120) -> dict[str, list[Any]]:
        now = time.time() if now is None else now
        lo = int(now) - seconds
        pts = [b for b in self.buckets if b.t > lo]
        return {
            "t": [b.t for b in pts],
            "rps": [b.requests for b in pts],
            "errors": [b.errors for b in pts],
            "active": [b.active for b in pts],
            "itl_ms": [_round(b.itl_sum / b.itl_n, 2) if b.itl_n else None for b in pts],
            # Mean TTFT per second, by routing id.
            "ttft": {r: [_round(b.ttft_sum[r] / b.ttft_n[r]) if b.ttft_n.get(r) else None for b in pts]
                     for r in self.routings},
        }

    def speedup(self, followup: dict[str, float | None]) -> tuple[float | None, list[str]]:
        """Slowest / fastest follow-up median, and [fastest id, slowest id]; None with fewer than two."""
        known = [(v, r) for r, v in followup.items() if v]
        if len(known) < 2:
            return None, []
        (fast_v, fast), (slow_v, slow) = min(known), max(known)
        return round(slow_v / fast_v, 2), [fast, slow]

    def snapshot(self) -> dict[str, Any]:
        recent = list(self.buckets)[-10:]
        window = max(1, len(recent))
        followup = {r: self.followup_ttft(r) for r in self.routings}
        ratio, between = self.speedup(followup)
        return {
            "totals": dict(self.totals),
            "errors_by_kind": dict(self.errors_by_kind),
            "last_errors": list(self.last_errors)[-5:],
            "rps_10s": round(sum(b.requests for b in recent) / window, 2),
            "by_turn": self.by_turn(),
            "followup_ttft_ms": followup,
            # How many times faster the fastest frontend's follow-ups are than the slowest's.
            "speedup": ratio,
            "speedup_between": between,
            "overhead_ms_p50": _round(percentile(list(self.overhead), 50), 2),
            "series": self.series(),
        }

    def reset(self) -> None:
        self.ttft.clear()
        self.cache.clear()
        self.overhead.clear()
        self.buckets.clear()
        self.totals = {"requests": 0, "errors": 0}
        self.errors_by_kind.clear()
        self.last_errors.clear()


def _round(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)
