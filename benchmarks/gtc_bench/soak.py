"""``benchmarks/run soak [--minutes 30]``: the booth preset for a long while against a local demo.

The stack is the booth's own (``stack.RoleStack``: ``site.yml -i inventories/local`` in a benchmark
home, on free ports, torn down after), as ``benchmarks/run booth --live`` brings it up. The load
generator runs its ``booth`` preset in A/B mode (both routings, as at the booth) from a reset. Each
minute the soak samples:

- the resident memory (RSS, with its child processes) of the load generator and of each frontend,
  found by their command lines under the demo's home;
- the requests the load generator sent and the ones that failed in that minute (``/api/state``:
  ``stats.totals`` and ``stats.requests_by_routing``);
- whether the load generator's in-memory history stays within its caps (``history_bounds``).

It writes ``soak.json`` and ``soak.md`` (one row a minute) to the results folder and reports each
process's memory slope (MiB per hour, least squares over the minutes after the warm-up) and the
errors. It passes when every slope is at most ``FLAT_MIB_PER_HOUR`` and no request failed.

``tests/integration/faults/test_soak_short.py`` runs three minutes of the same against the test
suite's local demo, with the same sampling and bounds. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"
BENCH_HOME = Path.home() / ".cache" / "gtc-demo" / "bench-home"
FRONTENDS = {"kv": {"router_mode": "kv", "title": "KV-aware"},
             "round_robin": {"router_mode": "round-robin", "title": "Round-robin"}}
# Minutes left out of the slope: the load ramps up and the caches, rings and the allocator fill.
WARMUP_MIN = 5
# "Flat": at most this many MiB per hour after the warm-up (30 MiB over a whole booth day of 3 h
# for a process of 100-300 MiB).
FLAT_MIB_PER_HOUR = 10.0

# The load generator's caps as /api/state and /api/conversations show them
# (apps/loadgen/src/gtc_loadgen): stats.py snapshot()'s series of the last 120 one-second buckets
# (of the 300 Stats keeps), last_errors[-5:] (of 20), MAX_DOTS = 600 dots per routing, headlines
# over at most MAX_FOLLOWUPS = 20000 follow-ups per routing; server.py lists at most 100 of the
# 200 conversations Stats keeps. What the API cannot show (the rings behind it) the RSS shows.
CAPS = {"series_points": 120, "dots_per_routing": 600, "last_errors": 5, "conversations": 100,
        "followups_per_routing": 20000}


# -- the demo's processes -------------------------------------------------------------------
def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in (Path("/proc") / str(pid) / "task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and of all its descendants, in KiB (0 for a process that is gone)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            for line in (Path("/proc") / str(current) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo += _children(current)
    return total


def demo_processes(home: Path, frontend_ports: dict[str, int]) -> dict[str, int]:
    """{"loadgen": pid, "frontend:<routing>": pid} of the demo living in ``home``.

    The load generator is ``gtc-loadgen serve`` from the demo's venv; a frontend is
    ``python -m dynamo.frontend ... --http-port <its port>``, both with the home in their command line.
    """
    found: dict[str, int] = {}
    by_port = {str(port): routing for routing, port in frontend_ports.items()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        cmd = _cmdline(int(proc.name))
        if str(home) not in cmd:
            continue
        words = cmd.split()
        if "gtc-loadgen" in cmd and "serve" in words:
            found.setdefault("loadgen", int(proc.name))
        elif "dynamo.frontend" in words and "--http-port" in words:
            port = words[words.index("--http-port") + 1] if words.index("--http-port") + 1 < len(words) else ""
            if port in by_port:
                found.setdefault(f"frontend:{by_port[port]}", int(proc.name))
    return found


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# -- the load generator's API ---------------------------------------------------------------
@dataclass
class Page:
    """The load generator's HTTP API (apps/loadgen server.py), with the presenter token if one is set."""

    url: str
    token: str | None = None

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        if self.token and method != "GET":
            headers["authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - a 127.0.0.1 URL of the demo
            return json.loads(resp.read() or b"null")

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/api/state")

    def conversations(self) -> Any:
        return self._call("GET", "/api/conversations")

    def post(self, path: str, body: dict | None = None) -> Any:
        return self._call("POST", path, body or {})


def counts(state: dict[str, Any]) -> dict[str, Any]:
    """Requests sent and failed so far, in all and per routing (``/api/state``'s stats)."""
    stats = state.get("stats", {})
    totals = stats.get("totals", {})
    per = stats.get("requests_by_routing", {})
    return {"requests": int(totals.get("requests", 0)), "errors": int(totals.get("errors", 0)),
            "by_routing": {r: {"sent": c.get("sent", 0), "failed": c.get("failed", 0),
                               "failed_by_kind": c.get("failed_by_kind", {})} for r, c in per.items()}}


def history_bounds(state: dict[str, Any], conversations: Any) -> list[str]:
    """What of the load generator's history exceeds its caps (``CAPS``); empty when all is bounded."""
    out = []
    stats = state.get("stats", {})
    series = stats.get("series", {})
    for key in ("t", "rps", "errors", "active", "itl_ms"):
        if len(series.get(key, ())) > CAPS["series_points"]:
            out.append(f"series.{key} has {len(series[key])} points (cap {CAPS['series_points']})")
    for key in ("ttft", "ttft_first"):
        for routing, points in series.get(key, {}).items():
            if len(points) > CAPS["series_points"]:
                out.append(f"series.{key}.{routing} has {len(points)} points (cap {CAPS['series_points']})")
    for routing, dots in stats.get("dots", {}).items():
        if len(dots) > CAPS["dots_per_routing"]:
            out.append(f"dots.{routing} has {len(dots)} (cap {CAPS['dots_per_routing']})")
    if len(stats.get("last_errors", ())) > CAPS["last_errors"]:
        out.append(f"last_errors has {len(stats['last_errors'])} (cap {CAPS['last_errors']})")
    for routing, head in stats.get("headlines", {}).items():
        n = head.get("n") if isinstance(head, dict) else None
        if isinstance(n, int) and n > CAPS["followups_per_routing"]:
            out.append(f"headlines.{routing} counts {n} follow-ups (cap {CAPS['followups_per_routing']})")
    convs = conversations.get("conversations", conversations) if isinstance(conversations, dict) else conversations
    if isinstance(convs, list) and len(convs) > CAPS["conversations"]:
        out.append(f"/api/conversations lists {len(convs)} (cap {CAPS['conversations']})")
    return out


def slope_per_hour(minutes: list[float], values: list[float]) -> float | None:
    """Least-squares slope of ``values`` over ``minutes``, per hour; None under two points."""
    n = len(minutes)
    if n < 2:
        return None
    mx, my = sum(minutes) / n, sum(values) / n
    sxx = sum((x - mx) ** 2 for x in minutes)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(minutes, values, strict=True))
    return sxy / sxx * 60.0


