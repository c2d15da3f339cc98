# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A small client for OpenAI-compatible inference servers (Dynamo's frontend).

This is the engine behind the ``validate_inference`` module: it lists the
served models, sends a chat completion and a streaming chat completion, and
measures time to first token on the client's monotonic clock. The stream
itself is parsed by chat_stream.py, the parser the load generator and the
benchmarks use too.

It depends only on the Python standard library, ``ansible.module_utils`` and
this collection's module_utils, so the module runs on any controller or
target without ``requests``.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
import urllib.error

from ansible.module_utils.common.parameters import env_fallback
from ansible.module_utils.urls import ConnectionError as AnsibleConnectionError
from ansible.module_utils.urls import Request, make_context

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.chat_stream import ChatStream, EventDecoder, StreamError, dig
from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.chat_stream import excerpt as stream_excerpt

# The argument spec of the options documented in the
# do_solutions.gtc_demo.openai_http doc fragment; keep the two in step.
HTTP_ARG_SPEC = dict(
    api_key=dict(type='str', no_log=True, fallback=(env_fallback, ['GTC_DEMO_API_KEY'])),
    headers=dict(type='dict', default={}),
    timeout=dict(type='float', default=30.0),
    retries=dict(type='int', default=3),
    retry_delay=dict(type='float', default=2.0),
    validate_certs=dict(type='bool', default=True),
    ca_path=dict(type='path'),
    use_proxy=dict(type='bool', default=True),
)

# Statuses worth asking again: the server is starting, overloaded or a proxy
# in front of it had a transient failure. Other 4xx mean the request is wrong.
RETRY_STATUSES = frozenset((408, 425, 429, 500, 502, 503, 504))

CHECKS = ('models', 'chat', 'stream')
DEFAULT_PROMPT = 'Say hello in one short sentence.'
NVEXT_FIELDS = ['timing', 'worker_id']
EXCERPT_CHARS = 500
USER_AGENT = 'do_solutions.gtc_demo-validate_inference'


def excerpt(value, limit=EXCERPT_CHARS):
    """Return at most ``limit`` characters of a body for an error message."""
    return stream_excerpt(value, limit)


class InferenceError(Exception):
    """A check failed; ``msg`` says what went wrong, ``details`` go in the result."""

    retryable = False

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


class TransportError(InferenceError):
    """The server could not be reached or did not answer in time (retried)."""

    retryable = True


class HTTPStatusError(InferenceError):
    """The server answered with an HTTP error status."""

    def __init__(self, msg, status, **details):
        super().__init__(msg, status=status, **details)
        self.status = status
        self.retryable = status in RETRY_STATUSES


class ModelNotServed(InferenceError):
    """``/v1/models`` does not list the model (retried: workers register late)."""

    retryable = True


class MalformedResponse(InferenceError):
    """The answer is not what the OpenAI API promises (bad JSON, bad or cut stream)."""


def normalize_base_url(url):
    """``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/v1`` mean the same server."""
    url = (url or '').strip().rstrip('/')
    if url.endswith('/v1'):
        url = url[:-3]
    if not url.startswith(('http://', 'https://')):
        raise InferenceError("url must start with http:// or https://, got %r" % url)
    return url


def iter_sse_events(lines):
    """Yield ``(event, data)`` pairs from the byte lines of a text/event-stream.

    The decoding is chat_stream.EventDecoder's (the collection's one stream
    parser); its errors become MalformedResponse here.
    """
    decoder = EventDecoder()
    try:
        for raw in lines:
            event = decoder.feed(raw)
            if event is not None:
                yield event[0], event[1]
        event = decoder.close()
    except StreamError as exc:
        raise MalformedResponse(str(exc)) from exc
    if event is not None:
        # The last event lacked its blank line; hand it over and let the
        # caller decide whether the stream was complete.
        yield event[0], event[1]


def iter_lines(response, size=65536):
    """Yield the lines of a response body as they arrive.

    ``read1`` returns whatever has arrived instead of waiting for a full
    buffer (so TTFT is not delayed), and on a chunked body it raises
    IncompleteRead when the connection drops before the last chunk, where
    ``readline`` would report a clean end of file and hide the cut.
    """
    read = getattr(response, 'read1', None) or response.read
    pending = b''
    while True:
        data = read(size)
        if not data:
            break
        lines = (pending + data).split(b'\n')
        pending = lines.pop()
        for line in lines:
            yield line + b'\n'
    if pending:
        yield pending


