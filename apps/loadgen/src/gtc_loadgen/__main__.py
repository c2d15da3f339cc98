"""Command line: ``serve`` (the booth app), ``curate`` (documents -> seeds), ``bench`` (headless run)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import time

import aiohttp

from .auth import TokenConfigError, verifier_from_env
from .corpus import CorpusError, curate_folder, load_seeds, write_seeds
from .engine import Engine
from .followup import DEFAULT_BASE_URL, DEFAULT_MODEL, FollowupWriter
from .persist import ConfigMapStore, FileStore, Keeper, Store
from .settings import Settings, SettingsError, load_presets, read_json_object
from .stats import Stats, percentile
from .targets import Targets, TargetsError, from_flags, from_json
from .topology import Topology


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _add_target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frontend", action="append", default=[], metavar="ID=URL",
                   help="a frontend by routing id and base URL (no /v1); repeat for each, in the switch's order "
                        "(default: LOADGEN_FRONTENDS, a JSON list of {id, url, title})")
    p.add_argument("--frontend-title", action="append", default=[], metavar="ID=TITLE",
                   help="the page's label of a frontend (default: its id, capitalised)")
    p.add_argument("--model", default=_env("LOADGEN_MODEL", "nvidia/Llama-3.1-70B-Instruct-FP8"))
    p.add_argument("--corpus", default=_env("LOADGEN_CORPUS", ""),
                   help="folder of documents or seeds .json (default: the built-in corpus)")
    p.add_argument("--request-timeout", type=float, default=float(_env("LOADGEN_REQUEST_TIMEOUT", "60")))


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gtc-loadgen", description=__doc__)
    sub = ap.add_subparsers(dest="cmd")

    serve = sub.add_parser("serve", help="run the booth web app (default)")
    _add_target_args(serve)
    serve.add_argument("--host", default=_env("LOADGEN_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(_env("LOADGEN_PORT", "3000")))
    serve.add_argument("--presets", default=_env("LOADGEN_PRESETS", ""),
                       help="presets overriding the defaults: a JSON object, or a file holding one")
    serve.add_argument("--settings", default=_env("LOADGEN_SETTINGS", ""),
                       help="initial settings: a JSON object, or a file holding one")
    serve.add_argument("--topology", default=_env("LOADGEN_TOPOLOGY", ""),
                       help="what the demo runs on (dynamo__output.topology): a JSON object "
                            "{replicas, tensor_parallel, engine, gpu, model}, or a file holding one")
    serve.add_argument("--state-file", default=_env("LOADGEN_STATE_FILE", ""),
                       help="keep the presenter's settings in this file across restarts (default: not kept)")
    serve.add_argument("--state-configmap", default=_env("LOADGEN_STATE_CONFIGMAP", ""), metavar="NAMESPACE/NAME",
                       help="keep them in this ConfigMap instead, through the pod's service account")
    serve.add_argument("--followup-url", default=_env("LOADGEN_FOLLOWUP_URL", DEFAULT_BASE_URL))
    serve.add_argument("--followup-model", default=_env("LOADGEN_FOLLOWUP_MODEL", DEFAULT_MODEL))

    cur = sub.add_parser("curate", help="turn a folder of documents into a seeds file")
    cur.add_argument("folder")
    cur.add_argument("--out", required=True)

    bench = sub.add_parser("bench", help="headless run at fixed concurrency; prints a JSON summary")
    _add_target_args(bench)
    bench.add_argument("--routing", default="", help="the frontend to load (default: the first --frontend)")
    bench.add_argument("--concurrency", type=int, default=256)
    bench.add_argument("--duration", type=float, default=30.0)
    bench.add_argument("--warmup", type=float, default=3.0, help="seconds excluded from the statistics")
    bench.add_argument("--turns", type=int, default=3)
    bench.add_argument("--max-tokens", type=int, default=32)
    bench.add_argument("--context-docs", type=int, default=2, help="corpus documents per conversation context")
    bench.add_argument("--think", type=float, default=0.0, help="seconds between the turns of a conversation")
    bench.add_argument("--seed", type=int, default=1)
    return ap


def _targets(args: argparse.Namespace) -> Targets:
    """--frontend/--frontend-title, else LOADGEN_FRONTENDS."""
    if args.frontend:
        frontends = from_flags(args.frontend, args.frontend_title)
    elif os.environ.get("LOADGEN_FRONTENDS", "").strip():
        if args.frontend_title:
            raise TargetsError("--frontend-title needs --frontend (LOADGEN_FRONTENDS carries its own titles)")
        frontends = from_json(os.environ["LOADGEN_FRONTENDS"])
    else:
        frontends = ()
    return Targets(frontends, args.model, args.request_timeout)


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .server import build_app

    targets = _targets(args)
    # From the environment only (argv shows in ps); None: open controls.
    token = verifier_from_env()
    seeds = load_seeds(args.corpus or None)
    presets = load_presets(args.presets or None)
    initial = read_json_object(args.settings, "--settings") if args.settings else {}
    settings = Settings().patched(initial)
    # Refused here, before the app starts: a routing that is not a configured frontend.
    settings = settings.for_routings(targets.ids)
    topology = Topology.from_dict(read_json_object(args.topology, "--topology")) if args.topology else None
    store: Store | None = None
    if args.state_configmap:
        namespace, name = args.state_configmap.partition("/")[::2]
        if not namespace or not name:
            raise SettingsError(f"--state-configmap must be NAMESPACE/NAME, got {args.state_configmap!r}")
        store = ConfigMapStore(namespace, name)
    elif args.state_file:
        store = FileStore(args.state_file)
    keeper = Keeper(store, initial) if store is not None else None
    app = build_app(targets, seeds, presets, settings, topology=topology,
                    followup_base_url=args.followup_url, followup_model=args.followup_model,
                    presenter_token=token, keeper=keeper)
    logging.getLogger(__name__).info("serving on http://%s:%s with %d seeds; frontends %s; controls %s", args.host,
                                     args.port, len(seeds), ", ".join(f"{f.id}={f.url}" for f in targets.frontends),
                                     "need the presenter token" if token else "open (no presenter token set)")
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    return 0


async def _bench(args: argparse.Namespace) -> dict:
    targets = _targets(args)
    routing = args.routing or targets.default_routing
    targets.get(routing)  # refuses an id that is not configured
    seeds = load_seeds(args.corpus or None)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        stats = Stats(samples_per_key=100_000)
        settings = Settings(running=False, concurrency=args.concurrency, rate=0.0, routing=routing,
                            turns_min=args.turns, turns_max=args.turns, think_min_s=args.think, think_max_s=args.think,
                            max_tokens=args.max_tokens, context_docs=args.context_docs)
        engine = Engine(targets, session, seeds, FollowupWriter(None), stats, load_presets(None), settings,
                        rng=random.Random(args.seed))
        engine.start()
        engine.update({"running": True})
        await asyncio.sleep(args.warmup)
        stats.reset()
        lags: list[float] = []
        probe = asyncio.create_task(_loop_lag(lags))
        t0 = time.perf_counter()
        await asyncio.sleep(args.duration)
        elapsed = time.perf_counter() - t0
        probe.cancel()
        snap = stats.snapshot()
        ttfts = [v for w in stats.ttft.values() for v in w]
        overhead = list(stats.overhead)
        engine.update({"running": False})
        await engine.close()
    ok = snap["totals"]["requests"] - snap["totals"]["errors"]
    return {
        "tool": "gtc-loadgen", "routing": routing, "url": targets.url(routing), "concurrency": args.concurrency,
        "duration_s": round(elapsed, 2), "requests": snap["totals"]["requests"], "errors": snap["totals"]["errors"],
        "errors_by_kind": snap["errors_by_kind"], "rps": round(ok / elapsed, 1),
        "ttft_ms_p50": _r(percentile(ttfts, 50)), "ttft_ms_p90": _r(percentile(ttfts, 90)),
        "ttft_ms_mean": _r(sum(ttfts) / len(ttfts)) if ttfts else None,
        "overhead_ms_p50": _r(percentile(overhead, 50)), "overhead_ms_p90": _r(percentile(overhead, 90)),
        "overhead_samples": len(overhead),
        # How late the event loop ran a 10 ms timer: the delay the loadgen
        # itself adds before it reads a chunk that has arrived.
        "loop_lag_ms_p50": _r(percentile(lags, 50)), "loop_lag_ms_p99": _r(percentile(lags, 99)),
    }


async def _loop_lag(out: list[float], interval: float = 0.01) -> None:
    while True:
        t = time.perf_counter()
        await asyncio.sleep(interval)
        out.append((time.perf_counter() - t - interval) * 1000.0)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("LOADGEN_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        argv = ["serve", *argv]
    args = _parser().parse_args(argv)
    try:
        import uvloop  # noqa: PLC0415 - optional: a faster event loop at high concurrency

        uvloop.install()
    except ImportError:
        pass
    try:
        if args.cmd == "serve":
            return _serve(args)
        if args.cmd == "curate":
            seeds = curate_folder(args.folder)
            write_seeds(seeds, args.out)
            print(f"{len(seeds)} seeds written to {args.out}")
            return 0
        if args.cmd == "bench":
            print(json.dumps(asyncio.run(_bench(args))))
            return 0
    except (CorpusError, SettingsError, TargetsError, TokenConfigError, ValueError, OSError) as exc:
        print(f"gtc-loadgen: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