# -- the soak ---------------------------------------------------------------------------------
@dataclass
class Soak:
    """Samples of one soak: ``rows`` (one per sample) and the summary ``finish`` computes."""

    page: Page
    home: Path
    frontend_ports: dict[str, int]
    rows: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    saved_settings: dict[str, Any] | None = None

    def start(self, ab: bool = True) -> None:
        """The booth preset (A/B: both routings) from a reset, running; the settings found are kept."""
        self.saved_settings = self.page.state().get("settings")
        self.page.post("/api/preset/booth")
        self.page.post("/api/settings", {"ab": ab})
        self.page.post("/api/reset")
        self.page.post("/api/settings", {"running": True})
        self.started = time.time()

    def sample(self) -> dict[str, Any]:
        procs = demo_processes(self.home, self.frontend_ports)
        state = self.page.state()
        now = counts(state)
        prev = self.rows[-1] if self.rows else {"requests": 0, "errors": 0}
        row = {
            "minute": round((time.time() - self.started) / 60.0, 2),
            "rss_mib": {name: round(rss_kib(pid) / 1024.0, 1) for name, pid in sorted(procs.items())},
            "pids": procs,
            "requests": now["requests"], "errors": now["errors"],
            "requests_delta": now["requests"] - prev["requests"], "errors_delta": now["errors"] - prev["errors"],
            "by_routing": now["by_routing"],
            "bounds": history_bounds(state, self.page.conversations()),
            "load_average": load_average(),
        }
        self.rows.append(row)
        return row

    def stop(self) -> None:
        """Stop the load and put back the settings found at the start (running again if it was)."""
        self.page.post("/api/settings", {"running": False})
        if self.saved_settings:
            try:
                self.page.post("/api/settings", dict(self.saved_settings))
            except OSError:
                pass

    def summary(self, warmup_min: float = WARMUP_MIN) -> dict[str, Any]:
        names = sorted({name for row in self.rows for name in row["rss_mib"]})
        slopes: dict[str, float | None] = {}
        for name in names:
            pts = [(r["minute"], r["rss_mib"][name]) for r in self.rows if name in r["rss_mib"] and r["minute"] >= warmup_min]
            slopes[name] = None if len(pts) < 2 else round(slope_per_hour([p[0] for p in pts], [p[1] for p in pts]) or 0.0, 2)
        last = self.rows[-1] if self.rows else {"requests": 0, "errors": 0}
        bounds = sorted({b for r in self.rows for b in r["bounds"]})
        flat = all(s is not None and s <= FLAT_MIB_PER_HOUR for s in slopes.values()) and bool(slopes)
        return {
            "minutes": self.rows[-1]["minute"] if self.rows else 0.0,
            "requests": last["requests"], "errors": last["errors"],
            "error_rate": round(last["errors"] / last["requests"], 5) if last["requests"] else None,
            "slope_mib_per_hour": slopes, "warmup_min": warmup_min, "flat_mib_per_hour": FLAT_MIB_PER_HOUR,
            "bounds_exceeded": bounds,
            "passed": flat and last["errors"] == 0 and not bounds,
        }


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    names = sorted({name for row in rows for name in row["rss_mib"]})
    s = result["summary"]
    lines = [
        f"# Soak: the booth preset (A/B) for {s['minutes']:.0f} minutes on the local demo",
        "",
        f"Run {result['started_at']} with `benchmarks/run soak --minutes {result['args']['minutes']}` "
        f"({result['stack'].get('topology', '2 x TP4')}, mocker timed as {result['stack'].get('gpu', 'H200').upper()}). "
        f"Machine: {result['machine']['cpus']} CPUs, shared with other jobs; `uptime` before: "
        f"`{result['machine']['uptime_before']}`, after: `{result['machine']['uptime_after']}`.",
        "",
        f"**{'PASS' if s['passed'] else 'FAIL'}**: {s['requests']} requests, {s['errors']} failed "
        f"(error rate {s['error_rate']}); memory slope after minute {s['warmup_min']} (MiB/hour, least squares): "
        + ", ".join(f"{n} {v}" for n, v in s["slope_mib_per_hour"].items())
        + f" (flat: at most {s['flat_mib_per_hour']} MiB/hour); history over its caps: "
        + ("none" if not s["bounds_exceeded"] else "; ".join(s["bounds_exceeded"])) + ".",
        "",
        "| minute | " + " | ".join(f"{n} RSS (MiB)" for n in names) + " | requests | failed | load average |",
        "|---" * (len(names) + 4) + "|",
    ]
    for r in rows:
        lines.append(f"| {r['minute']:.1f} | " + " | ".join(str(r["rss_mib"].get(n, "–")) for n in names)
                     + f" | {r['requests_delta']} | {r['errors_delta']} | {' '.join(str(x) for x in r['load_average'])} |")
    return "\n".join(lines) + "\n"


