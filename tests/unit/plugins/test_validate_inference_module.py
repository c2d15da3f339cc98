"""validate_inference against a real HTTP server on 127.0.0.1 playing OpenAI/Dynamo answers."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from openai_fake_server import MODEL, FakeOpenAI, Reply, chunk, dynamo_routes, fixture_text, models_body, sse

from helpers import run_module_adhoc

from ansible_collections.do_solutions.gtc_demo.plugins.modules import validate_inference

CHAT = '/v1/chat/completions'
STREAM = '/v1/chat/completions#stream'
USAGE = {'prompt_tokens': 20, 'completion_tokens': 5, 'total_tokens': 25, 'prompt_tokens_details': {'cached_tokens': 0}}


def warnings(result: dict[str, Any]) -> list[str]:
    """The module's warnings; ansible-core 2.19 modules send them as structured events."""
    return [w['event']['msg'] if isinstance(w, dict) else w for w in result.get('warnings', [])]


def args(fake: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    # retry_delay is short so the retry tests stay fast; timeout bounds a hang.
    return dict(dict(url=fake.url, model=MODEL, retries=2, retry_delay=0.05, timeout=5), **extra)


def plain_chat(content: str = ' Hello there.') -> Reply:
    return Reply(body=json.dumps({
        'id': 'chatcmpl-1', 'object': 'chat.completion', 'model': MODEL,
        'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': content}, 'finish_reason': 'stop'}],
        'usage': USAGE}).encode())


def openai_routes(fake: FakeOpenAI, stream: Reply, chat: Reply | None = None) -> FakeOpenAI:
    return (fake.on('GET', '/v1/models', Reply(body=models_body(MODEL)))
            .on('POST', CHAT, chat or plain_chat())
            .on('POST', STREAM, stream))


def test_recorded_dynamo_kv_frontend(fake_openai, run_module):
    dynamo_routes(fake_openai)
    recorded_chat = json.loads(fixture_text('dynamo_kv_chat.json'))

    result = run_module(validate_inference, args(fake_openai))

    assert not result.get('failed'), result
    assert result['changed'] is False
    assert result['models'] == [MODEL]
    assert result['answer'] == recorded_chat['choices'][0]['message']['content']
    assert result['stream']['answer'].split() and len(result['stream']['answer'].split()) == 5
    assert result['stream']['content_chunks'] == 5
    assert result['stream']['finish_reason'] == 'length'
    assert result['ttft_ms'] > 0
    assert result['stream']['total_ms'] >= result['ttft_ms']
    assert result['usage']['completion_tokens'] == 5
    assert result['cached_tokens'] == 0
    # nvext is spread over the chunks: worker ids on each, timing on the last.
    assert isinstance(result['worker_id'], int) and result['worker_id'] > 0
    assert result['worker_id'] == result['nvext']['worker_id']['decode_worker_id']
    assert result['kv_hit_rate'] == 0.0
    assert result['server_ttft_ms'] == result['nvext']['timing']['ttft_ms'] > 0
    assert result['chat']['nvext']['worker_id']['decode_worker_id'] == recorded_chat['nvext']['worker_id']['decode_worker_id']
    assert result['empty_content'] is False
    assert result['attempts'] == {'models': 1, 'chat': 1, 'stream': 1}
    assert 'warnings' not in result

    # What went over the wire: both completions ask for Dynamo's extra fields,
    # the stream also for usage.
    chat_request, stream_request = (s.body for s in fake_openai.requests('/v1/chat/completions'))
    assert chat_request['nvext'] == {'extra_fields': ['timing', 'worker_id']}
    assert chat_request['stream'] is False and chat_request['max_tokens'] == 16
    assert chat_request['messages'] == [{'role': 'user', 'content': 'Say hello in one short sentence.'}]
    assert stream_request['stream'] is True and stream_request['stream_options'] == {'include_usage': True}
    assert stream_request['nvext'] == chat_request['nvext']


