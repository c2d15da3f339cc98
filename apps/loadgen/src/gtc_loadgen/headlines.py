"""The booth's headline numbers: what they mean, defined once.

Pure functions over follow-up requests, no I/O. The app's statistics (the
page and ``/api/state``), its ``/metrics`` and the benchmarks
(``benchmarks/run live``) all compute their headlines here, so a number on the
page, on the dashboard and in a benchmark report means the same thing.

- A **follow-up** is a turn >= 2: its prompt starts with the whole earlier
  conversation, the prefix a KV-aware router can find in a worker's cache.
- A follow-up **missed** when the server reported fewer than
  ``MISS_CACHED_SHARE`` of its prompt tokens as cached
  (``usage.prompt_tokens_details.cached_tokens``): it recomputed most of its
  conversation. A follow-up without both token counts is not judged (never
  guessed a hit or a miss); ``Summary.measured`` counts the judged ones.
- **Recomputed tokens** = prompt tokens - cached tokens: the prefill work done
  again. Per minute = the sum over the window / the window's minutes (what
  Prometheus's ``rate(...[5m]) * 60`` of the matching counter gives).
- **Percentiles** interpolate linearly between closest ranks (numpy's default;
  at q=50 the same as ``statistics.median``).
- Below ``MIN_FOLLOWUPS_TO_JUDGE`` follow-ups a routing is **collecting**: its
  numbers may be shown as they come, but ``ratio`` gives no ratio.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MISS_CACHED_SHARE = 0.5
MIN_FOLLOWUPS_TO_JUDGE = 20
# The headlines cover the follow-ups that finished in the last WINDOW_S seconds;
# the recording rules behind the dashboard use the same window ([5m]).
WINDOW_S = 300.0


def is_followup(turn: int) -> bool:
    return turn >= 2


def is_miss(prompt_tokens: int, cached_tokens: int) -> bool:
    """True when less than MISS_CACHED_SHARE of the prompt came from the KV cache."""
    if prompt_tokens <= 0:
        return False
    return cached_tokens < MISS_CACHED_SHARE * prompt_tokens


def recomputed_tokens(prompt_tokens: int, cached_tokens: int) -> int:
    """Prompt tokens the engine had to prefill (not found in its cache)."""
    return max(0, prompt_tokens - max(0, cached_tokens))


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (q in 0..100), linear between closest ranks; None when there is no value."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within 0..100, not {q}")
    ordered = sorted(values)
    if not ordered:
        return None
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Followup:
    """One finished follow-up request: when it finished (epoch s), its client TTFT and token counts."""

    t: float
    ttft_ms: float
    prompt_tokens: int | None = None
    cached_tokens: int | None = None

    @property
    def measured(self) -> bool:
        return self.prompt_tokens is not None and self.prompt_tokens > 0 and self.cached_tokens is not None

    @property
    def miss(self) -> bool | None:
        if not self.measured:
            return None
        return is_miss(self.prompt_tokens or 0, self.cached_tokens or 0)

    @property
    def recomputed(self) -> int | None:
        if not self.measured:
            return None
        return recomputed_tokens(self.prompt_tokens or 0, self.cached_tokens or 0)


@dataclass(frozen=True)
class Summary:
    """The headlines of one routing's follow-ups over one window."""

    n: int  # follow-ups with a TTFT
    measured: int  # of those, follow-ups with prompt and cached token counts (judged hit or miss)
    misses: int
    p50_ms: float | None
    p90_ms: float | None
    mean_ms: float | None
    recomputed_tokens: int
    window_s: float

    @property
    def collecting(self) -> bool:
        return self.n < MIN_FOLLOWUPS_TO_JUDGE

    @property
    def miss_share(self) -> float | None:
        """misses / measured follow-ups (0..1); None when none was measured."""
        return self.misses / self.measured if self.measured else None

    @property
    def recomputed_per_min(self) -> float | None:
        """Recomputed prompt tokens per minute over the window; None when none was measured."""
        if not self.measured or self.window_s <= 0:
            return None
        return self.recomputed_tokens * 60.0 / self.window_s

    def to_dict(self) -> dict[str, float | int | bool | None]:
        return {
            "n": self.n, "measured": self.measured, "misses": self.misses,
            "miss_share": _round(self.miss_share, 4), "collecting": self.collecting,
            "p50_ms": _round(self.p50_ms, 1), "p90_ms": _round(self.p90_ms, 1), "mean_ms": _round(self.mean_ms, 1),
            "recomputed_tokens": self.recomputed_tokens,
            "recomputed_per_min": _round(self.recomputed_per_min, 1), "window_s": self.window_s,
        }


def in_window(followups: Iterable[Followup], now: float, window_s: float = WINDOW_S) -> list[Followup]:
    """The follow-ups that finished within (now - window_s, now]."""
    lo = now - window_s
    return [f for f in followups if lo < f.t <= now]


def summarize(followups: Iterable[Followup], *, now: float | None = None,
              window_s: float = WINDOW_S) -> Summary:
    """Headlines over the follow-ups given; with ``now``, only those within the window ending then."""
    recs: Sequence[Followup] = list(followups) if now is None else in_window(followups, now, window_s)
    ttft = [f.ttft_ms for f in recs]
    judged = [f for f in recs if f.measured]
    return Summary(
        n=len(ttft),
        measured=len(judged),
        misses=sum(1 for f in judged if f.miss),
        p50_ms=percentile(ttft, 50),
        p90_ms=percentile(ttft, 90),
        mean_ms=sum(ttft) / len(ttft) if ttft else None,
        recomputed_tokens=sum(f.recomputed or 0 for f in judged),
        window_s=window_s,
    )


def ratio(slow: Summary, fast: Summary, stat: str = "p90_ms") -> float | None:
    """slow.stat / fast.stat (e.g. round-robin's follow-up p90 over KV-aware's).

    None, never a number, when either side is still collecting or lacks the
    statistic: the page then says "collecting" and shows no ratio.
    """
    if slow.collecting or fast.collecting:
        return None
    a, b = getattr(slow, stat), getattr(fast, stat)
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)
