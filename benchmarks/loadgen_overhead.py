"""What the load generator itself costs: its rate and per-request overhead against a zero-delay target.

Brings the booth's own local stack up with the collection (``gtc_bench.stack.RoleStack``:
``site.yml -i inventories/local`` in a benchmark home, on free ports of 127.0.0.1) with one
KV-aware frontend and mocker workers at ``dynamo_local_speedup_ratio: 0`` (no simulated prefill or
decode time), then drives it in turn with

* ``gtc-loadgen bench --frontend kv=URL`` (this repo's load generator, headless, same engine as the booth app), and
* ``aiperf profile`` (PyPI, pinned, in a venv of its own under ~/.cache/gtc-demo/), with the demo's
  own tokenizer (roles/model_sync/files/local-model),

at the same concurrency, for the same duration, with multi-turn conversations of similar prompt
length and the same answer length. For each it reports requests per second and the client's
overhead: client TTFT minus the server's TTFT. The loadgen gets the server's TTFT per request
(Dynamo's ``nvext.timing.ttft_ms``); aiperf does not ask for it, so for both tools the script also
reads the frontend's own TTFT histogram before and after each run and compares means over the
same window. Everything is bounded (duration, one target, 127.0.0.1); ``playbooks/teardown.yml``
removes the stack on exit.

    .venv/bin/python benchmarks/loadgen_overhead.py        # or: benchmarks/run overhead

Writes benchmarks/loadgen_overhead_results.md (and prints the table).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gtc_bench.stack import DEMO_MODEL_DIR, RoleStack

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODEL = "nvidia/Llama-3.1-70B-Instruct-FP8"
AIPERF_VERSION = "0.13.0"
AIPERF_VENV = Path.home() / ".cache" / "gtc-demo" / f"aiperf-{AIPERF_VERSION}"


def ensure_aiperf() -> Path:
    """aiperf in a venv of its own: its dependencies clash with the tooling venv's."""
    exe = AIPERF_VENV / "bin" / "aiperf"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(AIPERF_VENV)], check=True)
        subprocess.run([str(AIPERF_VENV / "bin" / "pip"), "install", "-q", f"aiperf=={AIPERF_VERSION}"], check=True)
    return exe


