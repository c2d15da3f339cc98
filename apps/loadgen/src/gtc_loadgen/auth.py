"""The presenter token: what guards every request that changes the booth.

Reads (the page, /api/state, /metrics, the conversation viewer, /static,
/healthz) stay open for the audience; every other method (POST, PUT, PATCH,
DELETE) needs ``Authorization: Bearer <token>`` when a token is configured.
The token comes from the environment, never from the command line (argv shows
in ``ps`` and in supervisord's logs): ``GTC_LOADGEN_PRESENTER_TOKEN`` (the
Kubernetes Secret's value), or, locally, a hash of it in the file that
``GTC_LOADGEN_PRESENTER_TOKEN_HASH_FILE`` names. The local role writes that
file (``python -m gtc_loadgen.auth store-hash``, the token on stdin) so that
neither supervisord's program file nor anything else in the state folder holds
the token. No token configured means open controls, the local default (the app
binds 127.0.0.1).

Tokens are compared in constant time (``hmac.compare_digest``), refusals are
logged with the client's address and the path only, and wrong tokens are
rate-limited per client address by a small token bucket: once it is empty the
address gets 429 with Retry-After and no comparison is made, so guesses stop
telling right from wrong.

Behind the cloud's Gateway every visitor may reach the app from the same
address (the proxy's), so a stranger sending wrong tokens would lock the
presenter out too. A control the token allowed therefore also sets a presenter
cookie (random per process, HttpOnly, SameSite=Strict): a browser that holds it
is exempt from the limit, though each of its requests still needs the token
(the cookie authorises nothing by itself, so it gives a forged cross-site
request nothing either).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

log = logging.getLogger(__name__)

TOKEN_ENV = "GTC_LOADGEN_PRESENTER_TOKEN"
HASH_FILE_ENV = "GTC_LOADGEN_PRESENTER_TOKEN_HASH_FILE"
# The hash file's one line: scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>. scrypt (RFC 7914)
# with n=2**14, r=8, p=1: about 16 MiB and 50-100 ms per check, so a stolen file is slow to guess from.
HASH_SCHEME = "scrypt"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
OPEN_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Wrong tokens an address may send at once, and how fast it earns another.
BURST = 5
REFILL_PER_S = 0.2
# Addresses remembered; the oldest is forgotten first (a flood of addresses cannot grow memory).
MAX_CLIENTS = 4096
# The cookie a browser gets once the token allowed one of its controls (see the module's docstring).
PRESENTER_COOKIE = "gtc_presenter"


class TokenConfigError(ValueError):
    """The token's hash file is named but cannot be used; the app refuses to start rather than run open."""