def run(minutes: float, out: Path, home: Path, interval_s: float = 60.0) -> dict[str, Any]:
    from gtc_bench import stack  # pylint: disable=import-outside-toplevel

    uptime_before = os.popen("uptime").read().strip()  # noqa: S605,S607 - a fixed command
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    with stack.RoleStack(home / "soak-2xTP4", FRONTENDS, replicas=2, tensor_parallel_size=4, gpu="h200") as booth:
        page = Page(f"http://127.0.0.1:{booth.ports['loadgen']}", os.environ.get("GTC_PRESENTER_TOKEN") or None)
        soak = Soak(page, booth.home, {r: booth.ports[r] for r in FRONTENDS})
        soak.start(ab=True)
        try:
            deadline = soak.started + minutes * 60.0
            soak.sample()
            while time.time() < deadline:
                time.sleep(max(0.0, min(interval_s, deadline - time.time())))
                row = soak.sample()
                print(f"soak {row['minute']:5.1f} min: rss {row['rss_mib']}, +{row['requests_delta']} requests, "
                      f"+{row['errors_delta']} failed, load {row['load_average']}", flush=True)
        finally:
            soak.stop()
        stack_info = {"ports": booth.ports, "topology": "2 x TP4", "gpu": "h200", "seconds": booth.seconds}
    result = {"args": {"minutes": minutes, "interval_s": interval_s}, "started_at": started_at,
              "machine": {"cpus": os.cpu_count(), "uptime_before": uptime_before,
                          "uptime_after": os.popen("uptime").read().strip()},  # noqa: S605,S607
              "stack": stack_info, "caps": CAPS, "rows": soak.rows,
              "summary": soak.summary(min(WARMUP_MIN, minutes / 6.0))}
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "soak.md").write_text(markdown(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/run soak", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--home", type=Path, default=BENCH_HOME, help="GTC_DEMO_HOME parent of the soak's stack")
    args = parser.parse_args(argv)
    result = run(args.minutes, args.out, args.home, args.interval)
    s = result["summary"]
    print(f"soak: {s['requests']} requests, {s['errors']} failed, slopes (MiB/h) {s['slope_mib_per_hour']}, "
          f"bounds exceeded {s['bounds_exceeded'] or 'none'}: {'PASS' if s['passed'] else 'FAIL'}")
    return 0 if s["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
