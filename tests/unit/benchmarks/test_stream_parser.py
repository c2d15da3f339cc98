"""The collection's one stream parser (plugins/module_utils/chat_stream.py) and how each consumer gets it.

The module reads it through openai_client (tests/unit/plugins), the load generator through its
link ``gtc_loadgen/chat_stream.py`` (imported here, from the editable install of apps/loadgen that
`make setup` makes), the benchmarks through the load generator's client.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

from gtc_loadgen import chat_stream as cs

REPO = Path(__file__).resolve().parents[3]
CANONICAL = REPO / "plugins" / "module_utils" / "chat_stream.py"
LINK = REPO / "apps" / "loadgen" / "src" / "gtc_loadgen" / "chat_stream.py"
RECORDED = REPO / "tests" / "unit" / "loadgen" / "data" / "dynamo_kv_stream.json"


def replay(lines: list[tuple[float, str]]) -> cs.ChatStream:
    stream = cs.ChatStream()
    for at, line in lines:
        stream.feed_line(line, at)
    stream.close()
    return stream


def sse(*chunks: dict, gap: float = 0.01, done: bool = True) -> list[tuple[float, str]]:
    lines: list[tuple[float, str]] = []
    for i, chunk in enumerate(chunks, start=1):
        lines += [(i * gap, "data: " + json.dumps(chunk) + "\n"), (i * gap, "\n")]
    if done:
        lines += [((len(chunks) + 1) * gap, "data: [DONE]\n"), ((len(chunks) + 1) * gap, "\n")]
    return lines


def text_chunk(text: str, **extra) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}], **extra}


# -- one file, three consumers ------------------------------------------------------------------------


def test_the_app_imports_the_collection_file_not_a_copy():
    assert Path(cs.__file__).resolve() == CANONICAL.resolve()
    # git stores the app's entry as a link (mode 120000) to the module_utils file
    staged = subprocess.run(["git", "ls-files", "-s", "--", str(LINK.relative_to(REPO))], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    assert staged[0] == "120000", staged
    assert os.readlink(LINK) == "../../../../plugins/module_utils/chat_stream.py"


def test_the_loadgen_roles_source_copy_holds_a_real_file(tmp_path):
    """roles/loadgen mirrors apps/loadgen (install_app.py's sync) before `pip install`: the link becomes its content."""
    spec = importlib.util.spec_from_file_location("install_app", REPO / "roles" / "loadgen" / "files" / "install_app.py")
    install_app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install_app)
    dest = tmp_path / "loadgen-src"
    assert "src/gtc_loadgen/chat_stream.py" in install_app.sync(str(REPO / "apps" / "loadgen"), str(dest), False)
    copied = dest / "src" / "gtc_loadgen" / "chat_stream.py"
    assert not copied.is_symlink() and copied.read_bytes() == CANONICAL.read_bytes()