def test_round_robin_frontend_has_no_kv_hit_rate(fake_openai, run_module):
    dynamo_routes(fake_openai, stream_fixture='dynamo_round_robin_stream.sse')
    result = run_module(validate_inference, args(fake_openai, checks=['models', 'stream']))
    assert not result.get('failed'), result
    assert 'chat' not in result and fake_openai.requests(CHAT, stream=False) == []
    assert result['answer'] == result['stream']['answer'] != ''
    assert result['worker_id'] > 0
    assert result['kv_hit_rate'] is None
    assert result['server_ttft_ms'] > 0


def test_plain_openai_server_without_nvext(fake_openai, run_module):
    openai_routes(fake_openai, Reply(stream=sse(chunk(role='assistant', content=''), chunk(' Hi'), chunk('.'),
                                                chunk(finish_reason='stop'), chunk(usage=USAGE, choices=False))))
    result = run_module(validate_inference, args(fake_openai, request_nvext=False, prompt='hi',
                                                 max_tokens=3, extra_body={'temperature': 0}))
    assert not result.get('failed'), result
    assert result['answer'] == ' Hello there.'
    assert result['stream']['answer'] == ' Hi.'
    assert result['nvext'] is None and result['worker_id'] is None and result['kv_hit_rate'] is None
    for seen in fake_openai.requests('/v1/chat/completions'):
        assert 'nvext' not in seen.body
        assert seen.body['temperature'] == 0 and seen.body['max_tokens'] == 3
        assert seen.body['messages'] == [{'role': 'user', 'content': 'hi'}]


def test_multi_token_chunks_and_ttft_from_first_text(fake_openai, run_module):
    # A role-only chunk first, then chunks of several words each, 0.1 s apart:
    # TTFT is the first chunk with text, not the first chunk.
    stream = sse(chunk(role='assistant'), chunk(' Welcome to the'), chunk(' booth, have'), chunk(' a look.'),
                 chunk(finish_reason='stop', nvext={'timing': {'ttft_ms': 90.0}}), chunk(usage=USAGE, choices=False))
    openai_routes(fake_openai, Reply(stream=stream, delay=0.1))
    result = run_module(validate_inference, args(fake_openai))
    assert not result.get('failed'), result
    s = result['stream']
    assert s['answer'] == ' Welcome to the booth, have a look.'
    assert (s['chunks'], s['content_chunks']) == (6, 3)
    assert 100 <= s['first_chunk_ms'] < s['ttft_ms'] < s['total_ms']
    assert s['ttft_ms'] >= 200  # two chunks of 0.1 s before the first text
    assert result['server_ttft_ms'] == 90.0 and result['worker_id'] is None


def test_stream_without_text_but_with_usage_fails_with_a_warning(fake_openai, run_module):
    # What Dynamo's mocker streams when its tokenizer decodes every id to ''.
    empty = sse(chunk(role='assistant', content=''), chunk(''), chunk(''), chunk(finish_reason='length'),
                chunk(usage=USAGE, choices=False))
    openai_routes(fake_openai, Reply(stream=empty))
    result = run_module(validate_inference, args(fake_openai))
    assert result['failed'] is True
    assert result['empty_content'] is True
    assert 'streamed answer carried no text although usage counts 5 completion tokens' in result['msg']
    assert 'allow_empty_content' in result['msg']
    assert any('usage counts 5 completion tokens' in w for w in warnings(result))
    assert result['stream']['answer'] == '' and result['ttft_ms'] is None


def test_stream_without_text_is_allowed_on_request(fake_openai, run_module):
    empty = sse(chunk(role='assistant', content=''), chunk(''), chunk(finish_reason='length'), chunk(usage=USAGE, choices=False))
    openai_routes(fake_openai, Reply(stream=empty), chat=plain_chat(''))
    result = run_module(validate_inference, args(fake_openai, allow_empty_content=True))
    assert not result.get('failed'), result
    assert result['empty_content'] is True
    assert len(warnings(result)) == 2
    assert all('no text' in w for w in warnings(result))