class StreamAccumulator:
    """Collects the chunks of one streamed chat completion (chat_stream.ChatStream does the work).

    Times are measured from ``started`` (taken just before the request was
    sent) on the same monotonic clock, so TTFT includes connecting and the
    server's queueing and prefill, as a user would see it.
    """

    def __init__(self, started, clock):
        self.started = started
        self.clock = clock
        self.stream = ChatStream()

    @property
    def chunks(self):
        return self.stream.chunks

    @property
    def done(self):
        return self.stream.done

    @property
    def answer(self):
        return self.stream.text

    def feed(self, event, data):
        """Take one SSE event; return True once ``data: [DONE]`` arrived."""
        try:
            return self.stream.feed_event(event, data, self.clock())
        except StreamError as exc:
            raise MalformedResponse(str(exc)) from exc

    def result(self):
        stream = self.stream

        def since_start(moment):
            return None if moment is None else round((moment - self.started) * 1000.0, 3)

        return dict(
            id=stream.response_id,
            answer=stream.text,
            ttft_ms=since_start(stream.first_content_at),
            first_chunk_ms=since_start(stream.first_chunk_at),
            total_ms=since_start(self.clock()),
            chunks=stream.chunks,
            content_chunks=len(stream.content),
            finish_reason=stream.finish_reason,
            usage=stream.usage,
            nvext=stream.nvext or None,
        )


