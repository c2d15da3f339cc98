"""Per-turn statistics and the report's tables, on hand-made request records."""

import pytest

from gtc_bench import report, sim


def _rec(session, turn, ttft, reused, length=1000, start=0.0, end=100.0, run=0):
    return {"session_id": session, "turn": turn, "ttft_ms": ttft, "reused": reused, "input_length": length,
            "arrival_ms": start, "end_ms": end, "run": run}


def test_a_miss_is_less_than_half_the_prompt_from_cache():
    assert sim.is_miss(_rec("a", 2, 10, 499))
    assert not sim.is_miss(_rec("a", 2, 10, 500))


def test_turn_stats_split_turns_and_follow_ups():
    recs = [_rec("a", 1, 500, 0), _rec("a", 2, 20, 900), _rec("a", 3, 400, 0),
            _rec("b", 1, 520, 0), _rec("b", 2, 30, 950)]
    st = sim.turn_stats(recs)
    assert st["turns"][1]["median"] == 510 and st["turns"][1]["miss"] == 1.0
    f = st["followups"]
    assert f["n"] == 3 and f["median"] == 30 and f["miss"] == pytest.approx(1 / 3)
    assert f["mean"] == pytest.approx(150)
    assert f["p90"] == pytest.approx(30 + 0.8 * (400 - 30))  # position 0.9 x 2 = 1.8 in [20, 30, 400]
    assert 4 not in st["turns"]


def test_mean_concurrency_is_per_run():
    # two runs of the same two overlapping conversations: pooling must not double the concurrency
    recs = []
    for run in (0, 1):
        recs += [_rec("a", 1, 1, 0, start=0, end=100, run=run), _rec("b", 1, 1, 0, start=0, end=100, run=run)]
    assert sim.mean_concurrency(recs) == pytest.approx(2.0)
    half = [_rec("a", 1, 1, 0, start=0, end=100), _rec("b", 1, 1, 0, start=50, end=100)]
    assert sim.mean_concurrency(half) == pytest.approx(1.5)


def test_headline_table_reports_ratio_and_misses():
    def cell(topology, router, median, miss):
        stats = sim.turn_stats([_rec("a", 1, 400, 0), _rec("a", 2, median, 0 if miss else 900)])
        return {"settings": {"gpu": "h200", "context": "4k", "load": 16, "topology": topology, "router": router},
                "stats": stats}

    cells = [cell("4xTP2", "round-robin", 400, True), cell("4xTP2", "kv-default", 40, False),
             cell("4xTP2", "kv-recommended", 20, False)]
    md = report.headline(cells)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| topology") and len(lines) == 3
    assert "| 4xTP2 | 400 | 400 | 40 | 20 | 20.0× |" in lines[2]
    assert "100% / 0% / 0%" in lines[2]