@pytest.mark.parametrize('stream, content_type, expected', [
    (sse(chunk(' Hi'), b'data: {"id": "x", "choices": [\n\n'), None, 'stream chunk 2 is not JSON'),
    (sse(chunk(' Hi'), b'{"id": "x", "choices": []}\n\n'), None, 'stream line 3 is not a server-sent event field'),
    (sse(chunk(' Hi'), b'data: [1, 2]\n\n'), None, 'stream chunk 2 is not a JSON object'),
    (sse(chunk(' Hi'), b'event: error\ndata: {"message": "engine died"}\n\n'), None, 'error event in the stream after 1 chunks'),
    (sse(chunk(' Hi'), b'data: {"error": {"message": "overloaded"}}\n\n'), None, 'reported an error in the stream'),
    (sse(b'data: {"choices": {"delta": 1}}\n\n'), None, '"choices" that is not a list'),
    (sse(chunk(' Hi')), 'application/json', "answered with Content-Type 'application/json'"),
])
def test_malformed_stream_fails_and_names_the_fault(fake_openai, run_module, stream, content_type, expected):
    openai_routes(fake_openai, Reply(stream=stream, content_type=content_type))
    result = run_module(validate_inference, args(fake_openai))
    assert result['failed'] is True
    assert expected in result['msg'], result['msg']
    assert result['request_url'] == fake_openai.url + '/v1/chat/completions'
    # A broken stream is not retried: that is the defect being looked for.
    assert result['attempts']['stream'] == 1
    assert len(fake_openai.requests('/v1/chat/completions', stream=True)) == 1
    assert result['chat']['answer'] == ' Hello there.'  # what passed before is still reported


def test_stream_cut_mid_transfer(fake_openai, run_module):
    # The connection drops inside the chunked body: no terminating chunk.
    openai_routes(fake_openai, Reply(stream=sse(chunk(' Hello'), chunk(' there'), done=False), cut=True))
    result = run_module(validate_inference, args(fake_openai))
    assert result['failed'] is True
    assert 'the stream was cut after 2 chunks' in result['msg'], result['msg']
    assert result['partial_answer'] == ' Hello there'


def test_stream_that_ends_without_done(fake_openai, run_module):
    # A clean end of the HTTP body, but the event stream never said [DONE].
    openai_routes(fake_openai, Reply(stream=sse(chunk(' Hello'), chunk(finish_reason='length'), done=False)))
    result = run_module(validate_inference, args(fake_openai))
    assert result['failed'] is True
    assert 'ended without "data: [DONE]" after 2 chunks' in result['msg'], result['msg']
    assert result['partial_answer'] == ' Hello'


def test_stream_that_stalls_hits_the_timeout(fake_openai, run_module):
    openai_routes(fake_openai, Reply(stream=sse(chunk(' Hello'), chunk(' there')), delay=1.5))
    started = time.monotonic()
    result = run_module(validate_inference, args(fake_openai, timeout=0.5, retries=0))
    assert time.monotonic() - started < 5
    assert result['failed'] is True
    assert 'timeout' in result['msg'] or 'stalled' in result['msg'], result['msg']


def test_server_error_is_retried_then_succeeds(fake_openai, run_module):
    error = Reply(status=500, body=b'{"message":"engine not ready"}')
    openai_routes(fake_openai, Reply(stream=sse(chunk(' Hi'), chunk(usage=USAGE, choices=False))),
                  chat=plain_chat())
    fake_openai.on('POST', CHAT, error, error, plain_chat())
    result = run_module(validate_inference, args(fake_openai, retries=2))
    assert not result.get('failed'), result
    assert result['attempts'] == {'models': 1, 'chat': 3, 'stream': 1}
    assert len(fake_openai.requests('/v1/chat/completions', stream=False)) == 3