class OpenAIClient:
    """Talks to one OpenAI-compatible server; every call retries transient failures."""

    def __init__(self, base_url, api_key=None, headers=None, timeout=30.0, retries=3, retry_delay=2.0,
                 validate_certs=True, ca_path=None, use_proxy=True, clock=time.monotonic, sleep=time.sleep):
        if retries < 0:
            raise InferenceError('retries must be 0 or more, got %d' % retries)
        if timeout <= 0:
            raise InferenceError('timeout must be more than 0 seconds, got %s' % timeout)
        self.base_url = normalize_base_url(base_url)
        self.api_key = api_key
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = max(retry_delay, 0.0)
        self.clock = clock
        self.sleep = sleep
        self.attempts = {}
        # The TLS context is built once: Request would otherwise load the CA
        # store on every call (about 100 ms on a busy machine), and that time
        # would land inside the measured TTFT. decompress=False: a gzip reader
        # would buffer the event stream and hide when each chunk arrived.
        # use_netrc=False: credentials come from api_key/headers only.
        try:
            context = make_context(cafile=ca_path, validate_certs=validate_certs)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise InferenceError('cannot use ca_path %s: %s' % (ca_path, exc)) from exc
        self._request = Request(timeout=timeout, validate_certs=validate_certs, ca_path=ca_path, context=context,
                                use_proxy=use_proxy, decompress=False, use_netrc=False, http_agent=USER_AGENT)

    def url(self, path):
        return self.base_url + '/v1' + path

    def with_retries(self, step, call):
        """Run ``call`` up to ``retries + 1`` times while it fails with a retryable error."""
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            self.attempts[step] = attempt
            try:
                return call()
            except InferenceError as exc:
                if not exc.retryable or attempt == attempts:
                    if attempt > 1:
                        exc.msg = '%s (gave up after %d attempts)' % (exc.msg, attempt)
                    raise
            self.sleep(self.retry_delay)
        raise AssertionError('unreachable')  # pragma: no cover

    def _open(self, method, path, payload=None, accept='application/json'):
        url = self.url(path)
        headers = {'Accept': accept}
        headers.update(self.headers)
        data = None
        if payload is not None:
            headers['Content-Type'] = 'application/json'
            data = json.dumps(payload).encode('utf-8')
        if self.api_key:
            headers['Authorization'] = 'Bearer %s' % self.api_key
        try:
            return self._request.open(method, url, data=data, headers=headers)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read()
            except Exception:  # the body is only for the message
                body = b''
            raise HTTPStatusError('%s %s returned HTTP %d %s: %s' % (method, url, exc.code, exc.reason, excerpt(body) or '(empty body)'),
                                  status=exc.code, body=excerpt(body), request_url=url) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                # Asking again will not make the certificate valid.
                raise InferenceError('cannot reach %s: the TLS certificate was rejected (%s); set ca_path to the CA '
                                     'that signed it, or validate_certs=false for a test server'
                                     % (url, exc.reason.verify_message or exc.reason), request_url=url) from exc
            raise TransportError('cannot reach %s: %s' % (url, exc.reason), request_url=url) from exc
        except (socket.timeout, TimeoutError):
            raise TransportError('%s %s got no answer within %s seconds (timeout)' % (method, url, self.timeout), request_url=url) from None
        except (http.client.HTTPException, ssl.SSLError, OSError, AnsibleConnectionError) as exc:
            raise TransportError('cannot reach %s: %s: %s' % (url, type(exc).__name__, exc), request_url=url) from exc

    def _json(self, method, path, payload=None):
        url = self.url(path)
        response = self._open(method, path, payload)
        try:
            body = response.read()
        except (socket.timeout, TimeoutError):
            raise TransportError('%s %s sent headers but no body within %s seconds' % (method, url, self.timeout), request_url=url) from None
        except (http.client.HTTPException, OSError) as exc:
            raise MalformedResponse('%s %s: the answer was cut: %s: %s' % (method, url, type(exc).__name__, exc), request_url=url) from exc
        finally:
            response.close()
        try:
            return json.loads(body)
        except ValueError:
            raise MalformedResponse('%s %s did not answer with JSON: %s' % (method, url, excerpt(body) or '(empty body)'), request_url=url) from None

    def list_models(self):
        """Return the ids ``/v1/models`` lists (one attempt)."""
        url = self.url('/models')
        answer = self._json('GET', '/models')
        data = answer.get('data') if isinstance(answer, dict) else None
        if not isinstance(data, list) or not all(isinstance(m, dict) and 'id' in m for m in data):
            raise MalformedResponse('GET %s did not return an OpenAI model list: %s' % (url, excerpt(json.dumps(answer))), request_url=url)
        return [str(m['id']) for m in data]

    def ensure_model_served(self, model):
        """List the models until ``model`` is among them or the retries run out."""
        def attempt():
            served = self.list_models()
            if model not in served:
                raise ModelNotServed('model %r is not served by %s; it serves: %s'
                                     % (model, self.base_url, ', '.join(served) if served else '(no models)'),
                                     served_models=served)
            return served
        return self.with_retries('models', attempt)

    def chat(self, payload):
        """Send one non-streaming chat completion; return what it answered."""
        body = dict(payload, stream=False)

        def attempt():
            started = self.clock()
            answer = self._json('POST', '/chat/completions', body)
            latency = round((self.clock() - started) * 1000.0, 3)
            return parse_chat_completion(answer, self.url('/chat/completions'), latency)
        return self.with_retries('chat', attempt)

    def stream_chat(self, payload):
        """Send one streaming chat completion; return its text, timings and usage.

        Only failures before the stream starts are retried: a stream that
        breaks half-way is the defect this check exists to find.
        """
        body = dict(payload, stream=True, stream_options={'include_usage': True})
        url = self.url('/chat/completions')

        def attempt():
            started = self.clock()
            response = self._open('POST', '/chat/completions', body, accept='text/event-stream')
            return self._read_stream(response, url, started)
        return self.with_retries('stream', attempt)

    def _read_stream(self, response, url, started):
        accumulator = StreamAccumulator(started, self.clock)
        try:
            content_type = response.headers.get('Content-Type', '')
            if 'text/event-stream' not in content_type:
                raise MalformedResponse('POST %s was asked for a stream but answered with Content-Type %r: %s'
                                        % (url, content_type, excerpt(response.read())), request_url=url)
            deadline = started + self.timeout
            for event, data in iter_sse_events(iter_lines(response)):
                if accumulator.feed(event, data):
                    break
                if self.clock() > deadline:
                    raise TransportError('POST %s: the stream was still running after %s seconds (timeout) with %d chunks'
                                         % (url, self.timeout, accumulator.chunks), request_url=url)
        except (socket.timeout, TimeoutError):
            raise MalformedResponse('POST %s: the stream stalled: no data for %s seconds after %d chunks'
                                    % (url, self.timeout, accumulator.chunks), request_url=url, partial_answer=accumulator.answer) from None
        except (http.client.HTTPException, OSError) as exc:
            raise MalformedResponse('POST %s: the stream was cut after %d chunks (%s: %s)'
                                    % (url, accumulator.chunks, type(exc).__name__, exc), request_url=url,
                                    partial_answer=accumulator.answer) from exc
        except MalformedResponse as exc:
            exc.details.setdefault('request_url', url)
            exc.details.setdefault('partial_answer', accumulator.answer)
            raise
        finally:
            response.close()
        if not accumulator.done:
            raise MalformedResponse('POST %s: the stream ended without "data: [DONE]" after %d chunks (cut mid-stream?)'
                                    % (url, accumulator.chunks), request_url=url, partial_answer=accumulator.answer)
        return accumulator.result()


