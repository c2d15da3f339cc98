"""The Mooncake trace generator: prompts extend across turns, sessions, random arrivals."""

import json
import statistics

import pytest

from gtc_bench import shape, trace


def _rows(n=40, shp=shape.BOOTH, rate=0.5, seed=3):
    convs = trace.generate(n, shp, rate, seed)
    return convs, trace.to_mooncake(convs, shp)


def _by_session(rows):
    out = {}
    for r in rows:
        out.setdefault(r["session_id"], []).append(r)
    return out


def test_hash_ids_extend_the_previous_turn():
    convs, rows = _rows()
    sessions = _by_session(rows)
    assert len(sessions) == len(convs)
    for turns in sessions.values():
        for prev, cur in zip(turns, turns[1:]):
            full_prev = prev["input_length"] // 32  # the previous prompt's complete blocks
            assert cur["hash_ids"][:full_prev] == prev["hash_ids"][:full_prev]
            assert cur["input_length"] > prev["input_length"]
            assert len(cur["hash_ids"]) > len(prev["hash_ids"])


def test_one_id_per_32_token_block_and_no_sharing_between_conversations():
    rows = _rows()[1]
    owner = {}
    for r in rows:
        assert len(r["hash_ids"]) == -(-r["input_length"] // 32)
        for h in r["hash_ids"]:
            assert owner.setdefault(h, r["session_id"]) == r["session_id"]


def test_partial_tail_block_gets_a_fresh_id():
    convs, rows = _rows(n=10)
    for turns in _by_session(rows).values():
        for prev, cur in zip(turns, turns[1:]):
            if prev["input_length"] % 32:
                assert prev["hash_ids"][-1] not in cur["hash_ids"]


def test_turn_counts_sizes_and_session_ids_follow_the_shape():
    convs, rows = _rows(n=200)
    counts = {len(c.turns) for c in convs}
    assert counts == {3, 4, 5}
    assert len({c.conv_id for c in convs}) == 200
    sessions = _by_session(rows)
    for c in convs:
        turns = sessions[c.conv_id]
        assert len(turns) == len(c.turns)
        assert turns[0]["input_length"] == c.system_tokens + c.turns[0].question_tokens + 10
        assert [r["output_length"] for r in turns] == [t.answer_tokens for t in c.turns]
        assert 3000 <= c.system_tokens <= 6000
    # lengths agree with the helper the live client uses
    for c in convs[:20]:
        assert [r["input_length"] for r in sessions[c.conv_id]] == trace.prompt_lengths(c, 5)


def test_follow_ups_carry_think_time_as_delay():
    convs, rows = _rows(n=50)
    sessions = _by_session(rows)
    for c in convs:
        turns = sessions[c.conv_id]
        assert "delay" not in turns[0]
        for k, r in enumerate(turns[1:], start=1):
            assert 4000 <= r["delay"] <= 12000
            assert r["delay"] == pytest.approx(c.turns[k].think_s * 1000, abs=1e-3)
            assert r["timestamp"] > turns[k - 1]["timestamp"]


def test_arrivals_are_poisson_not_regular():
    convs = trace.generate(2000, shape.BOOTH, rate_per_s=2.0, seed=11)
    gaps = [b.start_s - a.start_s for a, b in zip(convs, convs[1:])]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(0.5, rel=0.1)  # 1 / rate
    # exponential gaps: coefficient of variation ~1 (regular spacing would give 0)
    assert statistics.pstdev(gaps) / mean == pytest.approx(1.0, abs=0.1)
    think = [t.think_s for c in convs for t in c.turns[1:]]
    assert min(think) >= 4 and max(think) <= 12 and statistics.pstdev(think) > 1.5


def test_same_seed_same_trace_other_seed_other_trace():
    assert _rows(seed=5)[1] == _rows(seed=5)[1]
    assert _rows(seed=5)[1] != _rows(seed=6)[1]


def test_rows_sorted_by_timestamp_with_sessions_in_turn_order(tmp_path):
    rows = _rows(n=60, rate=2.0)[1]
    ts = [r["timestamp"] for r in rows]
    assert ts == sorted(ts)
    path = trace.write_jsonl(rows, tmp_path / "t.jsonl")
    back = [json.loads(line) for line in path.read_text().splitlines()]
    assert back == rows
    assert set(back[0]) >= {"timestamp", "input_length", "output_length", "hash_ids", "session_id"}


def test_probe_shape_is_four_turns_of_8k():
    convs, rows = _rows(n=8, shp=shape.PROBE_8K)
    assert all(len(c.turns) == 4 and c.system_tokens == 8192 for c in convs)
    assert min(r["input_length"] for r in rows) > 8192


def test_shape_validation_and_rate_helper():
    with pytest.raises(ValueError, match="turns_min"):
        shape.ConversationShape(turns_min=5, turns_max=3)
    with pytest.raises(ValueError):
        trace.generate(0)
    r16 = shape.conversation_rate_for(16, shape.BOOTH)
    assert shape.conversation_rate_for(32, shape.BOOTH) == pytest.approx(2 * r16)
    assert shape.with_context(shape.BOOTH, "16k").system_tokens_min == 14000
