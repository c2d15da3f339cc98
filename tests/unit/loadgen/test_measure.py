"""TTFT and ITL on recorded streams."""

import json
from pathlib import Path

import pytest

from gtc_loadgen.measure import StreamError, StreamRecord, attribute_tokens

DATA = Path(__file__).parent / "data"


def replay(lines):
    rec = StreamRecord()
    for t, line in lines:
        rec.feed_line(line, t)
    return rec


def test_recorded_dynamo_stream():
    recorded = json.loads((DATA / "dynamo_kv_stream.json").read_text())["lines"]
    rec = replay(recorded)
    content = [(t, l) for t, l in recorded if '"content"' in l]
    # TTFT is the arrival of the first chunk that carries text.
    assert rec.ttft_ms() == pytest.approx(content[0][0] * 1000)
    assert rec.complete and rec.done and rec.finish_reason == "length"
    assert rec.completion_tokens == 12 == len(rec.content_chunks)
    # Dynamo sends timing on the finishing chunk and usage in a last, choice-less chunk.
    assert rec.server_ttft_ms is not None and rec.server_ttft_ms > 0
    assert rec.kv_hit_rate is not None
    assert rec.prompt_tokens > 100 and rec.cached_tokens is not None
    assert rec.worker_id is not None and rec.worker_id.isdigit()
    span = content[-1][0] - content[0][0]
    assert rec.itl_ms() == pytest.approx(span * 1000 / 11)
    assert rec.cache_hit() == pytest.approx(rec.cached_tokens / rec.prompt_tokens)


def test_role_only_and_empty_chunks_are_not_the_first_token():
    lines = [
        (0.010, 'data: {"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}'),
        (0.020, 'data: {"choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}'),
        (0.050, ": keep-alive"),
        (0.100, 'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}'),
        (0.150, 'data: {"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}'),
        (0.151, "data: [DONE]"),
    ]
    rec = replay(lines)
    assert rec.ttft_ms() == pytest.approx(100.0)
    assert rec.text == "Hi there"
    assert rec.itl_ms() == pytest.approx(50.0)


def test_multi_token_chunks_are_corrected():
    # 3 chunks carrying 1 + 3 + 4 = 8 tokens (usage says so), 30 ms apart.
    lines = [
        (0.100, 'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}'),
        (0.130, 'data: {"choices":[{"index":0,"delta":{"content":"bbb ccc ddd"}}]}'),
        (0.160, 'data: {"choices":[{"index":0,"delta":{"content":"eee fff ggg hhh"},"finish_reason":"length"}]}'),
        (0.161, 'data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":8}}'),
    ]
    rec = replay(lines)
    # Uncorrected, one gap per chunk would say 30 ms; 7 token gaps in 60 ms is the truth.
    assert rec.itl_ms() == pytest.approx(60.0 / 7)
    samples = rec.itl_samples_ms()
    assert len(samples) == 7  # every token after the first chunk's
    assert sum(samples) == pytest.approx(60.0)
    assert max(samples) < 30.0


def test_without_usage_each_chunk_counts_one_token():
    lines = [(0.1 * i, 'data: {"choices":[{"index":0,"delta":{"content":"w"}}]}') for i in range(1, 5)]
    rec = replay(lines)
    assert rec.output_tokens() == 4
    assert rec.itl_ms() == pytest.approx(100.0)
    assert not rec.complete  # no finish reason, no [DONE]: a cut stream


def test_single_token_has_no_itl():
    rec = replay([(0.2, 'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}')])
    assert rec.ttft_ms() == pytest.approx(200.0)
    assert rec.itl_ms() is None and rec.itl_samples_ms() == []


def test_kv_hit_rate_used_when_usage_has_no_cached_tokens():
    rec = replay([(0.1, 'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],'
                        '"nvext":{"timing":{"ttft_ms":90.5,"kv_hit_rate":0.75}}}')])
    assert rec.cache_hit() == 0.75 and rec.server_ttft_ms == 90.5


@pytest.mark.parametrize("line", ["data: {broken", "garbage line", "data: [1, 2]"])
def test_malformed_lines_raise(line):
    with pytest.raises(StreamError):
        StreamRecord().feed_line(line, 0.0)


def test_error_object_in_stream_is_kept():
    rec = replay([(0.1, 'data: {"error": {"message": "worker lost"}}')])
    assert rec.error == "worker lost" and not rec.content_chunks


@pytest.mark.parametrize(("texts", "total", "expected"), [
    (["a", "b"], 2, [1, 1]),
    (["a", "b"], 1, [1, 1]),  # never below one token per chunk
    (["a", "b c d"], 4, [1, 3]),  # words match the count exactly
    (["a", "b c d"], 6, [2, 4]),  # 2 extra tokens split 1:3 by words

    (["xx", "xx", "xx"], 7, [3, 2, 2]),
])
def test_attribute_tokens(texts, total, expected):
    counts = attribute_tokens(texts, total)
    assert counts == expected
    assert sum(counts) == max(total, len(texts))
