"""Bounded live statistics for the page and Prometheus metrics for scrapers.

Everything here has a fixed size: per (routing, turn) sample windows, a
ring of one-second buckets, a ring of recent follow-ups per routing (the
headlines' window) and a ring of recent conversations. Hours of auto mode cost
the same memory as minutes.

The headlines (follow-up miss share, p50/p90, recomputed tokens per minute)
come from ``headlines.py`` over the follow-ups of the last ``WINDOW_S``
seconds, for the page (``snapshot``) and for ``/metrics`` (the
``loadgen_headline_*`` gauges, computed at scrape time from the same ring):
the two always report the same numbers.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import headlines
from .client import TurnResult
from .conversation import Conversation

# Fine where the booth's follow-ups fall (a cache hit's 20-60 ms, a miss's 200-600 ms), so the
# dashboard's interpolated p50/p90 stay close to the page's exact ones.
TTFT_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25,
                0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)


def turn_label(turn: int) -> str:
    return str(turn) if turn <= 10 else "10+"


TURN_LABELS = tuple(turn_label(t) for t in range(1, 11))
percentile = headlines.percentile
# Follow-ups kept per routing for the headlines' window; a load above
# MAX_FOLLOWUPS / WINDOW_S follow-ups per second shortens the window
# (the snapshot says which span it covers).
MAX_FOLLOWUPS = 20000
# Follow-ups per routing sent to the page's dot chart (the most recent ones).
MAX_DOTS = 600
DOTS_WINDOW_S = 120.0


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
        self.followups = Counter("loadgen_followups", "Follow-up turns (turn >= 2) with token counts, "
                                 "by whether they missed the KV cache (cached < half the prompt)",
                                 ["routing", "cache"], registry=self.registry)
        self.recomputed = Counter("loadgen_recomputed_prompt_tokens", "Prompt tokens of follow-ups that "
                                  "were not found in the KV cache (prompt - cached)",
                                  ["routing"], registry=self.registry)

    def init_routing(self, routing: str) -> None:
        """Create every series of a routing at zero, before its first request.

        Prometheus's rate() only counts increases between two scrapes of a
        series: the observations a series holds at its first scrape are lost.
        Series that appear with their first request (a new turn label, a new
        routing) therefore lose their first requests in the rules while the
        page counts them. Created at zero when the routing is first known,
        every request shows up in both.
        """
        for label in TURN_LABELS:
            self.ttft.labels(routing, label)
            self.itl.labels(routing, label)
        for outcome in ("ok", "error"):
            self.requests.labels(routing, outcome)
        for cache in ("hit", "miss"):
            self.followups.labels(routing, cache)
        self.recomputed.labels(routing)
        self.cached_tokens.labels(routing)
        self.prompt_tokens.labels(routing)
        self.active.labels(routing)


class HeadlineCollector(Collector):
    """``loadgen_headline_*`` gauges: the page's headline numbers, computed at scrape time."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def collect(self) -> Iterable[GaugeMetricFamily]:
        heads = self.stats.summaries()
        ttft = GaugeMetricFamily("loadgen_headline_followup_ttft_seconds",
                                 f"Follow-up TTFT quantile over the last {headlines.WINDOW_S:g} s (as the page shows)",
                                 labels=["routing", "quantile"])
        miss = GaugeMetricFamily("loadgen_headline_followup_miss_ratio",
                                 "Share of measured follow-ups that missed the KV cache (as the page shows)",
                                 labels=["routing"])
        recomputed = GaugeMetricFamily("loadgen_headline_recomputed_tokens_per_minute",
                                       "Follow-up prompt tokens recomputed per minute (as the page shows)",
                                       labels=["routing"])
        count = GaugeMetricFamily("loadgen_headline_followups",
                                  f"Follow-ups in the headlines' window of {headlines.WINDOW_S:g} s",
                                  labels=["routing"])
        for routing, h in heads.items():
            count.add_metric([routing], h.n)
            for q, v in (("0.5", h.p50_ms), ("0.9", h.p90_ms)):
                if v is not None:
                    ttft.add_metric([routing, q], v / 1000.0)
            if h.miss_share is not None:
                miss.add_metric([routing], h.miss_share)
            if h.recomputed_per_min is not None:
                recomputed.add_metric([routing], h.recomputed_per_min)
        return [ttft, miss, recomputed, count]