def server_ttft(url: str) -> tuple[float, float]:
    """(sum seconds, count) of the frontend's TTFT histogram."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = count = 0.0
    for name, value in re.findall(r"^(dynamo_frontend_time_to_first_token_seconds_(?:sum|count))\{[^}]*\}\s+(\S+)",
                                  text, re.M):
        if name.endswith("_sum"):
            total += float(value)
        else:
            count += float(value)
    return total, count


def window_mean_ms(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    n = after[1] - before[1]
    return (after[0] - before[0]) / n * 1000 if n > 0 else None


def run_loadgen(url: str, args: argparse.Namespace) -> dict:
    cmd = [shutil.which("gtc-loadgen", path=str(Path(sys.executable).parent)) or "gtc-loadgen", "bench",
           "--frontend", f"kv={url}", "--model", MODEL, "--concurrency", str(args.concurrency), "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--turns", str(args.turns), "--max-tokens", str(args.osl),
           "--context-docs", str(args.context_docs), "--think", str(args.think)]
    before = server_ttft(url)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=args.duration + 120)
    after = server_ttft(url)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["server_ttft_ms_mean_window"] = window_mean_ms(before, after)
    return res


def run_aiperf(url: str, model: Path, work: Path, args: argparse.Namespace, isl: int) -> dict:
    exe = ensure_aiperf()
    art = work / "aiperf"
    shutil.rmtree(art, ignore_errors=True)  # an earlier run's export must not be read as this one's
    cmd = [str(exe), "profile", "--model", MODEL, "--url", url, "--endpoint-type", "chat", "--streaming",
           "--tokenizer", str(model), "--concurrency", str(args.concurrency),
           "--benchmark-duration", str(args.duration), "--warmup-duration", str(args.warmup),
           "--isl", str(isl), "--osl", str(args.osl), "--conversation-turn-mean", str(args.turns),
           "--conversation-num", str(max(args.concurrency * 4, 1000)), "--random-seed", "1",
           "--conversation-turn-delay-mean", str(int(args.think * 1000)),
           "--ui-type", "none", "--artifact-dir", str(art), "--no-server-metrics", "--no-gpu-telemetry",
           # token counts from the server's usage block, as the loadgen does (no client tokenizing)
           "--use-server-token-count"]
    before = server_ttft(url)
    t0 = time.perf_counter()
    # Not HF_HUB_OFFLINE: aiperf 0.13 then looks the local tokenizer folder up as a hub repo id.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 600, check=False)
    wall = time.perf_counter() - t0
    after = server_ttft(url)
    if proc.returncode != 0:
        raise RuntimeError(f"aiperf failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    export = art / "profile_export_aiperf.json"
    if not export.exists():
        raise RuntimeError(f"aiperf wrote no {export}")
    data = json.loads(export.read_text())

    def metric(*names: str) -> dict:
        for n in names:
            if n in data:
                return data[n]
        return {}

    ttft = metric("time_to_first_token", "ttft")
    thr = metric("request_throughput")
    return {
        "tool": f"aiperf {AIPERF_VERSION}", "rps": thr.get("avg"), "ttft_ms_p50": ttft.get("p50"),
        "ttft_ms_mean": ttft.get("avg"), "requests": metric("request_count").get("avg"),
        "errors": sum(e.get("count", 0) for e in data.get("error_summary") or []),
        "server_ttft_ms_mean_window": window_mean_ms(before, after), "wall_s": round(wall, 1),
    }


def fmt(x: float | None, nd: int = 1) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


LOAD_BEFORE = "?"


def main() -> int:
    global LOAD_BEFORE  # noqa: PLW0603 - recorded once, printed in the table's header
    LOAD_BEFORE = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path.home() / ".cache" / "gtc-demo" / "bench-home" / "overhead",
                    help="GTC_DEMO_HOME of the stack (teardown.yml removes it)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--osl", type=int, default=32, help="answer tokens per request")
    ap.add_argument("--context-docs", type=int, default=2, help="corpus documents per loadgen conversation")
    # A turn sent the instant the previous one ends waits ~25 ms inside the
    # frontend (measured: 27 ms back to back, 1.3 ms after a 100 ms pause), which
    # would be booked as client overhead; 0.1 s between turns keeps that out.
    ap.add_argument("--think", type=float, default=0.1, help="seconds between the turns of a conversation (both tools)")
    ap.add_argument("--isl", type=int, default=0,
                    help="aiperf prompt tokens (default: 2,700 per context document, like the loadgen's)")
    ap.add_argument("--out", default=str(HERE / "loadgen_overhead_results.md"))
    args = ap.parse_args()

    booth = RoleStack(args.home, {"kv": {"router_mode": "kv", "title": "KV-aware"}}, replicas=args.workers,
                      tensor_parallel_size=8 // args.workers,
                      # zero-delay workers with the mocker's own timing: what is left is the clients' and the frontend's cost
                      extra_vars={"dynamo_local_speedup_ratio": 0, "dynamo_local_perf_profile": ""})
    with booth:
        url = booth.urls["kv"]
        lg = run_loadgen(url, args)
        # aiperf's prompts as long as the loadgen's (2 corpus documents, ~3,000 words + turns).
        ap_res = run_aiperf(url, DEMO_MODEL_DIR, args.home.parent / "aiperf", args, isl=args.isl or 2700 * args.context_docs)

    lg_over_window = (lg["ttft_ms_mean"] - lg["server_ttft_ms_mean_window"]
                      if lg.get("server_ttft_ms_mean_window") is not None else None)
    ap_over_window = (ap_res["ttft_ms_mean"] - ap_res["server_ttft_ms_mean_window"]
                      if ap_res.get("server_ttft_ms_mean_window") is not None and ap_res.get("ttft_ms_mean") else None)
    rows = [
        ("requests / s", fmt(lg["rps"]), fmt(ap_res["rps"])),
        ("requests (errors)", f"{lg['requests']} ({lg['errors']})", f"{fmt(ap_res['requests'], 0)} ({ap_res['errors']})"),
        ("client TTFT p50, ms", fmt(lg["ttft_ms_p50"], 2), fmt(ap_res["ttft_ms_p50"], 2)),
        ("client TTFT mean, ms", fmt(lg["ttft_ms_mean"], 2), fmt(ap_res["ttft_ms_mean"], 2)),
        ("server TTFT mean over the run (frontend histogram), ms", fmt(lg["server_ttft_ms_mean_window"], 2),
         fmt(ap_res["server_ttft_ms_mean_window"], 2)),
        ("overhead: client mean - server mean, ms", fmt(lg_over_window, 2), fmt(ap_over_window, 2)),
        ("overhead per request (client - nvext ttft_ms), p50 / p90, ms",
         f"{fmt(lg['overhead_ms_p50'], 2)} / {fmt(lg['overhead_ms_p90'], 2)}", "not measured (no nvext)"),
        ("client event-loop lag (10 ms timer), p50 / p99, ms",
         f"{fmt(lg['loop_lag_ms_p50'], 2)} / {fmt(lg['loop_lag_ms_p99'], 2)}", "–"),
    ]
    ratio = lg["rps"] / ap_res["rps"] if ap_res.get("rps") else None
    table = ["| measure | gtc-loadgen | " + ap_res["tool"] + " |", "| --- | --- | --- |"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join([
        "# Load generator overhead (benchmarks/loadgen_overhead.py)",
        "",
        f"Target: the booth's local stack brought up by `site.yml -i inventories/local` (one Dynamo 1.6.1 KV-aware "
        f"frontend, {args.workers} mocker workers at `dynamo_local_speedup_ratio: 0`, the demo's WordPiece tokenizer), "
        f"127.0.0.1; `site.yml` {booth.seconds.get('site', '–')} s, `teardown.yml` {booth.seconds.get('teardown', '–')} s. "
        f"Each tool: {args.concurrency} concurrent streams, {args.duration:g} s measured after "
        f"{args.warmup:g} s warm-up, {args.turns}-turn conversations, {args.osl}-token answers, {args.think:g} s between turns, "
        f"loadgen contexts of {args.context_docs} corpus document(s), aiperf prompts of "
        f"{args.isl or 2700 * args.context_docs} tokens. "
        f"Machine: {os.cpu_count()} cores, shared by the tool, the frontend and the workers; "
        f"load average before the run {LOAD_BEFORE}.",
        "",
        *table,
        "",
        f"Rate ratio gtc-loadgen / aiperf: {fmt(ratio, 2)}.",
        "",
    ])
    Path(args.out).write_text(text)
    print(text)
    print(json.dumps({"loadgen": lg, "aiperf": ap_res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