def parse_chat_completion(answer, url, latency_ms):
    """Check the shape of a chat.completion object and pick out what we report."""
    choices = answer.get('choices') if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse('POST %s did not return a chat completion with choices: %s'
                                % (url, excerpt(json.dumps(answer))), request_url=url)
    message = choices[0].get('message')
    if not isinstance(message, dict):
        raise MalformedResponse('POST %s returned a choice without a message: %s' % (url, excerpt(json.dumps(answer))), request_url=url)
    content = message.get('content')
    return dict(
        id=answer.get('id'),
        answer=content if isinstance(content, str) else '',
        finish_reason=choices[0].get('finish_reason'),
        latency_ms=latency_ms,
        usage=answer.get('usage') if isinstance(answer.get('usage'), dict) else None,
        nvext=answer.get('nvext') if isinstance(answer.get('nvext'), dict) else None,
    )


def empty_content_warning(kind, outcome):
    """The warning for a completion without text; it names the likely cause."""
    tokens = dig(outcome, 'usage', 'completion_tokens')
    if tokens:
        return ('the %s answer carried no text although usage counts %s completion tokens: the served '
                'tokenizer decodes the generated token ids to nothing (for example a small byte-level '
                'vocabulary behind a mocker engine)' % (kind, tokens))
    return 'the %s answer carried no text and usage counts no completion tokens' % kind


class InferenceValidation:
    """The checks of the validate_inference module, in order: models, chat, stream.

    ``result`` fills in as the checks pass, so a failure can still report what
    was seen before it.
    """

    def __init__(self, client, model, messages=None, prompt=None, max_tokens=16, checks=CHECKS,
                 request_nvext=True, extra_body=None):
        if not model:
            raise InferenceError('model must not be empty')
        self.client = client
        self.model = model
        self.checks = [c for c in CHECKS if c in (checks or CHECKS)]
        if not self.checks:
            raise InferenceError('checks must name at least one of: %s' % ', '.join(CHECKS))
        self.payload = dict(model=model, messages=messages or [dict(role='user', content=prompt or DEFAULT_PROMPT)],
                            max_tokens=max_tokens)
        if request_nvext:
            self.payload['nvext'] = dict(extra_fields=list(NVEXT_FIELDS))
        self.payload.update(extra_body or {})
        self.warnings = []
        self.result = dict(changed=False, url=client.base_url, model=model, attempts=client.attempts)

    def run(self):
        result = self.result
        if 'models' in self.checks:
            result['models'] = self.client.ensure_model_served(self.model)
        if 'chat' in self.checks:
            result['chat'] = self.client.chat(self.payload)
        if 'stream' in self.checks:
            result['stream'] = self.client.stream_chat(self.payload)
        self._summarise()
        return result

    def _summarise(self):
        result = self.result
        chat, stream = result.get('chat'), result.get('stream')
        primary = chat or stream
        if primary is not None:
            result['answer'] = primary['answer']
        latest = stream or chat
        if latest is not None:
            result['usage'] = latest['usage']
            result['cached_tokens'] = dig(latest, 'usage', 'prompt_tokens_details', 'cached_tokens')
            result['nvext'] = latest['nvext']
            result['worker_id'] = dig(latest, 'nvext', 'worker_id', 'decode_worker_id')
            result['server_ttft_ms'] = dig(latest, 'nvext', 'timing', 'ttft_ms')
            result['kv_hit_rate'] = dig(latest, 'nvext', 'timing', 'kv_hit_rate')
        if stream is not None:
            result['ttft_ms'] = stream['ttft_ms']
        empty = []
        for kind, outcome in (('chat', chat), ('streamed', stream)):
            if outcome is not None and not outcome['answer']:
                empty.append(kind)
                self.warnings.append(empty_content_warning(kind, outcome))
        result['empty_content'] = bool(empty)
        return result
