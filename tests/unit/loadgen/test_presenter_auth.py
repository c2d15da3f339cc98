"""The presenter token: every state-changing request needs it, reads stay open, wrong ones are limited."""

import asyncio
import json
import logging
import subprocess
import sys

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gtc_loadgen.auth import FailureLimiter, TokenConfigError, Verifier, hash_token, store_hash, verifier_from_env
from gtc_loadgen.corpus import load_seeds
from gtc_loadgen.server import build_app
from gtc_loadgen.settings import DEFAULT_PRESETS, Settings
from gtc_loadgen.targets import Targets, frontend

SEEDS = load_seeds(None)
TOKEN = "s3cret-presenter-token-\u00e9"  # not ASCII: compared as bytes
READS = ["/", "/healthz", "/metrics", "/api/state", "/api/conversations", "/static/app.js"]


def _app(token):
    targets = Targets((frontend("kv", "http://127.0.0.1:9"), frontend("round_robin", "http://127.0.0.1:9")), "m")
    return build_app(targets, SEEDS, dict(DEFAULT_PRESETS), Settings(), followup_base_url="http://127.0.0.1:9/v1",
                     followup_model="x", presenter_token=token)


def _routes_that_change_state(app):
    """Every route of the app that is not a read: the test must cover each one the server has."""
    return sorted({(r.method, r.resource.canonical) for r in app.router.routes()
                   if r.method not in ("GET", "HEAD", "OPTIONS")})


def _run(coro):
    return asyncio.run(coro)


def test_every_state_changing_route_needs_the_token_and_reads_stay_open(caplog):
    async def go():
        app = _app(TOKEN)
        routes = _routes_that_change_state(app)
        out = {"routes": routes, "refused": {}, "reads": {}}
        async with TestClient(TestServer(app)) as client:
            for _method, path in routes:
                concrete = path.replace("{name}", "booth")
                resp = await client.post(concrete, json={})
                out["refused"][concrete] = (resp.status, await resp.json(), resp.headers.get("WWW-Authenticate"))
            for path in READS:
                out["reads"][path] = (await client.get(path)).status
            state = await (await client.get("/api/state")).json()
            out["auth"] = state["auth"]
            out["settings_before"] = state["settings"]["concurrency"]
            ok = await client.post("/api/settings", json={"concurrency": 3},
                                   headers={"Authorization": f"Bearer {TOKEN}"})
            out["ok"] = (ok.status, (await ok.json())["settings"]["concurrency"])
            lower = await client.post("/api/reset", json={}, headers={"Authorization": f"bearer {TOKEN}"})
            out["lower"] = lower.status
        return out
    with caplog.at_level(logging.WARNING, logger="gtc_loadgen.auth"):
        out = _run(go())
    # The server's routes that change state, as found in server.py: a new one is covered here too.
    assert out["routes"] == [("POST", "/api/preset/{name}"), ("POST", "/api/reset"), ("POST", "/api/settings")]
    for path, (status, body, challenge) in out["refused"].items():
        assert status == 401, path
        assert body == {"error": "presenter token required: this control needs 'Authorization: Bearer <token>'",
                        "auth": "required"}, path
        assert challenge.startswith("Bearer"), path
    assert all(status == 200 for status in out["reads"].values()), out["reads"]
    assert out["auth"] == {"required": True}
    assert out["settings_before"] == 16 and out["ok"] == (200, 3) and out["lower"] == 200
    # Refusals are logged with the address and the path, never with a token.
    assert any("presenter token missing from 127.0.0.1 for POST /api/settings" in r.getMessage()
               for r in caplog.records)
    assert TOKEN not in caplog.text


def test_a_wrong_token_is_refused_logged_without_it_and_rate_limited(caplog):
    async def go():
        app = _app(TOKEN)
        statuses = []
        async with TestClient(TestServer(app)) as client:
            for i in range(7):
                resp = await client.post("/api/settings", json={"concurrency": 5},
                                         headers={"Authorization": f"Bearer wrong-guess-{i}"})
                statuses.append((resp.status, (await resp.json())["auth"], resp.headers.get("Retry-After")))
            # Once limited, even the right token waits: no comparison tells right from wrong.
            right = await client.post("/api/settings", json={"concurrency": 5},
                                      headers={"Authorization": f"Bearer {TOKEN}"})
            limited_right = right.status
            state = await (await client.get("/api/state")).json()
        return statuses, limited_right, state["settings"]["concurrency"]
    with caplog.at_level(logging.WARNING, logger="gtc_loadgen.auth"):
        statuses, limited_right, concurrency = _run(go())
    assert statuses[:5] == [(401, "wrong", None)] * 5
    assert [s[:2] for s in statuses[5:]] == [(429, "rate_limited")] * 2
    assert all(int(s[2]) >= 1 for s in statuses[5:])
    assert limited_right == 429 and concurrency == 16
    assert "wrong presenter token from 127.0.0.1 for POST /api/settings" in caplog.text
    assert "wrong-guess" not in caplog.text and TOKEN not in caplog.text