def hash_token(token: str, salt: bytes | None = None) -> str:
    """The hash file's line for ``token`` (a fresh random salt unless one is given)."""
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(token.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"{HASH_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


class Verifier:
    """Says whether a given token is the presenter's, in constant time.

    From the token itself (``Verifier.of_token``) or from its hash (``Verifier.of_hash``); either
    way the token last accepted is remembered as a keyed digest, so the presenter's next controls
    skip scrypt (a wrong token always pays it; the rate limit bounds how often).
    """

    def __init__(self, check: Callable[[bytes], bool]) -> None:
        self._check = check
        self._key = os.urandom(32)
        self._accepted: bytes | None = None

    @classmethod
    def of_token(cls, token: str) -> Verifier:
        expected = token.encode("utf-8")
        return cls(lambda given: hmac.compare_digest(given, expected))

    @classmethod
    def of_hash(cls, line: str, where: str = "the hash") -> Verifier:
        parts = line.strip().split("$")
        try:
            if len(parts) != 6 or parts[0] != HASH_SCHEME:
                raise ValueError("not a scrypt$n$r$p$salt$hash line")
            n, r, p = (int(x) for x in parts[1:4])
            salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
            if not salt or len(digest) < 16 or n < 2 or r < 1 or p < 1:
                raise ValueError("empty salt or short hash")
        except ValueError as exc:
            raise TokenConfigError(f"{where} is not a presenter token hash ({exc})") from None

        def check(given: bytes) -> bool:
            got = hashlib.scrypt(given, salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=64 * 1024 * 1024)
            return hmac.compare_digest(got, digest)
        return cls(check)

    def verify(self, given: str) -> bool:
        raw = given.encode("utf-8")
        keyed = hmac.new(self._key, raw, hashlib.sha256).digest()
        if self._accepted is not None and hmac.compare_digest(keyed, self._accepted):
            return True
        if self._check(raw):
            self._accepted = keyed
            return True
        return False


def verifier_from_env(environ: Mapping[str, str] | None = None) -> Verifier | None:
    """The configured token's verifier, or None for open controls.

    ``GTC_LOADGEN_PRESENTER_TOKEN`` wins (surrounding whitespace dropped); else the hash in the file
    ``GTC_LOADGEN_PRESENTER_TOKEN_HASH_FILE`` names. A named file that is missing, empty or not a
    hash is an error, not "no token": a lost file must not open the controls.
    """
    env = os.environ if environ is None else environ
    value = env.get(TOKEN_ENV, "").strip()
    if value:
        return Verifier.of_token(value)
    path = env.get(HASH_FILE_ENV, "").strip()
    if not path:
        return None
    try:
        line = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenConfigError(f"{HASH_FILE_ENV} names {path}, which cannot be read: {exc.strerror}") from None
    return Verifier.of_hash(line, f"{HASH_FILE_ENV}'s file {path}")


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

    def __init__(self, verifier: Verifier | None, limiter: FailureLimiter | None = None) -> None:
        self._verifier = verifier
        self.limiter = limiter or FailureLimiter()
        self._cookie = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")

    def _has_presenter_cookie(self, request: web.Request) -> bool:
        return hmac.compare_digest(request.cookies.get(PRESENTER_COOKIE, "").encode(), self._cookie.encode())

    @property
    def required(self) -> bool:
        return self._verifier is not None

    def refusal(self, request: web.Request) -> web.Response | None:
        """None when ``request`` may go on, else the 401 or 429 to answer with."""
        if self._verifier is None or request.method in OPEN_METHODS:
            return None
        client = request.remote or "unknown"
        wait = 0 if self._has_presenter_cookie(request) else self.limiter.retry_after(client)
        if wait:
            log.warning("presenter token refused: too many wrong tokens from %s (%s %s); retry in %d s",
                        client, request.method, request.path, wait)
            return _refusal(429, "rate_limited", f"too many wrong presenter tokens from this address: "
                            f"try again in {wait} s", {"Retry-After": str(wait)})
        header = request.headers.get("Authorization", "")
        scheme, given = header.partition(" ")[::2]
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            self.limiter.failed(client)
            log.warning("presenter token missing from %s for %s %s", client, request.method, request.path)
            return _refusal(401, "required", "presenter token required: this control needs "
                            "'Authorization: Bearer <token>'", {"WWW-Authenticate": 'Bearer realm="gtc-loadgen"'})
        if not self._verifier.verify(given):
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
        response = await handler(request)
        if self._verifier is not None and request.method not in OPEN_METHODS and response.status < 400:
            secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
            response.set_cookie(PRESENTER_COOKIE, self._cookie, httponly=True, samesite="Strict", secure=secure,
                                path="/")
        return response


def store_hash(path: Path, token: str, *, check: bool = False) -> bool:
    """Make ``path`` hold a hash of ``token`` (mode 0600); True when it did not already.

    A file whose hash already verifies ``token`` is kept as it is (a rerun changes nothing);
    ``check``: say so, write nothing.
    """
    try:
        current = path.read_text(encoding="utf-8")
        if Verifier.of_hash(current).verify(token) and (path.stat().st_mode & 0o777) == 0o600:
            return False
    except (OSError, TokenConfigError):
        pass
    if check:
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(hash_token(token) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m gtc_loadgen.auth store-hash --file PATH [--check]``: the token on stdin (never argv);
    prints {"changed": bool} (the loadgen role's local task)."""
    ap = argparse.ArgumentParser(prog="python -m gtc_loadgen.auth")
    sub = ap.add_subparsers(dest="cmd", required=True)
    store = sub.add_parser("store-hash", help="write the hash of the token read from stdin")
    store.add_argument("--file", required=True, type=Path)
    store.add_argument("--check", action="store_true", help="report whether it would change; write nothing")
    args = ap.parse_args(argv)
    token = sys.stdin.read().strip()
    if not token:
        print("no token on stdin", file=sys.stderr)
        return 2
    print(json.dumps({"changed": store_hash(args.file, token, check=args.check)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
