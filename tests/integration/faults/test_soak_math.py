"""The soak's own arithmetic (gtc_bench/soak.py), without a demo: the least-squares slope, the
history caps read from /api/state's shape, and the pass rule. Milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest
from gtc_bench import soak


def test_slope_is_least_squares_per_hour():
    assert soak.slope_per_hour([0, 1, 2, 3], [100, 100.5, 101, 101.5]) == pytest.approx(30.0)
    assert soak.slope_per_hour([5, 6, 7], [50, 49, 51]) == pytest.approx(30.0)  # noisy, fitted
    assert soak.slope_per_hour([1], [5]) is None and soak.slope_per_hour([2, 2], [1, 3]) is None


def _state(points: int, dots: int, errors: int, followups: int) -> dict:
    series = {k: [0] * points for k in ("t", "rps", "errors", "active", "itl_ms")}
    series["ttft"] = {"kv": [1] * points}
    return {"stats": {"series": series, "dots": {"kv": [[0, 1, 0]] * dots}, "last_errors": [{}] * errors,
                      "headlines": {"kv": {"n": followups}}, "totals": {"requests": 9, "errors": 1},
                      "requests_by_routing": {"kv": {"sent": 9, "failed": 1, "failed_by_kind": {"unreachable": 1}}}}}


def test_history_within_its_caps_passes_and_any_overflow_is_named():
    caps = soak.CAPS
    ok = _state(caps["series_points"], caps["dots_per_routing"], caps["last_errors"], caps["followups_per_routing"])
    assert not soak.history_bounds(ok, {"conversations": [{}] * caps["conversations"]})
    bad = _state(caps["series_points"] + 1, caps["dots_per_routing"] + 1, caps["last_errors"] + 1,
                 caps["followups_per_routing"] + 1)
    found = soak.history_bounds(bad, {"conversations": [{}] * (caps["conversations"] + 1)})
    for part in ("series.t", "series.ttft.kv", "dots.kv", "last_errors", "headlines.kv", "/api/conversations"):
        assert any(f.startswith(part) for f in found), (part, found)
    assert soak.counts(ok) == {"requests": 9, "errors": 1,
                               "by_routing": {"kv": {"sent": 9, "failed": 1, "failed_by_kind": {"unreachable": 1}}}}


def test_a_soak_passes_only_flat_bounded_and_without_errors():
    run = soak.Soak(soak.Page("http://127.0.0.1:1"), Path("/nonexistent"), {})
    run.rows = [{"minute": m, "rss_mib": {"loadgen": 40 + 0.01 * m}, "requests": 10 * m, "errors": 0, "bounds": []}
                for m in range(0, 11)]
    assert run.summary(warmup_min=2)["passed"]
    run.rows[-1]["errors"] = 1
    assert not run.summary(warmup_min=2)["passed"]
    run.rows[-1]["errors"] = 0
    for row in run.rows:  # 1 MiB a minute: 60 MiB/hour
        row["rss_mib"]["loadgen"] = 40 + row["minute"]
    summary = run.summary(warmup_min=2)
    assert not summary["passed"] and summary["slope_mib_per_hour"]["loadgen"] == pytest.approx(60.0)
