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


def run_live(out: Path, replicas_list: list[int], load: int, conversations: int, seed: int,
             gpu: str = "h200", urls: tuple[str, str] | None = None) -> dict:
    """The live stack at each topology: a KV pass then a round-robin pass of the same
    conversations (fresh text each pass), and the simulator on the very same conversations."""
    from gtc_bench import live  # pylint: disable=import-outside-toplevel

    import llama_perf_profile as perf  # pylint: disable=import-outside-toplevel

    shp = shape.BOOTH
    convs = trace.generate(conversations, shp, shape.conversation_rate_for(load, shp), seed)
    tracefile = trace.write_jsonl(trace.to_mooncake(convs, shp), out / "raw" / f"live-trace-s{seed}.jsonl")
    router_args = ("--router-kv-overlap-score-credit", f"{sweep.RECOMMENDED.overlap_score_credit:g}",
                   "--router-prefill-load-scale", f"{sweep.RECOMMENDED.prefill_load_scale:g}")
    results: dict = {"load": load, "conversations": conversations, "gpu": gpu, "topologies": {}}
    for replicas in replicas_list:
        tp = 8 // replicas
        topo = sim.Topology(replicas, tp)
        prof = perf.build_profile(gpu, tp)
        workdir = out / "raw" / f"live-{topo.label}"
        workdir.mkdir(parents=True, exist_ok=True)
        npz = perf.write_npz(prof, workdir / "profile.npz")
        entry: dict = {}
        t0 = time.monotonic()

        def both_modes(kv_url: str, rr_url: str) -> None:
            for mode, url in (("kv", kv_url), ("round_robin", rr_url)):
                recs = asyncio.run(live.drive(url, convs, shp, tag=f"{topo.label}-{mode}-{time.time_ns()}"))
                (workdir / f"{mode}.json").write_text(json.dumps(recs))
                entry[mode] = live.live_stats(recs)
                print(f"live {topo.label} {mode}: {entry[mode]['requests']} requests, {entry[mode]['errors']} errors, "
                      f"follow-up median {entry[mode]['followups'].get('median', float('nan')):.0f} ms")

        if urls:  # an already running demo (e.g. the local demo on :8000 / :8001)
            entry["target"] = list(urls)
            both_modes(*urls)
        else:
            with live.LocalStack(workdir, replicas, npz, prof.capacity.num_gpu_blocks, router_args=router_args) as stack:
                both_modes(f"http://127.0.0.1:{stack.kv_port}", f"http://127.0.0.1:{stack.rr_port}")
        engine = sim.EngineSpec(gpu=gpu)
        entry["sim_kv"] = sweep.run_cell([tracefile], topo, "kv_router", sweep.RECOMMENDED, engine)
        entry["sim_round_robin"] = sweep.run_cell([tracefile], topo, "round_robin", sim.RouterSettings(), engine)
        entry["seconds"] = round(time.monotonic() - t0, 1)
        results["topologies"][topo.label] = entry
    (out / "live.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def cmd_live(args: argparse.Namespace) -> dict:
    urls = None
    if args.kv_url or args.rr_url:
        if not (args.kv_url and args.rr_url) or len(args.replicas) != 1:
            raise SystemExit("--kv-url and --rr-url go together, with one --replicas (the running demo's)")
        urls = (args.kv_url.rstrip("/"), args.rr_url.rstrip("/"))
        for url in urls:  # this is a load generator: loopback targets only
            if urlparse(url).hostname not in ("127.0.0.1", "localhost"):
                raise SystemExit(f"{url}: only 127.0.0.1 targets are allowed")
    return run_live(args.out, args.replicas, args.load, args.conversations, args.seed, gpu=args.gpu, urls=urls)


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
        p.add_argument("--kv-url", help="drive a running demo instead of starting one: its KV-aware frontend")
        p.add_argument("--rr-url", help="... and its round-robin frontend (both on 127.0.0.1)")
    sub.add_parser("report", parents=[common], help="tables and plots from the JSON files")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cmd == "sim":
        cmd_sim(args)
    elif args.cmd == "live":
        cmd_live(args)
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