@dataclass
class RoutingCounts:
    """What one routing's frontend did with the requests sent to it, for a fault test or the page.

    ``sent`` counts requests when they leave, ``ok`` and ``failed`` when they end (the rest are in
    flight). An outage starts with a failure while none is open and ends with the first success
    of a request sent after that failure (one sent before, still streaming when the frontend went,
    says nothing about recovery): ``down_since`` is its first failure while it lasts,
    ``last_down_s`` how long the last one lasted (first failure to that success), ``outages`` how
    many ended.
    """

    sent: int = 0
    ok: int = 0
    failed: int = 0
    failed_by_kind: dict[str, int] = field(default_factory=dict)
    # Conversations of this routing with at least one failed turn (each failed turn is marked
    # ``affected`` in the conversation viewer).
    affected_conversations: int = 0
    down_since: float | None = None
    last_down_s: float | None = None
    outages: int = 0
    last_ok_at: float | None = None
    last_error_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent, "ok": self.ok, "failed": self.failed, "in_flight": self.sent - self.ok - self.failed,
            "failed_by_kind": dict(self.failed_by_kind), "affected_turns": self.failed,
            "affected_conversations": self.affected_conversations,
            "down_since": self.down_since, "last_down_s": _round(self.last_down_s, 2), "outages": self.outages,
            "last_ok_at": self.last_ok_at, "last_error_at": self.last_error_at,
        }


