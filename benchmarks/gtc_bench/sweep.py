"""The simulator experiments of issue 9: the first probe, the router search, the sweep.

Each experiment writes its cells (settings + per-turn statistics) as JSON; report.py turns
them into Markdown tables and PNG plots. Every cell pools ``seeds`` independent traces
(the KV router breaks ties at random, so one trace is one sample).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from gtc_bench import shape as shapes
from gtc_bench import sim, trace

# The router settings this benchmark recommends for the booth (see the router search):
# follow-ups stick to the replica that holds their conversation unless it is badly overloaded.
RECOMMENDED = sim.RouterSettings(overlap_score_credit=2.0, prefill_load_scale=4.0)
# Dynamo 1.6.1's defaults, and the first probe's setting.
DEFAULT_KV = sim.RouterSettings()
PROBE_KV = sim.RouterSettings(overlap_score_credit=2.0)

# Load levels: target mean number of active conversations (the load generator's
# "concurrency"; conversations start as a Poisson process at the matching rate).
LOADS = (8, 16, 32, 64)
CONTEXTS = ("2k", "4k", "8k", "16k")


def _traces(
    workdir: Path, shp: shapes.ConversationShape, concurrency: float | None, seeds: Iterable[int],
    n: int | None = None, rate: float | None = None, tag: str = "",
) -> list[Path]:
    rate = rate or shapes.conversation_rate_for(concurrency or 16, shp)
    # enough conversations for several "generations" of the target concurrency
    n = n or max(64, int(6 * (concurrency or 16)))
    out = []
    for seed in seeds:
        path = workdir / f"trace-{tag}-s{seed}.jsonl"
        convs = trace.generate(n, shp, rate, seed)
        trace.write_jsonl(trace.to_mooncake(convs, shp), path)
        out.append(path)
    return out


def run_cell(
    traces: list[Path], topology: sim.Topology, mode: str, router: sim.RouterSettings, engine: sim.EngineSpec,
) -> dict:
    records: list[dict] = []
    for i, path in enumerate(traces):
        for rec in sim.simulate(path, topology, mode, router, engine):
            rec["run"] = i
            records.append(rec)
    return sim.turn_stats(records)


def _cell(settings: dict, stats: dict) -> dict:
    return {"settings": settings, "stats": stats}


def probe(workdir: Path, seeds: Iterable[int] = (1, 2, 3), gpus: Iterable[str | None] = (None, "h200")) -> list[dict]:
    """Issue 9's first probe: 64 conversations x 4 turns, 8K contexts, think 4-12 s, credit 2.

    ``gpu=None`` is the mocker's built-in timing with 16,384 blocks (what the probe used);
    ``h200`` is this repo's Llama 3.1 70B FP8 profile and capacity.
    """
    shp = shapes.PROBE_8K
    traces = _traces(workdir, shp, None, seeds, n=64, rate=1.0, tag="probe")
    cells = []
    for gpu, topo in itertools.product(gpus, sim.TOPOLOGIES):
        engine = sim.EngineSpec(gpu=gpu)
        for mode, router in (("round_robin", sim.RouterSettings()), ("kv_router", PROBE_KV), ("kv_router", RECOMMENDED)):
            stats = run_cell(traces, topo, mode, router, engine)
            cells.append(_cell({"gpu": gpu or "mocker-default", "topology": topo.label, "mode": mode,
                                "router": router.label if mode == "kv_router" else "-"}, stats))
    return cells


def router_search(
    workdir: Path, seeds: Iterable[int] = (1, 2), gpu: str = "h200", concurrency: int = 16, context: str = "4k",
    topologies: Iterable[sim.Topology] = sim.TOPOLOGIES,
) -> list[dict]:
    """KV-router settings at the booth load: credit x prefill_load_scale x session index x temperature."""
    shp = shapes.with_context(shapes.BOOTH, context)
    traces = _traces(workdir, shp, concurrency, seeds, tag=f"search-{context}-c{concurrency}")
    engine = sim.EngineSpec(gpu=gpu)
    grid = [sim.RouterSettings()]
    for credit, scale in itertools.product((1.0, 2.0, 4.0), (1.0, 2.0, 4.0, 8.0)):
        grid.append(sim.RouterSettings(credit, prefill_load_scale=scale))
    grid += [
        sim.RouterSettings(2.0, enable_session_prefix_index=True),
        sim.RouterSettings(2.0, prefill_load_scale=4.0, enable_session_prefix_index=True),
        sim.RouterSettings(2.0, router_temperature=0.1),
        sim.RouterSettings(2.0, router_temperature=0.5),
        sim.RouterSettings(2.0, prefill_load_scale=4.0, router_temperature=0.1),
        sim.RouterSettings(2.0, prefill_load_scale=4.0, kv_event_lag_ms=50.0),
    ]
    cells = []
    for topo in topologies:
        rr = run_cell(traces, topo, "round_robin", sim.RouterSettings(), engine)
        cells.append(_cell({"topology": topo.label, "mode": "round_robin", "router": "-"}, rr))
        for router in dict.fromkeys(grid):
            stats = run_cell(traces, topo, "kv_router", router, engine)
            cells.append(_cell({"topology": topo.label, "mode": "kv_router", "router": router.label,
                                "router_settings": asdict(router)}, stats))
    return cells


def load_sweep(
    workdir: Path, seeds: Iterable[int] = (1, 2), gpus: Iterable[str] = ("h200",),
    loads: Iterable[int] = LOADS, contexts: Iterable[str] = CONTEXTS,
    topologies: Iterable[sim.Topology] = sim.TOPOLOGIES,
) -> list[dict]:
    """Topology x load x context x {round-robin, KV default, KV recommended}."""
    seeds = tuple(seeds)
    cells = []
    for context, load in itertools.product(contexts, loads):
        shp = shapes.with_context(shapes.BOOTH, context)
        traces = _traces(workdir, shp, load, seeds, tag=f"sweep-{context}-c{load}")
        for gpu, topo in itertools.product(gpus, topologies):
            engine = sim.EngineSpec(gpu=gpu)
            for mode, router, name in (
                ("round_robin", sim.RouterSettings(), "round-robin"),
                ("kv_router", DEFAULT_KV, "kv-default"),
                ("kv_router", RECOMMENDED, "kv-recommended"),
            ):
                stats = run_cell(traces, topo, mode, router, engine)
                cells.append(_cell({"gpu": gpu, "topology": topo.label, "load": load, "context": context,
                                    "mode": mode, "router": name}, stats))
    return cells


def run_all(outdir: Path, quick: bool = False) -> dict[str, Any]:
    """All experiments; ``quick`` is the CI-sized version (seconds)."""
    workdir = outdir / "raw" / "traces"
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if quick:
        results = {
            "probe": probe(workdir, seeds=(1,), gpus=(None,)),
            "search": router_search(workdir, seeds=(1,), topologies=(sim.Topology(4, 2),)),
            "sweep": load_sweep(workdir, seeds=(1,), loads=(16,), contexts=("4k",)),
        }
    else:
        results = {
            "probe": probe(workdir),
            "search": router_search(workdir),
            "sweep": load_sweep(workdir, gpus=("h200", "h100")),
        }
    results["meta"] = {"quick": quick, "seconds": round(time.monotonic() - t0, 1),
                       # where the timings came from (measured kernels or the roofline), per GPU
                       "profile": {gpu: sim.perf.build_profile(gpu, 2).source for gpu in ("h200", "h100")}}
    (outdir / "simulator.json").write_text(json.dumps(results, indent=1, default=str))
    return results