def test_server_error_that_persists_fails_with_status_and_body(fake_openai, run_module):
    openai_routes(fake_openai, Reply(stream=sse(chunk(' Hi'))),
                  chat=Reply(status=503, body=b'{"message":"no workers available","code":503}'))
    result = run_module(validate_inference, args(fake_openai, retries=2))
    assert result['failed'] is True
    assert result['status'] == 503
    assert 'returned HTTP 503' in result['msg'] and 'no workers available' in result['msg']
    assert 'gave up after 3 attempts' in result['msg']
    assert result['body'] == '{"message":"no workers available","code":503}'
    assert result['attempts']['chat'] == 3


def test_not_found_is_not_retried(fake_openai, run_module):
    openai_routes(fake_openai, Reply(stream=sse(chunk(' Hi'))),
                  chat=Reply(status=404, body=fixture_text('dynamo_model_not_found.json').encode()))
    result = run_module(validate_inference, args(fake_openai, retries=3))
    assert result['failed'] is True
    assert result['status'] == 404 and 'Model not found' in result['msg']
    assert result['attempts']['chat'] == 1
    assert 'gave up' not in result['msg']


def test_long_error_body_is_cut_to_an_excerpt(fake_openai, run_module):
    fake_openai.on('GET', '/v1/models', Reply(status=400, body=b'x' * 5000))
    result = run_module(validate_inference, args(fake_openai))
    assert result['failed'] is True
    assert len(result['msg']) < 800 and '4500 more characters' in result['msg']


def test_model_not_served_lists_the_served_ones(fake_openai, run_module):
    fake_openai.on('GET', '/v1/models', Reply(body=models_body('meta/other-model', 'tiny')))
    result = run_module(validate_inference, args(fake_openai, retries=1))
    assert result['failed'] is True
    assert result['msg'].startswith("model '%s' is not served by %s; it serves: meta/other-model, tiny" % (MODEL, fake_openai.url))
    assert result['served_models'] == ['meta/other-model', 'tiny']
    assert result['attempts'] == {'models': 2}
    assert fake_openai.requests('/v1/chat/completions') == []


def test_model_that_registers_late_is_waited_for(fake_openai, run_module):
    dynamo_routes(fake_openai)
    fake_openai.on('GET', '/v1/models', Reply(body=models_body()), Reply(body=models_body()),
                   Reply(body=fixture_text('dynamo_models.json').encode()))
    result = run_module(validate_inference, args(fake_openai, retries=5))
    assert not result.get('failed'), result
    assert result['attempts']['models'] == 3


def test_models_answer_that_is_not_a_model_list(fake_openai, run_module):
    fake_openai.on('GET', '/v1/models', Reply(body=b'<html>gateway</html>', content_type='text/html'))
    result = run_module(validate_inference, args(fake_openai))
    assert result['failed'] is True
    assert 'did not answer with JSON: <html>gateway</html>' in result['msg']


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_unreachable_port(run_module):
    url = 'http://127.0.0.1:%d/v1' % unused_port()
    started = time.monotonic()
    result = run_module(validate_inference, dict(url=url, model=MODEL, retries=2, retry_delay=0.2))
    elapsed = time.monotonic() - started
    assert result['failed'] is True
    assert result['msg'].startswith('cannot reach %s/models' % url), result['msg']
    assert 'Connection refused' in result['msg'] and 'gave up after 3 attempts' in result['msg']
    assert result['attempts'] == {'models': 3}
    assert 0.4 <= elapsed < 5  # two waits of retry_delay between three tries


def test_https_with_a_certificate_nobody_signed_fails_at_once(fake_openai_tls, run_module):
    fake = fake_openai_tls[0]
    dynamo_routes(fake)
    result = run_module(validate_inference, args(fake, retries=3))
    assert result['failed'] is True
    assert result['msg'].startswith('cannot reach %s/v1/models: the TLS certificate was rejected' % fake.url), result['msg']
    assert 'self-signed certificate' in result['msg'] and 'ca_path' in result['msg']
    assert result['attempts'] == {'models': 1}  # a bad certificate is not transient


