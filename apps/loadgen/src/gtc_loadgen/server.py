"""The web app: the presenter's page, its JSON API, /metrics and /healthz."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .auth import PresenterAuth, Verifier
from .corpus import Seed
from .engine import Engine
from .followup import FollowupWriter
from .persist import Keeper
from .settings import Preset, Settings, SettingsError
from .stats import Stats
from .targets import Targets
from .topology import Topology

log = logging.getLogger(__name__)
ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)
AUTH: web.AppKey[PresenterAuth] = web.AppKey("auth", PresenterAuth)
KEEPER: web.AppKey[Keeper | None] = web.AppKey("keeper")
STATIC = Path(str(resources.files("gtc_loadgen") / "static"))


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return data


@web.middleware
async def live_answers(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The API's answers are the state of now: no browser or proxy may keep or reuse one."""
    live = request.path.startswith("/api/")
    try:
        response = await handler(request)
    except web.HTTPException as refusal:  # _body's 400s, the router's 404s and 405s
        if live:
            refusal.headers["Cache-Control"] = "no-store"
        raise
    if live:
        response.headers["Cache-Control"] = "no-store"
    return response


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def healthz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.json_response({"status": "ok", "model": engine.targets.model, "running": engine.settings.running})


async def metrics(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = generate_latest(engine.stats.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_state(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    keeper = request.app[KEEPER]
    return web.json_response({
        **engine.state(), "stats": engine.stats.snapshot(),
        # Whether the controls need the presenter token (never the token itself).
        "auth": {"required": request.app[AUTH].required},
        # Where the settings are kept across a restart (None: they are not), and the last write's error.
        "persistence": None if keeper is None else {"store": keeper.store.describe(), "error": keeper.error},
    })


async def post_settings(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        engine.update(await _body(request))
    except SettingsError as exc:
        return _json_error(422, str(exc))
    return web.json_response(engine.state())


async def post_preset(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        engine.apply_preset(request.match_info["name"])
    except SettingsError as exc:
        return _json_error(404, str(exc))
    return web.json_response(engine.state())


async def post_reset(request: web.Request) -> web.Response:
    request.app[ENGINE].stats.reset()
    return web.json_response({"status": "reset"})


async def list_conversations(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    convs = [c.summary() for c in reversed(engine.stats.conversations.values())]
    return web.json_response({"conversations": convs[:100]})


async def get_conversation(request: web.Request) -> web.Response:
    conv = request.app[ENGINE].stats.conversations.get(request.match_info["cid"])
    if conv is None:
        return _json_error(404, "no such conversation (only the most recent ones are kept)")
    return web.json_response(conv.detail())


def build_app(
    targets: Targets,
    seeds: list[Seed],
    presets: dict[str, Preset],
    settings: Settings,
    *,
    topology: Topology | None = None,
    followup_base_url: str,
    followup_model: str,
    connection_limit: int = 1024,
    presenter_token: str | Verifier | None = None,
    keeper: Keeper | None = None,
) -> web.Application:
    """The app; ``presenter_token`` (None: open controls) guards every method but GET/HEAD/OPTIONS,
    and ``keeper`` keeps the settings across a restart (read here, written after each change)."""
    if isinstance(presenter_token, str):
        presenter_token = Verifier.of_token(presenter_token) if presenter_token else None
    auth = PresenterAuth(presenter_token)
    app = web.Application(middlewares=[live_answers, auth.middleware])
    app[AUTH] = auth
    app[KEEPER] = keeper
    if keeper is not None:
        settings = keeper.load(settings, targets.ids)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # One pooled session for the load; keep-alive connections avoid a TCP
        # handshake per turn. A separate one for the follow-up writer so a slow
        # remote service never holds the load's connection slots.
        connector = aiohttp.TCPConnector(limit=connection_limit, limit_per_host=0, ttl_dns_cache=300)
        session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        side = aiohttp.ClientSession()
        writer = FollowupWriter(side, base_url=followup_base_url, model=followup_model)
        engine = Engine(targets, session, seeds, writer, Stats(), presets, settings, topology=topology,
                        on_change=None if keeper is None else keeper.save)
        app[ENGINE] = engine
        engine.start()
        yield
        await engine.close()
        await session.close()
        await side.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/state", get_state)
    app.router.add_post("/api/settings", post_settings)
    app.router.add_post("/api/preset/{name}", post_preset)
    app.router.add_post("/api/reset", post_reset)
    app.router.add_get("/api/conversations", list_conversations)
    app.router.add_get("/api/conversations/{cid}", get_conversation)
    app.router.add_static("/static/", STATIC)
    return app
