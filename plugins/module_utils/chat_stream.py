# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The collection's one parser of streamed OpenAI chat completions.

Server-sent events in; text, token counts, what Dynamo says about itself
(``nvext``) and the client's timings (TTFT, ITL) out. Three programs read
their streams through this file:

* the ``validate_inference`` module, through ``openai_client`` (AnsiballZ
  ships this file with the module, as it ships every collection module_utils
  the module imports);
* the load generator (``apps/loadgen``): ``gtc_loadgen/chat_stream.py`` there
  is a symbolic link to this file. A link, not a copy, so there is one text to
  change; ``pip install`` / ``pip wheel`` of apps/loadgen (setuptools copies
  the link's target into the build), ``pip install -e`` (Python follows the
  link at import) and the loadgen role's source copy
  (``roles/loadgen/files/sync_tree.py``, which copies file contents) all turn
  it into a real file. A container build needs a context in which the link is
  resolved: Docker sends a link that points outside its context as a link, so
  ``playbooks/images.yml`` builds from a copy of apps/loadgen with links followed;
* the benchmarks, which measure through the load generator's client.

So it depends on the Python standard library only (no ``ansible`` import:
the load generator runs without Ansible) and keeps to Python 3.8 syntax, the
oldest Python the module may run on.

Times are whatever the caller's clock says when a line arrived (seconds);
the caller subtracts its own start. The parser never reads a clock itself,
so a recorded stream replays to the same numbers.
"""

from __future__ import annotations

import json

EXCERPT_CHARS = 200


def excerpt(value, limit=EXCERPT_CHARS):
    """At most ``limit`` characters of ``value`` for an error message."""
    if isinstance(value, bytes):
        value = value.decode('utf-8', errors='replace')
    value = str(value)
    if len(value) > limit:
        return value[:limit] + '...(%d more characters)' % (len(value) - limit)
    return value


class StreamError(ValueError):
    """The bytes are not a valid OpenAI chat-completion event stream."""


class StreamServerError(StreamError):
    """The server reported an error inside the stream; ``detail`` is its message."""

    def __init__(self, msg, detail):
        super().__init__(msg)
        self.detail = detail


class EventDecoder:
    """Server-sent events from the lines of a ``text/event-stream`` body.

    Follows the WHATWG HTML standard's "Interpreting an event stream": a
    field line is ``name: value`` (one space after the colon dropped), a line
    starting with ``:`` is a comment (keep-alive), ``data`` lines accumulate
    and a blank line dispatches the event. Strict on purpose where the
    standard says "ignore": a line that is no SSE field at all (a bare JSON
    document, an HTML error page) raises StreamError, because a reader that
    skips garbage reports a broken stream as healthy.
    """

    FIELDS_IGNORED = ('id', 'retry')

    def __init__(self):
        self.line_number = 0
        self._event = None
        self._data = []
        self._at = None

    def feed(self, raw, at=None):
        """Take one line (bytes or str, with or without its line end).

        Returns ``(event, data, at)`` when the line completes an event, else
        None; ``at`` is the arrival time of the event's first data line.
        """
        self.line_number += 1
        if isinstance(raw, bytes):
            try:
                raw = raw.decode('utf-8')
            except UnicodeDecodeError as exc:
                raise StreamError('stream line %d is not UTF-8: %s' % (self.line_number, exc)) from exc
        line = raw.rstrip('\r\n')
        if not line:
            return self._dispatch()
        if line.startswith(':'):
            return None
        name, _sep, value = line.partition(':')
        if value.startswith(' '):
            value = value[1:]
        if name == 'data':
            if not self._data:
                self._at = at
            self._data.append(value)
        elif name == 'event':
            self._event = value
        elif name not in self.FIELDS_IGNORED:
            raise StreamError('stream line %d is not a server-sent event field: %s' % (self.line_number, excerpt(line)))
        return None

    def close(self):
        """The body ended: the last event, when it lacked its blank line, else None."""
        return self._dispatch()

    def _dispatch(self):
        event = (self._event, '\n'.join(self._data), self._at) if self._data else None
        self._event, self._data, self._at = None, [], None
        return event


def _merge(base, update):
    """Deep-merge ``update`` into ``base`` (Dynamo spreads ``nvext`` over chunks)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def dig(data, *keys):
    """``data[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


class ChatStream:
    """One streamed ``chat.completion``: feed it lines (or events, or chunks) as they arrive.

    ``content`` holds ``(arrival time, text)`` for every chunk that carried
    text; a role-only or empty chunk is a chunk but not a token. ``done`` is
    ``data: [DONE]`` seen; ``finished`` also accepts a finish reason (a server
    that closes without [DONE]). Dynamo's ``nvext`` (``worker_id`` on every
    chunk, ``timing`` on the finishing one) is merged over the chunks; the
    ``usage`` block (``stream_options.include_usage``) is the last one sent.
    """

    def __init__(self):
        self.decoder = EventDecoder()
        self.content = []
        self.chunks = 0
        self.first_chunk_at = None
        self.done = False
        self.finish_reason = None
        self.usage = None
        self.nvext = {}
        self.response_id = None

    # -- feeding ------------------------------------------------------------
    def feed_line(self, raw, at):
        """Take one raw line received at ``at``; True once ``data: [DONE]`` arrived."""
        event = self.decoder.feed(raw, at)
        if event is not None:
            self.feed_event(*event)
        return self.done

    def close(self):
        """The body ended; hand over an event that lacked its blank line. True when [DONE] was seen."""
        event = self.decoder.close()
        if event is not None:
            self.feed_event(*event)
        return self.done

    def feed_event(self, event, data, at):
        """Take one dispatched event; True once it was ``[DONE]``."""
        if data.strip() == '[DONE]':
            self.done = True
            return True
        number = self.chunks + 1
        if event == 'error':
            raise StreamServerError('the server sent an error event in the stream after %d chunks: %s'
                                    % (self.chunks, excerpt(data, 500)), detail=data)
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise StreamError('stream chunk %d is not JSON (%s): %s' % (number, exc, excerpt(data))) from exc
        if not isinstance(chunk, dict):
            raise StreamError('stream chunk %d is not a JSON object: %s' % (number, excerpt(data)))
        self.feed_chunk(chunk, at)
        return False

    def feed_chunk(self, chunk, at):
        """Take one decoded ``chat.completion.chunk`` object that arrived at ``at``."""
        number = self.chunks + 1
        if chunk.get('error') is not None:
            error = chunk['error']
            detail = error.get('message', json.dumps(error)) if isinstance(error, dict) else str(error)
            raise StreamServerError('the server reported an error in the stream after %d chunks: %s'
                                    % (self.chunks, excerpt(json.dumps(error), 500)), detail=detail)
        choices = chunk.get('choices')
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise StreamError('stream chunk %d has "choices" that is not a list: %s' % (number, excerpt(json.dumps(chunk))))
        if not all(isinstance(choice, dict) for choice in choices):
            raise StreamError('stream chunk %d has a choice that is not an object: %s' % (number, excerpt(json.dumps(chunk))))
        self.chunks = number
        if self.first_chunk_at is None:
            self.first_chunk_at = at
        self.response_id = self.response_id or chunk.get('id')
        for choice in choices:
            delta = choice.get('delta')
            text = delta.get('content') if isinstance(delta, dict) else None
            if isinstance(text, str) and text:
                self.content.append((at, text))
            if choice.get('finish_reason'):
                self.finish_reason = choice['finish_reason']
        if isinstance(chunk.get('usage'), dict):
            self.usage = chunk['usage']
        if isinstance(chunk.get('nvext'), dict):
            _merge(self.nvext, chunk['nvext'])

    # -- what the stream said -------------------------------------------------
    @property
    def text(self):
        return ''.join(text for _at, text in self.content)

    @property
    def finished(self):
        """The server ended the answer: ``[DONE]`` or a finish reason."""
        return self.done or self.finish_reason is not None

    @property
    def first_content_at(self):
        """Arrival of the first chunk that carried text (the first token), or None."""
        return self.content[0][0] if self.content else None

    @property
    def prompt_tokens(self):
        return dig(self.usage, 'prompt_tokens')

    @property
    def completion_tokens(self):
        return dig(self.usage, 'completion_tokens')

    @property
    def cached_tokens(self):
        """``usage.prompt_tokens_details.cached_tokens`` (Dynamo fills it in every routing mode)."""
        cached = dig(self.usage, 'prompt_tokens_details', 'cached_tokens')
        return None if cached is None else int(cached)

    @property
    def worker_id(self):
        """The worker that decoded (else prefilled) the answer, as a string, or None."""
        worker = dig(self.nvext, 'worker_id')
        if not isinstance(worker, dict):
            return None
        wid = worker.get('decode_worker_id', worker.get('prefill_worker_id'))
        return None if wid is None else str(wid)

    def server_timing(self, name):
        """A number of Dynamo's ``nvext.timing`` (``ttft_ms``, ``total_time_ms``, ``kv_hit_rate``), or None."""
        value = dig(self.nvext, 'timing', name)
        return None if value is None else float(value)

    # -- timings on the caller's clock ------------------------------------------
    def ttft_ms(self, started=0.0):
        """Time to first token: from ``started`` to the first chunk that carried text."""
        first = self.first_content_at
        return None if first is None else (first - started) * 1000.0

    def output_tokens(self):
        """Tokens generated: the server's count when it sent one, else one per text chunk."""
        return int(self.completion_tokens or 0) or len(self.content)

    def itl_ms(self):
        """Mean inter-token latency: (last token - first token) / (tokens - 1).

        The definition of aiperf and vLLM's benchmarks: a chunk that carries
        three tokens counts as three tokens, not as one slow one.
        """
        tokens = self.output_tokens()
        if len(self.content) < 2 or tokens < 2:
            return None
        return (self.content[-1][0] - self.content[0][0]) * 1000.0 / (tokens - 1)

    def itl_samples_ms(self):
        """Per-token gaps for a histogram: each chunk's gap shared by the tokens it carries."""
        if len(self.content) < 2:
            return []
        counts = attribute_tokens([text for _at, text in self.content], self.output_tokens())
        samples = []
        for i in range(1, len(self.content)):
            gap_ms = (self.content[i][0] - self.content[i - 1][0]) * 1000.0
            samples.extend([gap_ms / counts[i]] * counts[i])
        return samples

    def cache_hit(self):
        """Share of the prompt served from the KV cache (0..1): cached / prompt tokens, else the KV router's hit rate."""
        cached, prompt = self.cached_tokens, self.prompt_tokens
        if cached is not None and prompt:
            return min(1.0, cached / float(prompt))
        return self.server_timing('kv_hit_rate')


def attribute_tokens(texts, total):
    """Split ``total`` tokens over chunks, at least one each, in proportion to the words each carries."""
    count = len(texts)
    if count == 0:
        return []
    if total <= count:
        return [1] * count
    weights = [max(1, len(text.split())) for text in texts]
    if sum(weights) == total:
        return weights
    shares = [(total - count) * weight / float(sum(weights)) for weight in weights]
    counts = [1 + int(share) for share in shares]
    # The rounding remainder goes to the chunks with the largest fractions.
    order = sorted(range(count), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    for i in order[:total - sum(counts)]:
        counts[i] += 1
    return counts
