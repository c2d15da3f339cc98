"""``python -m gtc_bench {sim,live,report,all}``: the benchmark's entry points (benchmarks/run)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from gtc_bench import report, shape, sim, sweep, trace

RESULTS = Path(__file__).resolve().parents[1] / "results"


def cmd_sim(args: argparse.Namespace) -> dict:
    results = sweep.run_all(args.out, quick=args.quick)
    print(f"simulator: {results['meta']['seconds']} s -> {args.out / 'simulator.json'}")
    return results


# The frontends of the live runs, by routing id (the ids the simulator's modes are paired with).
LIVE_FRONTENDS = {"kv": {"router_mode": "kv", "title": "KV-aware"},
                  "round_robin": {"router_mode": "round-robin", "title": "Round-robin"}}
SIM_MODE = {"kv": "kv_router", "round_robin": "round_robin"}
DEMO_MODEL = "nvidia/Llama-3.1-70B-Instruct-FP8"  # what inventories/local serves
# GTC_DEMO_HOME of the benchmark's stacks (one folder per topology; teardown.yml removes it)
BENCH_HOME = Path.home() / ".cache" / "gtc-demo" / "bench-home"


def run_live(out: Path, replicas_list: list[int], load: int, conversations: int, seed: int,
             gpu: str = "h200", urls: dict[str, str] | None = None, home: Path | None = None,
             model: str = DEMO_MODEL) -> dict:
    """The booth's stack at each topology (site.yml in a benchmark home, torn down after): a KV pass
    then a round-robin pass of the same conversations (fresh text each pass), measured with the load
    generator's client, and the simulator on the very same conversations."""
    from gtc_bench import live, stack  # pylint: disable=import-outside-toplevel

    shp = shape.BOOTH
    convs = trace.generate(conversations, shp, shape.conversation_rate_for(load, shp), seed)
    rows = trace.to_mooncake(convs, shp)
    tracefile = trace.write_jsonl(rows, out / "raw" / f"live-trace-s{seed}.jsonl")
    words = live.demo_vocabulary(stack.DEMO_MODEL_DIR)
    policy = {"overlap_score_credit": sweep.RECOMMENDED.overlap_score_credit,
              "prefill_load_scale": sweep.RECOMMENDED.prefill_load_scale}
    results: dict = {"load": load, "conversations": conversations, "gpu": gpu, "topologies": {},
                     "tokenizer": str(stack.DEMO_MODEL_DIR.relative_to(stack.REPO)), "one_token_words": len(words)}
    for replicas in replicas_list:
        tp = 8 // replicas
        topo = sim.Topology(replicas, tp)
        workdir = out / "raw" / f"live-{topo.label}"
        workdir.mkdir(parents=True, exist_ok=True)
        entry: dict = {}
        t0 = time.monotonic()

        def each_frontend(targets: dict[str, str], model: str) -> None:
            for fid, url in targets.items():
                recs = asyncio.run(live.drive(url, model, convs, words, tag=f"{topo.label}-{fid}-{time.time_ns()}"))
                live.write_records(workdir / f"{fid}.json", recs)
                entry[fid] = live.live_stats(recs)
                entry[fid]["prompt_tokens_vs_trace"] = live.prompt_length_check(recs, rows)
                print(f"live {topo.label} {fid}: {entry[fid]['requests']} requests, {entry[fid]['errors']} errors, "
                      f"follow-up median {entry[fid]['followups'].get('median', float('nan')):.0f} ms", flush=True)

        if urls:  # an already running demo (e.g. make demo's frontends)
            entry["target"] = dict(urls)
            each_frontend(urls, model)
        else:
            bench_home = (home or BENCH_HOME) / topo.label
            with stack.RoleStack(bench_home, LIVE_FRONTENDS, replicas=replicas, tensor_parallel_size=tp, gpu=gpu,
                                 router_policy=policy) as booth:
                asyncio.run(live.wait_for_workers(booth.urls["round_robin"], booth.model, replicas))
                entry["stack"] = {"ports": booth.ports, "urls": booth.urls, "model": booth.model}
                each_frontend(booth.urls, booth.model)
            entry["stack"]["seconds"] = booth.seconds  # site.yml and teardown.yml
        engine = sim.EngineSpec(gpu=gpu)
        entry["sim_kv"] = sweep.run_cell([tracefile], topo, SIM_MODE["kv"], sweep.RECOMMENDED, engine)
        entry["sim_round_robin"] = sweep.run_cell([tracefile], topo, SIM_MODE["round_robin"], sim.RouterSettings(), engine)
        entry["seconds"] = round(time.monotonic() - t0, 1)
        results["topologies"][topo.label] = entry
    (out / "live.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def cmd_live(args: argparse.Namespace) -> dict:
    urls = None
    if args.frontend:
        urls = dict(item.split("=", 1) for item in args.frontend)
        if set(urls) != set(LIVE_FRONTENDS) or len(args.replicas) != 1:
            raise SystemExit(f"--frontend ID=URL for each of {sorted(LIVE_FRONTENDS)}, with one --replicas (the running demo's)")
        for fid, url in urls.items():  # this is a load generator: loopback targets only
            if urlparse(url).hostname not in ("127.0.0.1", "localhost"):
                raise SystemExit(f"{url}: only 127.0.0.1 targets are allowed")
            urls[fid] = url.rstrip("/")
    return run_live(args.out, args.replicas, args.load, args.conversations, args.seed, gpu=args.gpu, urls=urls,
                    home=args.home, model=args.model)


def run_booth(out: Path, replicas_list: list[int], seeds: list[int], gpu: str, ab: bool, duration_s: float,
              urls: dict[str, str] | None = None, model: str = DEMO_MODEL) -> dict:
    """The booth preset's closed loop (gtc_bench.booth) in the simulator, per topology and seed, and live
    against the given frontends (the running demo's, one topology) for the same seeds; headlines computed
    with the load generator's own definitions (gtc_loadgen.headlines)."""
    from gtc_bench import booth  # pylint: disable=import-outside-toplevel

    routings = tuple(LIVE_FRONTENDS)
    results: dict = {"gpu": gpu, "ab": ab, "duration_s": duration_s, "scheduler": sim.EngineSpec(gpu=None).scheduler.__dict__,
                     "load": {"concurrency": booth.BOOTH_CONCURRENCY, "rate": booth.BOOTH_RATE,
                              "shape": booth.BOOTH_SHAPE.to_dict()}, "runs": []}
    for replicas in replicas_list:
        tp = 8 // replicas
        for seed in seeds:
            for routing_set in ((routings,) if ab else tuple((r,) for r in routings)):
                load = booth.BoothLoad(routings=routing_set, ab=ab, duration_s=duration_s, seed=seed)
                t0 = time.monotonic()
                res = booth.simulate(load, replicas, tp, sim.EngineSpec(gpu=gpu), sweep.RECOMMENDED)
                run = {"topology": f"{replicas}xTP{tp}", "seed": seed, "routings": list(routing_set), "source": "simulator",
                       "headlines": booth.headlines(res["records"], routing_set), "loop_last_shift_s": res["last_shift_s"],
                       "seconds": round(time.monotonic() - t0, 2)}
                results["runs"].append(run)
                print(f"sim {run['topology']} seed {seed} {'/'.join(routing_set)}: "
                      + ", ".join(f"{r} p50 {run['headlines'][r]['p50_ms']} p90 {run['headlines'][r]['p90_ms']}" for r in routing_set),
                      flush=True)
                if urls and len(replicas_list) == 1:
                    from gtc_bench import live, stack  # pylint: disable=import-outside-toplevel

                    words = live.demo_vocabulary(stack.DEMO_MODEL_DIR)
                    before = _loadavg()
                    t0 = time.monotonic()
                    recs = asyncio.run(booth.drive(urls, model, load, words, tag=f"booth-{seed}-{time.time_ns()}"))
                    live.write_records(out / "raw" / f"booth-{run['topology']}-s{seed}-{'-'.join(routing_set)}.json", recs)
                    results["runs"].append({
                        "topology": run["topology"], "seed": seed, "routings": list(routing_set), "source": "live",
                        "headlines": booth.headlines(recs, routing_set),
                        "server_headlines": booth.headlines(recs, routing_set, ttft_key="server_ttft_ms"),
                        "errors": sum(1 for r in recs if not r.get("ok")), "load_average": [before, _loadavg()],
                        "seconds": round(time.monotonic() - t0, 1), "target": dict(urls)})
                    print(f"live {run['topology']} seed {seed}: " + ", ".join(
                        f"{r} p50 {results['runs'][-1]['headlines'][r]['p50_ms']} p90 {results['runs'][-1]['headlines'][r]['p90_ms']}"
                        for r in routing_set) + f" (load average {before} -> {_loadavg()})", flush=True)
    (out / "booth.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "booth.md").write_text(report.booth_table(results))
    return results


async def page_run(page_url: str, ab: bool, duration_s: float, drain_s: float = 40.0) -> dict:
    """The page's own load on the same stack: the booth preset (A/B or the first routing), from a reset, for
    ``duration_s``; then its headlines as /api/state gives them (gtc_loadgen.headlines over its window)."""
    import aiohttp  # pylint: disable=import-outside-toplevel

    async with aiohttp.ClientSession() as session:
        async def post(path: str, body: dict | None = None) -> dict:
            async with session.post(page_url + path, json=body or {}) as resp:
                resp.raise_for_status()
                return await resp.json()

        await post("/api/preset/booth")
        await post("/api/settings", {"ab": ab})
        await post("/api/reset")
        before = _loadavg()
        await post("/api/settings", {"running": True})
        await asyncio.sleep(duration_s)
        await post("/api/settings", {"running": False})
        await asyncio.sleep(drain_s)  # the turns in flight answer
        async with session.get(page_url + "/api/state") as resp:
            state = await resp.json()
    stats = state.get("stats", {})
    heads = stats.get("headlines", {})
    print("page: " + ", ".join(f"{r} p50 {h.get('p50_ms')} p90 {h.get('p90_ms')} misses {h.get('miss_share')}"
                               for r, h in heads.items()), flush=True)
    return {"url": page_url, "headlines": heads, "tail_ratio": stats.get("tail_ratio"),
            "median_ratio": stats.get("median_ratio"), "topology": state.get("topology"),
            "load_average": [before, _loadavg()], "duration_s": duration_s}


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def cmd_booth(args: argparse.Namespace) -> dict:
    urls = _frontend_urls(args.frontend) if args.frontend else None
    if (urls or args.live) and len(args.replicas) != 1:
        raise SystemExit("--frontend and --live drive one demo: give one --replicas")
    if not args.live:
        return run_booth(args.out, args.replicas, args.seeds, args.gpu, not args.single, args.duration, urls, args.model)
    from gtc_bench import live, stack  # pylint: disable=import-outside-toplevel

    replicas = args.replicas[0]
    policy = {"overlap_score_credit": sweep.RECOMMENDED.overlap_score_credit,
              "prefill_load_scale": sweep.RECOMMENDED.prefill_load_scale}
    # the local demo as make demo brings it up (site.yml -i inventories/local), in a home of its own
    with stack.RoleStack(args.home / f"booth-{replicas}xTP{8 // replicas}", LIVE_FRONTENDS, replicas=replicas,
                         tensor_parallel_size=8 // replicas, gpu=args.gpu, router_policy=policy) as booth_stack:
        asyncio.run(live.wait_for_workers(booth_stack.urls["round_robin"], booth_stack.model, replicas))
        results = run_booth(args.out, args.replicas, args.seeds, args.gpu, not args.single, args.duration,
                            booth_stack.urls, booth_stack.model)
        if args.page:
            page_url = f"http://127.0.0.1:{booth_stack.ports['loadgen']}"
            results["page"] = asyncio.run(page_run(page_url, not args.single, args.duration))
    results["stack_seconds"] = booth_stack.seconds
    (args.out / "booth.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def _frontend_urls(items: list[str]) -> dict[str, str]:
    urls = dict(item.split("=", 1) for item in items)
    if set(urls) != set(LIVE_FRONTENDS):
        raise SystemExit(f"--frontend ID=URL for each of {sorted(LIVE_FRONTENDS)}")
    for fid, url in urls.items():  # this is a load generator: loopback targets only
        if urlparse(url).hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"{url}: only 127.0.0.1 targets are allowed")
        urls[fid] = url.rstrip("/")
    return urls


def cmd_report(args: argparse.Namespace) -> None:
    sim_results = report.load(args.out / "simulator.json")
    live_path = args.out / "live.json"
    live_results = report.load(live_path) if live_path.exists() else None
    for path in report.write_all(args.out, sim_results, live_results):
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gtc_bench", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_sim = sub.add_parser("sim", parents=[common], help="simulator experiments -> simulator.json")
    p_sim.add_argument("--quick", action="store_true", help="CI-sized: one seed, one load, one context")
    p_live = sub.add_parser("live", parents=[common], help="live local stack vs simulator -> live.json")
    p_all = sub.add_parser("all", parents=[common], help="sim, live, report")
    p_all.add_argument("--quick", action="store_true")
    p_all.add_argument("--skip-live", action="store_true")
    for p in (p_live, p_all):
        p.add_argument("--replicas", type=int, nargs="+", default=[2, 4], help="topologies to run live (replicas; TP = 8/replicas)")
        p.add_argument("--load", type=int, default=16, help="target active conversations")
        p.add_argument("--conversations", type=int, default=40)
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--gpu", choices=("h100", "h200"), default="h200", help="profile the simulator side uses")
        p.add_argument("--frontend", action="append", metavar="ID=URL",
                       help="drive a running demo instead of bringing one up: kv=URL and round_robin=URL (127.0.0.1)")
        p.add_argument("--model", default=DEMO_MODEL, help="the running demo's model (with --frontend)")
        p.add_argument("--home", type=Path, default=BENCH_HOME,
                       help="GTC_DEMO_HOME of the benchmark's stacks, one folder per topology (default %(default)s)")
    p_booth = sub.add_parser("booth", parents=[common],
                             help="the booth preset's closed loop: simulator, and live with --frontend -> booth.json")
    p_booth.add_argument("--replicas", type=int, nargs="+", default=[2, 4], help="topologies (TP = 8/replicas)")
    p_booth.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p_booth.add_argument("--gpu", choices=("h100", "h200"), default="h100", help="profile (the local demo models H100)")
    p_booth.add_argument("--single", action="store_true", help="one routing at a time instead of A/B")
    p_booth.add_argument("--duration", type=float, default=150.0, help="seconds during which conversations start")
    p_booth.add_argument("--frontend", action="append", metavar="ID=URL",
                         help="also drive a running demo: kv=URL and round_robin=URL (127.0.0.1), one --replicas")
    p_booth.add_argument("--model", default=DEMO_MODEL)
    p_booth.add_argument("--live", action="store_true",
                         help="bring the local demo up (site.yml, as make demo) for one --replicas, drive it, tear it down")
    p_booth.add_argument("--home", type=Path, default=BENCH_HOME, help="GTC_DEMO_HOME parent of --live's stack")
    p_booth.add_argument("--page", action="store_true",
                         help="with --live: then run the page's own load (booth preset) and record its /api/state headlines")
    sub.add_parser("report", parents=[common], help="tables and plots from the JSON files")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cmd == "sim":
        cmd_sim(args)
    elif args.cmd == "live":
        cmd_live(args)
    elif args.cmd == "booth":
        cmd_booth(args)
    elif args.cmd == "report":
        cmd_report(args)
    else:
        cmd_sim(args)
        if not args.skip_live:
            cmd_live(args)
        cmd_report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
