"""The one definition of the booth's headlines (gtc_loadgen.headlines)."""

import statistics

import pytest

from gtc_loadgen import headlines as h


def test_miss_is_less_than_half_the_prompt_cached():
    assert h.is_miss(1000, 0) and h.is_miss(1000, 499)
    assert not h.is_miss(1000, 500) and not h.is_miss(1000, 1000)
    assert not h.is_miss(0, 0)  # nothing to judge


def test_recomputed_tokens():
    assert h.recomputed_tokens(9000, 8960) == 40
    assert h.recomputed_tokens(9000, 0) == 9000
    assert h.recomputed_tokens(100, 200) == 0


def test_percentile_interpolates_like_the_benchmarks():
    vals = [10.0, 20.0, 30.0, 40.0, 1000.0]
    assert h.percentile(vals, 50) == statistics.median(vals) == 30.0
    assert h.percentile(vals, 90) == pytest.approx(40.0 + 0.6 * 960.0)
    assert h.percentile([4.0, 1.0], 50) == 2.5
    assert h.percentile([7.0], 90) == 7.0
    assert h.percentile([], 50) is None
    with pytest.raises(ValueError):
        h.percentile(vals, 101)


def _fu(t, ttft, prompt=1000, cached=990):
    return h.Followup(t=t, ttft_ms=ttft, prompt_tokens=prompt, cached_tokens=cached)


def test_summary_over_the_window_only():
    now = 1000.0
    recs = [_fu(now - 400, 9999.0, cached=0)]  # outside the 5-minute window
    recs += [_fu(now - i, 30.0) for i in range(14)]
    recs += [_fu(now - i, 300.0, cached=100) for i in range(6)]
    recs += [h.Followup(t=now - 1, ttft_ms=35.0)]  # no token counts: not judged
    s = h.summarize(recs, now=now)
    assert (s.n, s.measured, s.misses) == (21, 20, 6)
    assert s.miss_share == pytest.approx(0.3)
    assert s.recomputed_tokens == 14 * 10 + 6 * 900
    assert s.recomputed_per_min == pytest.approx((14 * 10 + 6 * 900) / 5.0)
    assert s.p90_ms == pytest.approx(h.percentile([f.ttft_ms for f in recs[1:]], 90))
    assert not s.collecting
    d = s.to_dict()
    assert d["miss_share"] == 0.3 and d["collecting"] is False and d["window_s"] == h.WINDOW_S


def test_unmeasured_followups_are_never_called_hits_or_misses():
    s = h.summarize([h.Followup(t=1.0, ttft_ms=10.0)] * 30)
    assert s.n == 30 and s.measured == 0 and s.miss_share is None and s.recomputed_per_min is None


def test_ratio_refuses_while_either_side_collects():
    kv = h.summarize([_fu(1.0, 30.0)] * h.MIN_FOLLOWUPS_TO_JUDGE)
    rr = h.summarize([_fu(1.0, 300.0, cached=0)] * h.MIN_FOLLOWUPS_TO_JUDGE)
    few = h.summarize([_fu(1.0, 300.0, cached=0)] * (h.MIN_FOLLOWUPS_TO_JUDGE - 1))
    assert h.ratio(rr, kv) == pytest.approx(10.0)
    assert h.ratio(rr, kv, "p50_ms") == pytest.approx(10.0)
    assert few.collecting and h.ratio(few, kv) is None and h.ratio(kv, few) is None
    assert h.ratio(rr, h.summarize([])) is None
