"""The presenter token: what guards every request that changes the booth.

Reads (the page, /api/state, /metrics, the conversation viewer, /static,
/healthz) stay open for the audience; every other method (POST, PUT, PATCH,
DELETE) needs ``Authorization: Bearer <token>`` when a token is configured.
The token comes from the environment, never from the command line (argv shows
in ``ps`` and in supervisord's logs): ``GTC_LOADGEN_PRESENTER_TOKEN``, or the
file that ``GTC_LOADGEN_PRESENTER_TOKEN_FILE`` names (mode 0600, the local
role's way of keeping it out of supervisord's program file). No token
configured means open controls, the local default (the app binds 127.0.0.1).

Tokens are compared in constant time (``hmac.compare_digest``), refusals are
logged with the client's address and the path only, and wrong tokens are
rate-limited per client address by a small token bucket: once it is empty the
address gets 429 with Retry-After and no comparison is made, so guesses stop
telling right from wrong.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

TOKEN_ENV = "GTC_LOADGEN_PRESENTER_TOKEN"
TOKEN_FILE_ENV = "GTC_LOADGEN_PRESENTER_TOKEN_FILE"
OPEN_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Wrong tokens an address may send at once, and how fast it earns another.
BURST = 5
REFILL_PER_S = 0.2
# Addresses remembered; the oldest is forgotten first (a flood of addresses cannot grow memory).
MAX_CLIENTS = 4096


class TokenConfigError(ValueError):
    """The token's file is named but cannot be used; the app refuses to start rather than run open."""


def token_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The configured token, or None for open controls.

    ``GTC_LOADGEN_PRESENTER_TOKEN`` wins; else the file ``GTC_LOADGEN_PRESENTER_TOKEN_FILE`` names
    (surrounding whitespace dropped). A named file that is missing or empty is an error, not "no
    token": a lost file must not open the controls.
    """
    env = os.environ if environ is None else environ
    value = env.get(TOKEN_ENV, "").strip()
    if value:
        return value
    path = env.get(TOKEN_FILE_ENV, "").strip()
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenConfigError(f"{TOKEN_FILE_ENV} names {path}, which cannot be read: {exc.strerror}") from None
    if not value:
        raise TokenConfigError(f"{TOKEN_FILE_ENV} names {path}, which is empty")
    return value


@dataclass
class _Bucket:
    tokens: float
    at: float


class FailureLimiter:
    """A token bucket per client address, spent by wrong or missing tokens only."""

    def __init__(self, burst: int = BURST, refill_per_s: float = REFILL_PER_S, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.refill, self.max_clients, self.clock = burst, refill_per_s, max_clients, clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, client: str) -> _Bucket:
        now = self.clock()
        b = self._buckets.get(client)
        if b is None:
            b = self._buckets[client] = _Bucket(float(self.burst), now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.refill)
            b.at = now
            self._buckets.move_to_end(client)
        return b

    def retry_after(self, client: str) -> int:
        """0 when ``client`` may try a token now, else whole seconds until it may."""
        b = self._bucket(client)
        return 0 if b.tokens >= 1.0 else max(1, math.ceil((1.0 - b.tokens) / self.refill))

    def failed(self, client: str) -> None:
        b = self._bucket(client)
        b.tokens = max(0.0, b.tokens - 1.0)


def _refusal(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "auth": code}, status=status, headers=headers)


class PresenterAuth:
    """The check, as an aiohttp middleware (``middleware``) and a flag for /api/state (``required``)."""

    def __init__(self, token: str | None, limiter: FailureLimiter | None = None) -> None:
        self._token = token.encode("utf-8") if token else None
        self.limiter = limiter or FailureLimiter()

    @property
    def required(self) -> bool:
        return self._token is not None

    def refusal(self, request: web.Request) -> web.Response | None:
        """None when ``request`` may go on, else the 401 or 429 to answer with."""
        if self._token is None or request.method in OPEN_METHODS:
            return None
        client = request.remote or "unknown"
        wait = self.limiter.retry_after(client)
        if wait:
            log.warning("presenter token refused: too many wrong tokens from %s (%s %s); retry in %d s",
                        client, request.method, request.path, wait)
            return _refusal(429, "rate_limited", f"too many wrong presenter tokens from this address: "
                            f"try again in {wait} s", {"Retry-After": str(wait)})
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            self.limiter.failed(client)
            log.warning("presenter token missing from %s for %s %s", client, request.method, request.path)
            return _refusal(401, "required", "presenter token required: this control needs "
                            "'Authorization: Bearer <token>'", {"WWW-Authenticate": 'Bearer realm="gtc-loadgen"'})
        if not hmac.compare_digest(given.encode("utf-8"), self._token):
            self.limiter.failed(client)
            log.warning("wrong presenter token from %s for %s %s", client, request.method, request.path)
            return _refusal(401, "wrong", "wrong presenter token",
                            {"WWW-Authenticate": 'Bearer realm="gtc-loadgen", error="invalid_token"'})
        return None

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        refused = self.refusal(request)
        if refused is not None:
            return refused
        return await handler(request)