def test_the_parser_needs_only_the_standard_library():
    imports = [line.split()[1] for line in CANONICAL.read_text().splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["__future__", "json"]


# -- server-sent events ------------------------------------------------------------------------------------


def test_events_follow_the_sse_rules():
    decoder = cs.EventDecoder()
    got = [decoder.feed(line, at) for at, line in [
        (1.0, b": keep-alive\r\n"), (1.1, b"id: 7\r\n"), (1.2, b"retry: 100\r\n"),
        (1.3, b'data: {"a":\r\n'), (1.4, b"data: 1}\r\n"), (1.5, b"\r\n"),
        (2.0, "event: error\n"), (2.1, "data:no-space\n"), (2.2, "\n"), (3.0, "data: [DONE]"),
    ]]
    # an event is dispatched by its blank line, timed by its first data line
    assert [g for g in got if g] == [(None, '{"a":\n1}', 1.3), ("error", "no-space", 2.1)]
    assert decoder.close() == (None, "[DONE]", 3.0)  # the last event lacked its blank line
    assert decoder.close() is None


@pytest.mark.parametrize(("line", "message"), [
    (b'{"id": 1}\n', "stream line 2 is not a server-sent event field: {\"id\": 1}"),
    (b"data: \xff\xfe\n", "stream line 2 is not UTF-8"),
])
def test_a_line_that_is_no_sse_field_is_refused_with_its_number(line, message):
    decoder = cs.EventDecoder()
    decoder.feed(b"data: {}\n")
    with pytest.raises(cs.StreamError, match=message.replace("{", r"\{").replace("}", r"\}")):
        decoder.feed(line)


# -- chunks ------------------------------------------------------------------------------------------------


def test_a_recorded_dynamo_stream():
    lines = [tuple(x) for x in json.loads(RECORDED.read_text())["lines"]]
    stream = replay(lines)
    first_text = next(at for at, line in lines if '"content":"' in line)
    assert stream.ttft_ms() == pytest.approx(first_text * 1000)
    assert stream.done and stream.finished and stream.finish_reason == "length"
    assert len(stream.content) == 12 == stream.completion_tokens == stream.output_tokens()
    assert (stream.prompt_tokens, stream.cached_tokens) == (795, 0)
    assert stream.worker_id == "2525226357430567642"
    assert stream.server_timing("ttft_ms") > 0
    assert stream.cache_hit() == 0.0
    span = stream.content[-1][0] - stream.content[0][0]
    assert stream.itl_ms() == pytest.approx(span * 1000 / 11)
    assert stream.response_id.startswith("chatcmpl-") and stream.chunks == 14  # 12 with text, the finishing one, usage


def test_role_and_empty_chunks_are_chunks_but_not_the_first_token():
    stream = replay(sse({"id": "c1", "choices": [{"delta": {"role": "assistant"}}]},
                        text_chunk(""), text_chunk("Hi"), text_chunk(" there", nvext={"worker_id": {"prefill_worker_id": 3}})))
    assert stream.first_chunk_at == pytest.approx(0.01)
    assert stream.ttft_ms(started=0.005) == pytest.approx(25.0)
    assert stream.text == "Hi there" and stream.chunks == 4 and len(stream.content) == 2
    assert stream.worker_id == "3"  # prefill worker when no decode worker is named


def test_nvext_is_merged_over_chunks_and_usage_is_the_last_block():
    worker = {"worker_id": {"decode_worker_id": 9}}
    stream = replay(sse(text_chunk("a", nvext=worker),
                        {"choices": [{"delta": {}, "finish_reason": "stop"}],
                         "nvext": {"timing": {"ttft_ms": 20.5, "kv_hit_rate": 0.75}}},
                        {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 1}}))
    assert stream.nvext == {"worker_id": {"decode_worker_id": 9}, "timing": {"ttft_ms": 20.5, "kv_hit_rate": 0.75}}
    assert stream.usage == {"prompt_tokens": 40, "completion_tokens": 1}
    # no cached_tokens in usage: the KV router's own hit rate
    assert stream.cache_hit() == 0.75 and stream.cached_tokens is None


def test_multi_token_chunks_spread_their_gap_over_their_tokens():
    stream = replay(sse(text_chunk("a"), text_chunk("bbb ccc ddd"), text_chunk("eee fff ggg hhh"),
                        {"choices": [], "usage": {"completion_tokens": 8}}, gap=0.03, done=False))
    assert not stream.done and not stream.finished  # neither [DONE] nor a finish reason: cut
    assert stream.itl_ms() == pytest.approx(60.0 / 7)
    samples = stream.itl_samples_ms()
    assert len(samples) == 7 and sum(samples) == pytest.approx(60.0) and max(samples) < 30.0


@pytest.mark.parametrize(("texts", "total", "expected"), [
    (["a", "b"], 2, [1, 1]),
    (["a", "b"], 1, [1, 1]),
    (["a", "b c d"], 4, [1, 3]),
    (["a", "b c d"], 6, [2, 4]),
    (["xx", "xx", "xx"], 7, [3, 2, 2]),
])
def test_attribute_tokens(texts, total, expected):
    assert cs.attribute_tokens(texts, total) == expected


@pytest.mark.parametrize(("body", "error", "message"), [
    ('data: {"id": "x", "choices": [\n', cs.StreamError, "stream chunk 2 is not JSON"),
    ("data: [1, 2]\n", cs.StreamError, "stream chunk 2 is not a JSON object"),
    ('data: {"choices": {"delta": 1}}\n', cs.StreamError, 'stream chunk 2 has "choices" that is not a list'),
    ('data: {"choices": [3]}\n', cs.StreamError, "stream chunk 2 has a choice that is not an object"),
    ('event: error\ndata: {"message": "engine died"}\n', cs.StreamServerError, "error event in the stream after 1 chunks"),
    ('data: {"error": {"message": "worker lost"}}\n', cs.StreamServerError, "reported an error in the stream after 1 chunks"),
])
def test_a_broken_chunk_names_the_fault(body, error, message):
    stream = cs.ChatStream()
    stream.feed_line('data: {"choices": [{"delta": {"content": "Hi"}}]}\n', 0.1)
    stream.feed_line("\n", 0.1)
    with pytest.raises(error, match=message) as caught:
        for line in body.splitlines(keepends=True) + ["\n"]:
            stream.feed_line(line, 0.2)
    assert stream.text == "Hi"  # what arrived before the fault is kept
    if error is cs.StreamServerError and "worker" in body:
        assert caught.value.detail == "worker lost"