@pytest.mark.parametrize('tls_args', ['ca_path', 'validate_certs'])
def test_https_with_ca_path_or_without_verification(fake_openai_tls, run_module, tls_args):
    fake, cert = fake_openai_tls
    dynamo_routes(fake)
    extra = dict(ca_path=str(cert)) if tls_args == 'ca_path' else dict(validate_certs=False)
    result = run_module(validate_inference, args(fake, **extra))
    assert not result.get('failed'), result
    assert result['url'].startswith('https://') and result['answer'] and result['ttft_ms'] > 0


def test_unusable_ca_path_is_named(fake_openai_tls, run_module, tmp_path):
    fake = fake_openai_tls[0]
    bogus = tmp_path / 'not-a-cert.pem'
    bogus.write_text('hello')
    result = run_module(validate_inference, args(fake, ca_path=str(bogus)))
    assert result['failed'] is True
    assert result['msg'].startswith('cannot use ca_path %s' % bogus), result['msg']
    assert fake.seen == []


def test_check_mode_still_asks_and_changes_nothing(fake_openai, run_module):
    dynamo_routes(fake_openai)
    result = run_module(validate_inference, args(fake_openai, _ansible_check_mode=True))
    assert not result.get('failed'), result
    assert result['changed'] is False and result['answer']
    assert len(fake_openai.requests('/v1/chat/completions')) == 2


def test_api_key_is_sent_but_never_returned(fake_openai, run_module):
    dynamo_routes(fake_openai)
    secret = 'sk-do-not-print-0123456789'
    result = run_module(validate_inference, args(fake_openai, api_key=secret, headers={'X-Booth': 'gtc'}))
    assert not result.get('failed'), result
    assert secret not in json.dumps(result)
    for seen in fake_openai.seen:
        assert seen.headers['Authorization'] == 'Bearer ' + secret
        assert seen.headers['X-Booth'] == 'gtc'


def test_api_key_from_the_environment(fake_openai, run_module, monkeypatch):
    dynamo_routes(fake_openai)
    monkeypatch.setenv('GTC_DEMO_API_KEY', 'env-token-42')
    result = run_module(validate_inference, args(fake_openai))
    assert not result.get('failed'), result
    assert {s.headers['Authorization'] for s in fake_openai.seen} == {'Bearer env-token-42'}


@pytest.mark.parametrize('extra, expected', [
    (dict(prompt='a', messages=[{'role': 'user', 'content': 'b'}]), 'mutually exclusive'),
    (dict(max_tokens=0), 'max_tokens must be 1 or more'),
    (dict(retries=-1), 'retries must be 0 or more'),
    (dict(url='127.0.0.1:8000'), 'url must start with http:// or https://'),
    (dict(checks=['everything']), 'value of checks must be one or more of'),
])
def test_bad_options_fail_before_any_request(fake_openai, run_module, extra, expected):
    result = run_module(validate_inference, args(fake_openai, **extra))
    assert result['failed'] is True
    assert expected in result['msg'], result['msg']
    assert fake_openai.seen == []


def test_runs_through_ansible_by_its_fqcn(fake_openai):
    """The real path: ansible packs the module and its module_utils with AnsiballZ."""
    dynamo_routes(fake_openai)
    result = run_module_adhoc('do_solutions.gtc_demo.validate_inference', dict(url=fake_openai.url, model=MODEL, retries=0),
                              timeout=120)
    assert not result.get('failed'), result
    assert result['changed'] is False
    assert result['models'] == [MODEL]
    assert result['ttft_ms'] > 0 and result['kv_hit_rate'] == 0.0
    assert result['worker_id'] == result['nvext']['worker_id']['decode_worker_id']