def test_a_stranger_behind_the_same_address_cannot_lock_the_presenter_out():
    """On the cloud every visitor may come through the Gateway's one address: a browser the token
    already let in keeps its controls while a stranger's wrong guesses are limited."""
    async def go():
        app = _app(TOKEN)
        async with TestClient(TestServer(app)) as presenter, aiohttp.ClientSession() as stranger:
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            first = await presenter.post("/api/settings", json={"concurrency": 5}, headers=bearer)
            cookie = first.cookies.get("gtc_presenter")
            guesses = [(await stranger.post(presenter.make_url("/api/reset"), json={},
                                            headers={"Authorization": f"Bearer guess-{i}"})).status for i in range(7)]
            stranger_right = (await stranger.post(presenter.make_url("/api/settings"), json={"concurrency": 6},
                                                  headers=bearer)).status
            kept = (await presenter.post("/api/settings", json={"concurrency": 7}, headers=bearer)).status
            # The cookie exempts from the limit only: without the token it is refused, and so is a wrong one.
            bare = (await presenter.post("/api/settings", json={"concurrency": 8})).status
            wrong = (await presenter.post("/api/settings", json={"concurrency": 8},
                                          headers={"Authorization": "Bearer nope"})).status
            state = await (await presenter.get("/api/state")).json()
        return first.status, cookie, guesses, stranger_right, kept, bare, wrong, state["settings"]["concurrency"]
    first, cookie, guesses, stranger_right, kept, bare, wrong, concurrency = _run(go())
    assert first == 200 and cookie is not None
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and TOKEN not in cookie.value
    assert guesses == [401] * 5 + [429] * 2 and stranger_right == 429
    assert kept == 200 and bare == 401 and wrong == 401 and concurrency == 7


def test_without_a_token_the_controls_are_open():
    async def go():
        app = _app(None)
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/api/settings", json={"concurrency": 4})
            state = await (await client.get("/api/state")).json()
            return resp.status, state["auth"], state["settings"]["concurrency"]
    assert _run(go()) == (200, {"required": False}, 4)


def test_the_limiter_refills_and_forgets_the_oldest_address():
    now = [0.0]
    lim = FailureLimiter(burst=2, refill_per_s=0.5, max_clients=2, clock=lambda: now[0])
    lim.failed("a")
    lim.failed("a")
    assert lim.retry_after("a") == 2
    now[0] = 2.0
    assert lim.retry_after("a") == 0
    lim.failed("b")
    lim.failed("c")  # three addresses, room for two: "a" is forgotten
    assert set(lim._buckets) == {"b", "c"}


def test_the_token_comes_from_the_environment_or_a_hash_file(tmp_path):
    assert verifier_from_env({}) is None
    assert verifier_from_env({"GTC_LOADGEN_PRESENTER_TOKEN": " "}) is None
    v = verifier_from_env({"GTC_LOADGEN_PRESENTER_TOKEN": "abc\n"})
    assert v.verify("abc") and not v.verify("abd") and not v.verify("")
    f = tmp_path / "hash"
    f.write_text(hash_token(TOKEN) + "\n")
    v = verifier_from_env({"GTC_LOADGEN_PRESENTER_TOKEN_HASH_FILE": str(f)})
    assert v.verify(TOKEN) and v.verify(TOKEN) and not v.verify(TOKEN + "x") and not v.verify(TOKEN[:-1])
    # A named file that is gone, empty or not a hash refuses to start rather than opening the controls.
    with pytest.raises(TokenConfigError, match="cannot be read"):
        verifier_from_env({"GTC_LOADGEN_PRESENTER_TOKEN_HASH_FILE": str(tmp_path / "gone")})
    for bad in ("\n", TOKEN, "scrypt$16384$8$1$$", "md5$1$2$3$4$5"):
        (tmp_path / "bad").write_text(bad)
        with pytest.raises(TokenConfigError, match="is not a presenter token hash"):
            verifier_from_env({"GTC_LOADGEN_PRESENTER_TOKEN_HASH_FILE": str(tmp_path / "bad")})


def test_store_hash_keeps_a_matching_file_and_never_writes_the_token(tmp_path):
    f = tmp_path / "run" / "token-hash"
    assert store_hash(f, "tok-1", check=True) is True and not f.exists()
    assert store_hash(f, "tok-1") is True
    line = f.read_text()
    assert "tok-1" not in line and line.startswith("scrypt$16384$8$1$") and oct(f.stat().st_mode & 0o777) == "0o600"
    assert store_hash(f, "tok-1") is False and f.read_text() == line  # a rerun: no change, same salt
    assert store_hash(f, "tok-2", check=True) is True and f.read_text() == line
    assert store_hash(f, "tok-2") is True and Verifier.of_hash(f.read_text()).verify("tok-2")
    # The command the role runs: the token on stdin, {"changed": ...} out.
    cmd = [sys.executable, "-m", "gtc_loadgen.auth", "store-hash", "--file", str(f)]
    out = subprocess.run(cmd, input="tok-2\n", capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"changed": False}
    out = subprocess.run(cmd, input="tok-3", capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"changed": True} and "tok-3" not in f.read_text()
    assert subprocess.run(cmd, input="", capture_output=True, text=True, check=False).returncode == 2


def test_the_command_line_has_no_token_option():
    from gtc_loadgen.__main__ import _parser

    serve = _parser()._subparsers._group_actions[0].choices["serve"]
    assert not [a for a in serve._actions if "token" in " ".join(a.option_strings)]
