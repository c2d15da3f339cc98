"""One run of Dynamo's discrete-event simulator and the per-turn numbers it yields.

``simulate`` feeds a Mooncake trace to ``dynamo.replay.api.run_trace_replay`` (virtual clock,
the real KV router, mocker engines) with a topology (replicas x TP), a GPU's performance
profile and KV capacity (files/perf_profile), a router mode and router settings, and returns
the per-request records. ``turn_stats`` turns those records into what the report shows.

Needs the benchmark venv (ai-dynamo 1.6.1); everything else in gtc_bench does not.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

# The replay's Rust core logs every routing decision at INFO; keep the benchmark readable.
os.environ.setdefault("DYN_LOG", "error")

from perf_profile import llama_perf_profile as perf  # noqa: E402  (after DYN_LOG, which the replay reads)

from gtc_bench import scheduler as scheduler_source  # noqa: E402
from gtc_bench.scheduler import Scheduler  # noqa: E402

MISS_FRACTION = 0.5  # a follow-up "missed" when less than half its prompt came from cache


@dataclass(frozen=True)
class Topology:
    replicas: int
    tp: int

    @property
    def label(self) -> str:
        return f"{self.replicas}xTP{self.tp}"


TOPOLOGIES = (Topology(2, 4), Topology(4, 2), Topology(8, 1))


@dataclass(frozen=True)
class RouterSettings:
    """The KvRouterConfig fields the sweep varies (names as in dynamo._core.KvRouterConfig)."""

    overlap_score_credit: float = 1.0
    router_temperature: float = 0.0
    prefill_load_scale: float = 1.0
    enable_session_prefix_index: bool = False
    kv_event_lag_ms: float = 0.0  # a run argument of the replay, not a KvRouterConfig field

    @property
    def label(self) -> str:
        parts = [f"credit={self.overlap_score_credit:g}"]
        if self.router_temperature:
            parts.append(f"temp={self.router_temperature:g}")
        if self.prefill_load_scale != 1.0:
            parts.append(f"load_scale={self.prefill_load_scale:g}")
        if self.enable_session_prefix_index:
            parts.append("session_index")
        if self.kv_event_lag_ms:
            parts.append(f"event_lag={self.kv_event_lag_ms:g}ms")
        return " ".join(parts)

    def config(self) -> Any:
        from dynamo._core import KvRouterConfig  # pylint: disable=import-outside-toplevel

        return KvRouterConfig(
            overlap_score_credit=self.overlap_score_credit,
            router_temperature=self.router_temperature,
            prefill_load_scale=self.prefill_load_scale,
            enable_session_prefix_index=self.enable_session_prefix_index,
        )


@dataclass
class EngineSpec:
    """How each mocker replica is timed and sized."""

    gpu: str | None = "h200"  # None: the mocker's built-in polynomial timing
    num_gpu_blocks: int | None = None  # None: from the profile (or 16384 without one)
    profile_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "gtc-bench-profiles")
    # llama_perf_profile's source: "auto" = the measured H200 kernels (H100 derived), "roofline" = the fallback
    source: str = "auto"
    # The iteration scheduler: the dynamo role's dynamo_scheduler (gtc_bench.scheduler), which the
    # graph's engine config and the local mocker workers run with too.
    scheduler: Scheduler = field(default_factory=scheduler_source.load)

    def engine_args(self, tp: int) -> dict:
        engine: dict[str, Any] = {"block_size": perf.BLOCK_SIZE, "backend": "trtllm", "worker_type": "aggregated",
                                  **self.scheduler.mocker_engine_args()}
        blocks = self.num_gpu_blocks
        if self.gpu:
            profile = perf.build_profile(self.gpu, tp, self.source)
            kind = "roofline" if profile.source == "roofline" else "measured"
            npz = self.profile_dir / f"llama31-70b-fp8-{self.gpu}-tp{tp}-{kind}.npz"
            # always rewritten (a file left by an older profile must not be reused), atomically
            # (parallel sweep cells write the same file)
            tmp = npz.with_name(f"{npz.name}.{os.getpid()}.tmp")
            perf.write_npz(profile, tmp)
            os.replace(tmp, npz)
            engine["timing_model"] = {"type": "external", "provider": "dynamo_profile", "config": {"path": str(npz)}}
            blocks = blocks or profile.capacity.num_gpu_blocks
        engine["num_gpu_blocks"] = blocks or 16384
        return {"engine": engine}


def simulate(
    trace: str | Path,
    topology: Topology,
    router_mode: str,
    router: RouterSettings = RouterSettings(),
    engine: EngineSpec = EngineSpec(),
) -> list[dict]:
    """Per-request records of one simulator run (``round_robin`` or ``kv_router``)."""
    from dynamo.replay.api import run_trace_replay  # pylint: disable=import-outside-toplevel

    kwargs: dict[str, Any] = {}
    if router_mode == "kv_router":
        kwargs["router_config"] = router.config()
        if router.kv_event_lag_ms:
            kwargs["kv_event_lag_ms"] = router.kv_event_lag_ms
    report = run_trace_replay(
        str(trace),
        num_workers=topology.replicas,
        router_mode=router_mode,
        trace_block_size=perf.BLOCK_SIZE,
        capture_per_request=True,
        extra_engine_args=engine.engine_args(topology.tp),
        **kwargs,
    )
    return [_slim(r) for r in report.per_request]


def _slim(rec: dict) -> dict:
    return {
        "session_id": rec["session_id"],
        "turn": int(rec["turn_index"]) + 1,
        "arrival_ms": rec["arrival_time_ms"],
        "end_ms": rec["terminal_time_ms"],
        "ttft_ms": rec["ttft_ms"],
        "itl_ms": rec["itl_ms"],
        "input_length": rec["input_length"],
        "reused": rec["reused_input_tokens"] or 0,
        "worker": rec["decode_worker_idx"],
    }


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def is_miss(rec: dict) -> bool:
    return rec["reused"] < MISS_FRACTION * rec["input_length"]


def summarize(records: Iterable[dict]) -> dict:
    """median/p90/mean TTFT, count and cache-miss share of a set of requests."""
    recs = list(records)
    ttft = [r["ttft_ms"] for r in recs if r["ttft_ms"] is not None]
    if not ttft:
        return {"n": 0}
    return {
        "n": len(ttft),
        "median": statistics.median(ttft),
        "p90": _pct(ttft, 0.9),
        "mean": statistics.fmean(ttft),
        "miss": sum(is_miss(r) for r in recs) / len(recs),
        "reuse": sum(r["reused"] for r in recs) / max(1, sum(r["input_length"] for r in recs)),
    }


def turn_stats(records: list[dict], max_turn: int = 5) -> dict:
    """Summaries per turn number (1..max_turn), for follow-ups (turns >= 2) and overall."""
    out: dict[str, Any] = {"turns": {}}
    for t in range(1, max_turn + 1):
        sel = [r for r in records if r["turn"] == t]
        if sel:
            out["turns"][t] = summarize(sel)
    out["followups"] = summarize(r for r in records if r["turn"] >= 2)
    out["all"] = summarize(records)
    out["concurrency"] = mean_concurrency(records)
    return out


def mean_concurrency(records: list[dict]) -> float:
    """Mean number of conversations in progress (first arrival to last answer), per run.

    Records pooled from several runs carry a ``run`` key; each run has its own clock.
    """
    runs: dict[Any, dict[str, list[float]]] = {}
    for r in records:
        spans = runs.setdefault(r.get("run", 0), {})
        s = spans.setdefault(r["session_id"], [r["arrival_ms"], r["end_ms"]])
        s[0] = min(s[0], r["arrival_ms"])
        s[1] = max(s[1], r["end_ms"])
    values = []
    for spans in runs.values():
        start = min(span[0] for span in spans.values())
        end = max(span[1] for span in spans.values())
        values.append(sum(b - a for a, b in spans.values()) / max(1e-9, end - start))
    return statistics.fmean(values) if values else 0.0