@dataclass
class _Bucket:
    t: int
    requests: int = 0
    errors: int = 0
    ttft_sum: dict[str, float] = field(default_factory=dict)
    ttft_n: dict[str, int] = field(default_factory=dict)
    ttft_first_sum: dict[str, float] = field(default_factory=dict)
    ttft_first_n: dict[str, int] = field(default_factory=dict)
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
        self.followups: dict[str, deque[headlines.Followup]] = {}
        self.counts: dict[str, RoutingCounts] = {}
        self.metrics = Metrics()
        self.metrics.registry.register(HeadlineCollector(self))
        self.started = time.time()

    # -- recording -----------------------------------------------------------
    def track(self, routings: Iterable[str]) -> None:
        """Report these routing ids, in this order, even before they have data."""
        for routing in routings:
            if routing not in self.routings:
                self.routings.append(routing)
                self.metrics.init_routing(routing)
            self.counts.setdefault(routing, RoutingCounts())

    def sent(self, routing: str) -> None:
        """A request of ``routing`` leaves (``record`` counts how it ended)."""
        self.track((routing,))
        self.counts[routing].sent += 1

    def _bucket(self, now: float) -> _Bucket:
        sec = int(now)
        if not self.buckets or self.buckets[-1].t < sec:
            self.buckets.append(_Bucket(t=sec))
        return self.buckets[-1]

    def add_conversation(self, conv: Conversation) -> None:
        self.conversations[conv.id] = conv
        while len(self.conversations) > self.max_conversations:
            self.conversations.popitem(last=False)

    def record(self, routing: str, turn: int, res: TurnResult, now: float | None = None, *,
               first_failure: bool = False, sent_at: float | None = None) -> None:
        """One finished request; ``first_failure``: the first failed turn of its conversation;
        ``sent_at``: when it was sent (wall clock; None counts as sent just now)."""
        now = time.time() if now is None else now
        self.track((routing,))
        self._count(self.counts[routing], res, now, first_failure, now if sent_at is None else sent_at)
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
        followup = headlines.is_followup(turn)
        if res.ttft_ms is not None:
            self._window(self.ttft, (routing, key_turn)).append(res.ttft_ms)
            if followup:
                b.ttft_sum[routing] = b.ttft_sum.get(routing, 0.0) + res.ttft_ms
                b.ttft_n[routing] = b.ttft_n.get(routing, 0) + 1
                self._followups(routing).append(headlines.Followup(
                    t=now, ttft_ms=res.ttft_ms, prompt_tokens=res.prompt_tokens, cached_tokens=res.cached_tokens))
            else:
                b.ttft_first_sum[routing] = b.ttft_first_sum.get(routing, 0.0) + res.ttft_ms
                b.ttft_first_n[routing] = b.ttft_first_n.get(routing, 0) + 1
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
        if followup and res.ttft_ms is not None and res.prompt_tokens and res.cached_tokens is not None:
            # The same test as headlines.Followup.miss, so counters and page count alike.
            missed = headlines.is_miss(res.prompt_tokens, res.cached_tokens)
            m.followups.labels(routing, "miss" if missed else "hit").inc()
            m.recomputed.labels(routing).inc(headlines.recomputed_tokens(res.prompt_tokens, res.cached_tokens))

    @staticmethod
    def _count(c: RoutingCounts, res: TurnResult, now: float, first_failure: bool, sent_at: float) -> None:
        if res.ok:
            c.ok += 1
            c.last_ok_at = now
            if c.down_since is not None and sent_at >= c.down_since:
                c.last_down_s = now - c.down_since
                c.down_since = None
                c.outages += 1
            return
        c.failed += 1
        kind = res.error_kind or "unknown"
        c.failed_by_kind[kind] = c.failed_by_kind.get(kind, 0) + 1
        c.last_error_at = now
        if c.down_since is None:
            c.down_since = now
        if first_failure:
            c.affected_conversations += 1

    def _followups(self, routing: str) -> deque[headlines.Followup]:
        ring = self.followups.get(routing)
        if ring is None:
            ring = self.followups[routing] = deque(maxlen=MAX_FOLLOWUPS)
        return ring

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

    def summaries(self, now: float | None = None) -> dict[str, headlines.Summary]:
        """{routing: Summary} over the follow-ups of the last WINDOW_S seconds, every routing known."""
        now = time.time() if now is None else now
        return {r: headlines.summarize(self.followups.get(r, ()), now=now) for r in self.routings}

    def dots(self, now: float | None = None, seconds: float = DOTS_WINDOW_S) -> dict[str, list[list[Any]]]:
        """Every recent follow-up per routing as [t (epoch s), ttft_ms, miss (1/0/None)], newest last."""
        now = time.time() if now is None else now
        out: dict[str, list[list[Any]]] = {}
        for r in self.routings:
            recent = headlines.in_window(self.followups.get(r, ()), now, seconds)[-MAX_DOTS:]
            out[r] = [[round(f.t, 3), round(f.ttft_ms, 1), None if f.miss is None else int(f.miss)]
                      for f in recent]
        return out

    def series(self, now: float | None = None, seconds: int = 120) -> dict[str, Any]:
        now = time.time() if now is None else now
        lo = int(now) - seconds
        pts = [b for b in self.buckets if b.t > lo]
        return {
            "t": [b.t for b in pts],
            "rps": [b.requests for b in pts],
            "errors": [b.errors for b in pts],
            "active": [b.active for b in pts],
            "itl_ms": [_round(b.itl_sum / b.itl_n, 2) if b.itl_n else None for b in pts],
            # Mean TTFT per second, by routing id: follow-ups (turn >= 2) and first turns apart.
            "ttft": {r: [_round(b.ttft_sum[r] / b.ttft_n[r]) if b.ttft_n.get(r) else None for b in pts]
                     for r in self.routings},
            "ttft_first": {r: [_round(b.ttft_first_sum[r] / b.ttft_first_n[r]) if b.ttft_first_n.get(r) else None
                               for b in pts] for r in self.routings},
        }

    @staticmethod
    def ratio(heads: dict[str, headlines.Summary], stat: str) -> dict[str, Any]:
        """The slowest routing's ``stat`` over the fastest's, named; value None while any is collecting."""
        known = [(getattr(h, stat), r) for r, h in heads.items() if getattr(h, stat) is not None]
        out: dict[str, Any] = {"value": None, "slow": None, "fast": None,
                               "collecting": any(h.collecting for h in heads.values()) or len(heads) < 2}
        if len(known) < 2:
            return out
        (_fv, fast), (_sv, slow) = min(known), max(known)
        value = headlines.ratio(heads[slow], heads[fast], stat)
        out.update(value=None if value is None else round(value, 2), slow=slow, fast=fast)
        return out

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        recent = list(self.buckets)[-10:]
        window = max(1, len(recent))
        heads = self.summaries(now)
        p50 = self.ratio(heads, "p50_ms")
        return {
            "now": round(now, 3),
            "totals": dict(self.totals),
            "errors_by_kind": dict(self.errors_by_kind),
            # Per routing: sent, ok, failed (by kind), affected turns and conversations, outages.
            "requests_by_routing": {r: self.counts[r].to_dict() for r in self.routings if r in self.counts},
            "last_errors": list(self.last_errors)[-5:],
            "rps_10s": round(sum(b.requests for b in recent) / window, 2),
            "by_turn": self.by_turn(),
            # The headlines, per routing (headlines.Summary.to_dict), and the ratios between routings.
            "headlines": {r: h.to_dict() for r, h in heads.items()},
            "min_followups": headlines.MIN_FOLLOWUPS_TO_JUDGE,
            "window_s": headlines.WINDOW_S,
            "tail_ratio": self.ratio(heads, "p90_ms"),
            "median_ratio": p50,
            # Follow-up median per routing (the headlines' p50), kept for older readers.
            "followup_ttft_ms": {r: h.to_dict()["p50_ms"] for r, h in heads.items()},
            "dots": self.dots(now),
            "overhead_ms_p50": _round(percentile(list(self.overhead), 50), 2),
            "series": self.series(now),
        }

    def reset(self) -> None:
        self.ttft.clear()
        self.cache.clear()
        self.overhead.clear()
        self.buckets.clear()
        self.followups.clear()
        self.totals = {"requests": 0, "errors": 0}
        self.errors_by_kind.clear()
        self.last_errors.clear()
        # Requests in flight still end after the reset: they stay counted as sent.
        for routing, c in list(self.counts.items()):
            self.counts[routing] = RoutingCounts(sent=c.sent - c.ok - c.failed)


def _round(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)
