"""A real HTTP server on 127.0.0.1 that plays scripted OpenAI-compatible answers.

The validate_inference tests talk to it over real sockets, so the module's
HTTP stack (ansible.module_utils.urls, http.client's chunked decoding,
timeouts, refused connections) runs exactly as it does against Dynamo.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / 'fixtures'
MODEL = 'nvidia/Llama-3.1-70B-Instruct-FP8'


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding='utf-8')


def sse_events(text: str) -> list[bytes]:
    """Split a recorded event stream into its events (each with its blank line)."""
    return [(block + '\n\n').encode() for block in text.split('\n\n') if block.strip()]


def sse(*chunks: Any, done: bool = True) -> list[bytes]:
    """Build an event stream: dicts become ``data: <json>`` events, bytes pass as they are."""
    parts = [c if isinstance(c, bytes) else ('data: %s\n\n' % json.dumps(c)).encode() for c in chunks]
    if done:
        parts.append(b'data: [DONE]\n\n')
    return parts


def chunk(content: str | None = None, finish_reason: str | None = None, role: str | None = None,
          usage: dict | None = None, nvext: dict | None = None, choices: bool = True) -> dict:
    """One chat.completion.chunk as Dynamo sends it."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta['content'] = content
    if role is not None:
        delta['role'] = role
    body: dict[str, Any] = {
        'id': 'chatcmpl-test', 'object': 'chat.completion.chunk', 'created': 1, 'model': MODEL,
        'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish_reason, 'logprobs': None}] if choices else [],
    }
    if usage is not None:
        body['usage'] = usage
    if nvext is not None:
        body['nvext'] = nvext
    return body


def models_body(*names: str) -> bytes:
    return json.dumps({'object': 'list', 'data': [
        {'id': n, 'object': 'model', 'created': 1, 'owned_by': 'nvidia'} for n in names]}).encode()


@dataclass
class Reply:
    """One scripted answer.

    ``stream`` parts are sent as HTTP/1.1 chunks with ``delay`` seconds before
    each; ``cut`` drops the connection after them without the terminating
    zero-length chunk, which is what a crashed frontend looks like on the wire.
    """

    status: int = 200
    body: bytes | None = None
    stream: list[bytes] | None = None
    content_type: str | None = None
    delay: float = 0.0
    cut: bool = False


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeOpenAI:
    """Routes ``(method, path)`` to a list of replies; the last one repeats.

    A streaming request's path gets ``#stream`` appended, so
    ``/v1/chat/completions#stream`` scripts the stream and
    ``/v1/chat/completions`` the plain completion.
    """

    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    tls: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return '%s://127.0.0.1:%d' % ('https' if self.tls else 'http', self.server.server_address[1])

    def on(self, method: str, path: str, *replies: Reply) -> 'FakeOpenAI':
        self.routes[(method, path)] = list(replies)
        return self

    def next_reply(self, method: str, path: str) -> Reply:
        replies = self.routes.get((method, path))
        if not replies:
            return Reply(status=404, body=json.dumps({'message': 'Route not found: %s %s' % (method, path),
                                                      'type': 'Not Found', 'code': 404}).encode())
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def requests(self, path: str, stream: bool | None = None) -> list[Seen]:
        return [s for s in self.seen if s.path == path
                and (stream is None or bool(isinstance(s.body, dict) and s.body.get('stream')) == stream)]

    def start(self) -> 'FakeOpenAI':
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'
            disable_nagle_algorithm = True  # else each small chunk waits for a delayed ACK

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

            def _answer(self) -> None:
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                body_in = json.loads(raw) if raw else None
                fake.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body_in))
                # Streaming and plain completions share a path; route them apart.
                route = self.path + ('#stream' if isinstance(body_in, dict) and body_in.get('stream') else '')
                reply = fake.next_reply(self.command, route)
                if reply.stream is None:
                    body = reply.body or b''
                    self.send_response(reply.status)
                    self.send_header('Content-Type', reply.content_type or 'application/json')
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(reply.status)
                self.send_header('Content-Type', reply.content_type or 'text/event-stream')
                self.send_header('Transfer-Encoding', 'chunked')
                self.end_headers()
                self.wfile.flush()
                for part in reply.stream:
                    if reply.delay:
                        time.sleep(reply.delay)
                    self.wfile.write(b'%x\r\n%s\r\n' % (len(part), part))
                    self.wfile.flush()
                if reply.cut:
                    self.close_connection = True
                    return
                self.wfile.write(b'0\r\n\r\n')

            do_GET = _answer
            do_POST = _answer

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.02}, name='fake-openai',
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def dynamo_routes(fake: FakeOpenAI, stream_fixture: str = 'dynamo_kv_stream.sse') -> FakeOpenAI:
    """The answers recorded from a real Dynamo 1.6.1 KV frontend with two mocker workers."""
    return (fake
            .on('GET', '/v1/models', Reply(body=fixture_text('dynamo_models.json').encode()))
            .on('POST', '/v1/chat/completions', Reply(body=fixture_text('dynamo_kv_chat.json').encode()))
            .on('POST', '/v1/chat/completions#stream', Reply(stream=sse_events(fixture_text(stream_fixture)))))


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 and the PEM file of its self-signed certificate.

    Built with ``cryptography``, which ansible-core already depends on.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'gtc-demo test')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / 'cert.pem', directory / 'key.pem'
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file
