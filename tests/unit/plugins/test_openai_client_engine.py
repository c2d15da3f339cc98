"""The pure parts of plugins/module_utils/openai_client.py: SSE parsing, chunk accounting, URLs."""

from __future__ import annotations

import io
import json

import pytest

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils import openai_client as oc


def events(text: bytes) -> list[tuple[str | None, str]]:
    return list(oc.iter_sse_events(oc.iter_lines(io.BytesIO(text))))


def test_sse_fields_comments_crlf_and_multiline_data():
    text = (b': keep-alive\r\n'
            b'id: 7\r\nretry: 100\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
            b'event: error\ndata:no-space\n\n'
            b'data: [DONE]')  # the last event lacks its blank line
    assert events(text) == [(None, '{"a":\n1}'), ('error', 'no-space'), (None, '[DONE]')]


def test_sse_rejects_a_line_that_is_not_a_field():
    with pytest.raises(oc.MalformedResponse, match='stream line 2 is not a server-sent event field: {"id": 1}'):
        events(b'data: {}\n{"id": 1}\n\n')


def test_sse_rejects_bytes_that_are_not_utf8():
    with pytest.raises(oc.MalformedResponse, match='stream line 1 is not UTF-8'):
        events(b'data: \xff\xfe\n\n')


class Trickle(io.RawIOBase):
    """A body that hands out a few bytes per read, as a slow network would."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def read1(self, size: int = -1) -> bytes:
        piece, self.data = self.data[:self.step], self.data[self.step:]
        return piece


def test_lines_reassembled_across_reads():
    body = b'data: {"x": "' + b'y' * 50 + b'"}\n\ndata: [DONE]\n\n'
    assert list(oc.iter_lines(Trickle(body, 7))) == list(oc.iter_lines(io.BytesIO(body)))
    assert events(body)[-1] == (None, '[DONE]')


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def feed(acc: oc.StreamAccumulator, clock: Clock, at: float, body: dict) -> bool:
    clock.now = at
    return acc.feed(None, json.dumps(body))


def test_accumulator_times_text_not_role_chunks_and_merges_nvext():
    clock = Clock()
    acc = oc.StreamAccumulator(started=100.0, clock=clock)
    worker = {'worker_id': {'decode_worker_id': 12137302721990711142}}
    assert not feed(acc, clock, 100.010, {'id': 'c1', 'choices': [{'delta': {'role': 'assistant'}}], 'nvext': worker})
    feed(acc, clock, 100.025, {'choices': [{'delta': {'content': ' two words'}}], 'nvext': worker})
    feed(acc, clock, 100.030, {'choices': [{'delta': {'content': ' more'}, 'finish_reason': 'length'}],
                               'nvext': dict(worker, timing={'ttft_ms': 20.5, 'kv_hit_rate': 0.75})})
    feed(acc, clock, 100.031, {'choices': [], 'usage': {'completion_tokens': 3}})
    clock.now = 100.040
    assert acc.feed(None, '[DONE]') is True
    result = acc.result()
    assert result == {
        'id': 'c1', 'answer': ' two words more', 'ttft_ms': 25.0, 'first_chunk_ms': 10.0, 'total_ms': 40.0,
        'chunks': 4, 'content_chunks': 2, 'finish_reason': 'length', 'usage': {'completion_tokens': 3},
        'nvext': {'worker_id': {'decode_worker_id': 12137302721990711142},
                  'timing': {'ttft_ms': 20.5, 'kv_hit_rate': 0.75}},
    }


@pytest.mark.parametrize('given, expected', [
    ('http://127.0.0.1:8000', 'http://127.0.0.1:8000'),
    ('http://127.0.0.1:8000/', 'http://127.0.0.1:8000'),
    ('http://127.0.0.1:8000/v1/', 'http://127.0.0.1:8000'),
    (' https://gtc-2026.digitalocean.solutions/v1 ', 'https://gtc-2026.digitalocean.solutions'),
    ('https://gw.example/openai/v1', 'https://gw.example/openai'),
])
def test_base_url_normalised(given, expected):
    assert oc.normalize_base_url(given) == expected


def test_excerpt_keeps_short_text_and_cuts_long_text():
    assert oc.excerpt(b'short') == 'short'
    assert oc.excerpt('x' * 600) == 'x' * 500 + '...(100 more characters)'


def test_empty_content_warning_names_the_cause():
    assert 'usage counts 7 completion tokens' in oc.empty_content_warning('streamed', {'usage': {'completion_tokens': 7}})
    assert oc.empty_content_warning('chat', {'usage': None}) == 'the chat answer carried no text and usage counts no completion tokens'


class RecordingClient:
    """Stands in for OpenAIClient to test the order and summary of the checks."""

    base_url = 'http://h'

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.calls: list[str] = []

    def ensure_model_served(self, model: str) -> list[str]:
        self.calls.append('models')
        return [model]

    def chat(self, payload: dict) -> dict:
        self.calls.append('chat')
        return dict(answer='chat text', usage={'completion_tokens': 2}, nvext=None)

    def stream_chat(self, payload: dict) -> dict:
        self.calls.append('stream')
        return dict(answer='', ttft_ms=None, usage={'completion_tokens': 4, 'prompt_tokens_details': {'cached_tokens': 32}},
                    nvext={'timing': {'kv_hit_rate': 0.5, 'ttft_ms': 3.0}, 'worker_id': {'decode_worker_id': 9}})


def test_validation_runs_checks_in_order_and_summarises_the_last_completion():
    client = RecordingClient()
    check = oc.InferenceValidation(client, 'm', checks=['stream', 'chat', 'models'], extra_body={'max_tokens': 4})
    result = check.run()
    assert client.calls == ['models', 'chat', 'stream']
    assert check.payload['max_tokens'] == 4 and check.payload['nvext'] == {'extra_fields': ['timing', 'worker_id']}
    assert result['answer'] == 'chat text'
    assert (result['kv_hit_rate'], result['worker_id'], result['cached_tokens'], result['server_ttft_ms']) == (0.5, 9, 32, 3.0)
    assert result['empty_content'] is True
    assert check.warnings == [oc.empty_content_warning('streamed', result['stream'])]


def test_validation_needs_a_model_and_a_check():
    with pytest.raises(oc.InferenceError, match='model must not be empty'):
        oc.InferenceValidation(RecordingClient(), '')
    with pytest.raises(oc.InferenceError, match='checks must name at least one'):
        oc.InferenceValidation(RecordingClient(), 'm', checks=['nothing'])
