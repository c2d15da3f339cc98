"""Markdown tables and PNG plots from the experiments' JSON (benchmarks/results/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

BOOTH_CELL = (("gpu", "h200"), ("context", "4k"), ("load", 16))  # a tuple: safe as a default


def _profile_source(gpu: str) -> str:
    """Where the profile's timings come from (measured kernels or the roofline)."""
    from perf_profile import llama_perf_profile as perf  # pylint: disable=import-outside-toplevel

    return perf.build_profile(gpu, 2).source


def _f(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "–"
    return f"{a / b:.1f}×"


def table(headers: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _find(cells: list[dict], **want: Any) -> dict | None:
    for c in cells:
        if all(c["settings"].get(k) == v for k, v in want.items()):
            return c["stats"]
    return None


def _turn(stats: dict, t: int) -> dict:
    turns = stats["turns"]
    return turns.get(t) or turns.get(str(t)) or {}


# ---------------------------------------------------------------- probe


def probe_md(cells: list[dict]) -> str:
    out = ["## Reproducing the first probe\n\n",
           "64 conversations × 4 turns, 8K-token documents, think time 4–12 s, conversations starting "
           "as a Poisson process at 1/s, 3 seeds pooled. Follow-ups = turns ≥ 2; a miss = less than half "
           "of the prompt served from cache.\n"]
    for gpu in dict.fromkeys(c["settings"]["gpu"] for c in cells):
        label = ("the mocker's built-in timing, 16,384 blocks per replica (the probe's setting)"
                 if gpu == "mocker-default" else f"Llama 3.1 70B FP8 profile on {gpu.upper()} (files/perf_profile: {_profile_source(gpu)})")
        out.append(f"\n### {label}\n\n")
        rows = []
        for topo in dict.fromkeys(c["settings"]["topology"] for c in cells):
            rr = _find(cells, gpu=gpu, topology=topo, mode="round_robin")
            for c in cells:
                s = c["settings"]
                if s["gpu"] != gpu or s["topology"] != topo or s["mode"] != "kv_router":
                    continue
                kv = c["stats"]
                rows.append([
                    topo, s["router"],
                    _f(rr["followups"]["median"]), _f(kv["followups"]["median"]), _ratio(rr["followups"]["median"], kv["followups"]["median"]),
                    _f(rr["followups"]["mean"]), _f(kv["followups"]["mean"]), _ratio(rr["followups"]["mean"], kv["followups"]["mean"]),
                    _pct(rr["followups"]["miss"]), _pct(kv["followups"]["miss"]),
                ])
        out.append(table(["topology", "KV router", "RR median ms", "KV median ms", "RR/KV", "RR mean ms", "KV mean ms",
                          "RR/KV mean", "RR misses", "KV misses"], rows))
    return "".join(out)


# ---------------------------------------------------------------- router search


def search_md(cells: list[dict]) -> str:
    out = ["## Router settings at the booth load\n\n",
           "H200 profile, booth conversations (3–5 turns, 3–6K-token documents, think 4–12 s), ~16 active "
           "conversations, 2 seeds pooled. Ratio = round-robin / this setting, follow-up TTFT.\n"]
    for topo in dict.fromkeys(c["settings"]["topology"] for c in cells):
        rr = _find(cells, topology=topo, mode="round_robin")
        rows = [["round-robin", _f(rr["followups"]["median"]), _f(rr["followups"]["p90"]), _f(rr["followups"]["mean"]),
                 _pct(rr["followups"]["miss"]), "1.0×", "1.0×", _f(_turn(rr, 1).get("median"))]]
        for c in cells:
            s, st = c["settings"], c["stats"]
            if s["topology"] != topo or s["mode"] != "kv_router":
                continue
            f = st["followups"]
            rows.append([s["router"], _f(f["median"]), _f(f["p90"]), _f(f["mean"]), _pct(f["miss"]),
                         _ratio(rr["followups"]["median"], f["median"]), _ratio(rr["followups"]["mean"], f["mean"]),
                         _f(_turn(st, 1).get("median"))])
        out.append(f"\n### {topo}\n\n")
        out.append(table(["router", "median ms", "p90 ms", "mean ms", "misses", "RR/KV median", "RR/KV mean",
                          "turn 1 median ms"], rows))
    return "".join(out)


# ---------------------------------------------------------------- sweep


def sweep_md(cells: list[dict]) -> str:
    out = ["## Topology × load × context\n\n",
           "Follow-up (turns ≥ 2) TTFT. Load = target active conversations (Poisson starts at the matching "
           "rate); `conc` = measured mean. `kv-default` = Dynamo 1.6.1 defaults; `kv-rec` = "
           "overlap_score_credit 2, prefill_load_scale 4. Ratios are round-robin / KV.\n"]
    keys = dict.fromkeys((c["settings"]["gpu"], c["settings"]["context"]) for c in cells)
    for gpu, context in keys:
        rows = []
        for c in cells:
            s = c["settings"]
            if (s["gpu"], s["context"], s["router"]) != (gpu, context, "round-robin"):
                continue
            rr = c["stats"]
            kd = _find(cells, gpu=gpu, context=context, load=s["load"], topology=s["topology"], router="kv-default")
            kr = _find(cells, gpu=gpu, context=context, load=s["load"], topology=s["topology"], router="kv-recommended")
            rows.append([
                str(s["load"]), s["topology"], _f(rr["concurrency"], 1),
                f'{_f(rr["followups"]["median"])} / {_f(rr["followups"]["p90"])} / {_f(rr["followups"]["mean"])}',
                f'{_f(kd["followups"]["median"])} / {_f(kd["followups"]["p90"])} / {_f(kd["followups"]["mean"])}',
                f'{_f(kr["followups"]["median"])} / {_f(kr["followups"]["p90"])} / {_f(kr["followups"]["mean"])}',
                f'{_pct(rr["followups"]["miss"])} / {_pct(kd["followups"]["miss"])} / {_pct(kr["followups"]["miss"])}',
                _ratio(rr["followups"]["median"], kr["followups"]["median"]),
                _ratio(rr["followups"]["mean"], kr["followups"]["mean"]),
                _f(_turn(kr, 1).get("median")),
            ])
        out.append(f"\n### {gpu.upper()}, {context} documents\n\n")
        out.append(table(["load", "topology", "conc", "RR med/p90/mean ms", "kv-default med/p90/mean",
                          "kv-rec med/p90/mean", "misses RR/kv-def/kv-rec", "RR/kv-rec median", "RR/kv-rec mean",
                          "turn 1 median (kv-rec)"], rows))
    return "".join(out)


def per_turn_md(cells: list[dict], where_items: tuple = BOOTH_CELL) -> str:
    where = dict(where_items)
    out = [f"## Per turn at the booth setting ({where['gpu'].upper()}, {where['context']} documents, "
           f"~{where['load']} active conversations)\n\n",
           "TTFT median / p90 / mean in ms, and the share of requests that missed the cache.\n"]
    for topo in dict.fromkeys(c["settings"]["topology"] for c in cells):
        rows = []
        stats = {r: _find(cells, topology=topo, router=r, **where) for r in ("round-robin", "kv-default", "kv-recommended")}
        if not all(stats.values()):
            continue
        for t in range(1, 6):
            row = [str(t)]
            for r in ("round-robin", "kv-default", "kv-recommended"):
                s = _turn(stats[r], t)
                row.append(f'{_f(s.get("median"))} / {_f(s.get("p90"))} / {_f(s.get("mean"))} ({_pct(s.get("miss"))})' if s else "–")
            rr, kv = _turn(stats["round-robin"], t), _turn(stats["kv-recommended"], t)
            row.append(_ratio(rr.get("median"), kv.get("median")) if rr and kv else "–")
            rows.append(row)
        out.append(f"\n### {topo}\n\n")
        out.append(table(["turn", "round-robin", "kv-default", "kv-recommended", "RR/kv-rec median"], rows))
    return "".join(out)


def headline(cells: list[dict], where_items: tuple = BOOTH_CELL) -> str:
    where = dict(where_items)
    rows = []
    for topo in dict.fromkeys(c["settings"]["topology"] for c in cells):
        rr = _find(cells, topology=topo, router="round-robin", **where)
        kd = _find(cells, topology=topo, router="kv-default", **where)
        kr = _find(cells, topology=topo, router="kv-recommended", **where)
        if not (rr and kd and kr):
            continue
        rows.append([
            topo, _f(_turn(kr, 1).get("median")),
            _f(rr["followups"]["median"]), _f(kd["followups"]["median"]), _f(kr["followups"]["median"]),
            _ratio(rr["followups"]["median"], kr["followups"]["median"]),
            _ratio(rr["followups"]["mean"], kr["followups"]["mean"]),
            f'{_pct(rr["followups"]["miss"])} / {_pct(kd["followups"]["miss"])} / {_pct(kr["followups"]["miss"])}',
        ])
    return table(["topology", "turn 1 median ms", "follow-up median RR ms", "KV default ms", "KV recommended ms",
                  "RR/KV median", "RR/KV mean", "misses RR / KV default / KV rec"], rows)


# ---------------------------------------------------------------- plots


def _plt():
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    return plt


COLORS = {"round-robin": "#d62728", "kv-default": "#ff7f0e", "kv-recommended": "#2ca02c", "live": "#1f77b4"}


def _turn_axis(ax: Any, title: str) -> None:
    """A TTFT-by-turn panel: turns 1-5, log scale, grid."""
    ax.set_title(title)
    ax.set_xlabel("turn")
    ax.set_yscale("log")
    ax.set_xticks(range(1, 6))
    ax.grid(True, which="both", alpha=0.3)


def plot_ttft_by_turn(cells: list[dict], path: Path, where_items: tuple = BOOTH_CELL) -> Path | None:
    where = dict(where_items)
    plt = _plt()
    topos = list(dict.fromkeys(c["settings"]["topology"] for c in cells))
    fig, axes = plt.subplots(1, len(topos), figsize=(4.2 * len(topos), 4.4), sharey=True)
    axes = [axes] if len(topos) == 1 else list(axes)
    for ax, topo in zip(axes, topos):
        for r in ("round-robin", "kv-default", "kv-recommended"):
            st = _find(cells, topology=topo, router=r, **where)
            if not st:
                continue
            ts = [t for t in range(1, 6) if _turn(st, t)]
            med = [_turn(st, t)["median"] for t in ts]
            p90 = [_turn(st, t)["p90"] for t in ts]
            ax.plot(ts, med, "o-", color=COLORS[r], label=f"{r} median")
            ax.plot(ts, p90, "x:", color=COLORS[r], alpha=0.7, label=f"{r} p90")
        _turn_axis(ax, f"{topo} ({where['gpu'].upper()})")
    axes[0].set_ylabel("TTFT (ms, log)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(f"Simulated TTFT by turn: {where['context']} documents, ~{where['load']} active conversations")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_vs_load(cells: list[dict], path: Path, metric: Callable[[dict, dict], float | None], ylabel: str,
                 title: str, gpu: str = "h200", log: bool = False) -> Path:
    plt = _plt()
    contexts = list(dict.fromkeys(c["settings"]["context"] for c in cells if c["settings"]["gpu"] == gpu))
    topos = list(dict.fromkeys(c["settings"]["topology"] for c in cells))
    fig, axes = plt.subplots(1, len(contexts), figsize=(3.8 * len(contexts), 3.6), sharey=True)
    axes = [axes] if len(contexts) == 1 else list(axes)
    markers = dict(zip(topos, "os^D"))
    for ax, ctx in zip(axes, contexts):
        loads = sorted({c["settings"]["load"] for c in cells if c["settings"]["context"] == ctx})
        for topo in topos:
            ys = []
            for load in loads:
                rr = _find(cells, gpu=gpu, context=ctx, load=load, topology=topo, router="round-robin")
                kv = _find(cells, gpu=gpu, context=ctx, load=load, topology=topo, router="kv-recommended")
                ys.append(metric(rr, kv) if rr and kv else None)
            ax.plot(loads, ys, marker=markers[topo], label=topo)
        ax.set_title(f"{ctx} documents")
        ax.set_xlabel("active conversations")
        ax.set_xscale("log", base=2)
        ax.set_xticks(loads, [str(x) for x in loads])
        if log:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=8)
    fig.suptitle(f"{title} ({gpu.upper()})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_search(cells: list[dict], path: Path) -> Path:
    plt = _plt()
    topos = list(dict.fromkeys(c["settings"]["topology"] for c in cells))
    credits, scales = (1.0, 2.0, 4.0), (1.0, 2.0, 4.0, 8.0)
    fig, axes = plt.subplots(1, len(topos), figsize=(4.2 * len(topos), 3.6))
    axes = [axes] if len(topos) == 1 else list(axes)
    for ax, topo in zip(axes, topos):
        grid = []
        for cr in credits:
            row = []
            for sc in scales:
                want = {"overlap_score_credit": cr, "router_temperature": 0.0, "prefill_load_scale": sc,
                        "enable_session_prefix_index": False, "kv_event_lag_ms": 0.0}
                st = next((c["stats"] for c in cells if c["settings"]["topology"] == topo
                           and c["settings"].get("router_settings") == want), None)
                row.append(100 * st["followups"]["miss"] if st else float("nan"))
            grid.append(row)
        im = ax.imshow(grid, cmap="RdYlGn_r", vmin=0, vmax=40, origin="lower")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.0f}%", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(scales)), [f"{s:g}" for s in scales])
        ax.set_yticks(range(len(credits)), [f"{c:g}" for c in credits])
        ax.set_xlabel("prefill_load_scale")
        ax.set_ylabel("overlap_score_credit")
        ax.set_title(f"KV misses on follow-ups, {topo}")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# ---------------------------------------------------------------- live vs simulator


def live_md(live: dict) -> str:
    out = [f"## Live local stack vs simulator (same {live['conversations']} conversations, "
           f"~{live['load']} active, {live['gpu'].upper()} profile)\n\n",
           "Live = the booth's local stack as `site.yml -i inventories/local` brings it up (the dynamo role's "
           "KV-aware frontend with its router policy and a round-robin frontend over the same `dynamo.mocker` "
           "workers, timed by files/perf_profile), in a benchmark home on free ports, torn down by "
           "`playbooks/teardown.yml`; prompts in the demo's own tokenizer "
           f"(`{live.get('tokenizer', '?')}`, one token per word); TTFT measured on the stream by the load "
           "generator's client (`gtc_loadgen.client`; server = Dynamo's own `nvext.timing.ttft_ms`). "
           "Sim = the offline replay of the same conversations. Median / p90 in ms; misses = cached < half the prompt.\n"]
    for topo, e in live["topologies"].items():
        rows = []
        for t in ["followups"] + [1, 2, 3, 4, 5]:
            cells = []
            for mode, simkey in (("kv", "sim_kv"), ("round_robin", "sim_round_robin")):
                lv = e[mode]["followups"] if t == "followups" else _turn(e[mode], t)
                sv = (e[mode].get("server") or {}).get("followups") if t == "followups" else _turn(e[mode].get("server") or {"turns": {}}, t)
                sm = e[simkey]["followups"] if t == "followups" else _turn(e[simkey], t)
                cells += [f'{_f(lv.get("median"))} / {_f(lv.get("p90"))}' if lv else "–",
                          _f((sv or {}).get("median")),
                          f'{_f(sm.get("median"))} / {_f(sm.get("p90"))}' if sm else "–",
                          f'{_pct(lv.get("miss"))} / {_pct(sm.get("miss"))}' if lv and sm else "–"]
            rows.append(["turns ≥ 2" if t == "followups" else str(t)] + cells)
        lk, lr = e["kv"]["followups"], e["round_robin"]["followups"]
        sk, sr = e["sim_kv"]["followups"], e["sim_round_robin"]["followups"]
        out.append(f"\n### {topo} ({e['kv']['requests'] + e['round_robin']['requests']} live requests, "
                   f"{e['kv']['errors'] + e['round_robin']['errors']} errors)\n\n")
        out.append(table(["turn", "KV live client", "KV live server", "KV sim", "KV misses live/sim",
                          "RR live client", "RR live server", "RR sim", "RR misses live/sim"], rows))
        out.append(f"\nFollow-up median RR/KV: live {_ratio(lr.get('median'), lk.get('median'))}, "
                   f"sim {_ratio(sr.get('median'), sk.get('median'))}; mean RR/KV: live "
                   f"{_ratio(lr.get('mean'), lk.get('mean'))}, sim {_ratio(sr.get('mean'), sk.get('mean'))}. "
                   f"Live minus sim, follow-up median: KV {_f(lk['median'] - sk['median'])} ms, "
                   f"RR {_f(lr['median'] - sr['median'])} ms; turn 1 median: KV "
                   f"{_f(_turn(e['kv'], 1)['median'] - _turn(e['sim_kv'], 1)['median'])} ms.\n")
        check = e["kv"].get("prompt_tokens_vs_trace") or {}
        if check.get("requests"):
            out.append(f"\nServed prompt tokens / the trace's (KV pass, {check['requests']} requests): median "
                       f"{check['served_over_trace_median']:.3f}, range {check['min']:.3f}–{check['max']:.3f}.\n")
        seconds = (e.get("stack") or {}).get("seconds") or {}
        if seconds:
            out.append(f"\nStack: `site.yml` {seconds.get('site', '–')} s, `teardown.yml` {seconds.get('teardown', '–')} s; "
                       f"whole topology {e.get('seconds', '–')} s.\n")
    return "".join(out)


def plot_live(live: dict, path: Path) -> Path:
    plt = _plt()
    topos = list(live["topologies"])
    fig, axes = plt.subplots(1, len(topos), figsize=(4.6 * len(topos), 3.8), sharey=True)
    axes = [axes] if len(topos) == 1 else list(axes)
    for ax, topo in zip(axes, topos):
        e = live["topologies"][topo]
        for key, label, color, style in (("kv", "KV live", COLORS["kv-recommended"], "o-"),
                                         ("sim_kv", "KV sim", COLORS["kv-recommended"], "s--"),
                                         ("round_robin", "RR live", COLORS["round-robin"], "o-"),
                                         ("sim_round_robin", "RR sim", COLORS["round-robin"], "s--")):
            ts = [t for t in range(1, 6) if _turn(e[key], t)]
            ax.plot(ts, [_turn(e[key], t)["median"] for t in ts], style, color=color, label=label,
                    alpha=1.0 if "live" in label else 0.6)
        _turn_axis(ax, f"{topo}: live (2 cores) vs simulator")
    axes[0].set_ylabel("median TTFT (ms, log)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(results_dir: Path, sim_results: dict, live: dict | None = None) -> list[Path]:
    """Write every table and plot; returns the files written."""
    results_dir.mkdir(parents=True, exist_ok=True)
    written = []
    md = ["# Simulator results (Dynamo 1.6.1 offline replay)\n\n",
          f"Generated by `benchmarks/run`{' (quick mode)' if sim_results.get('meta', {}).get('quick') else ''}; "
          f"simulation took {sim_results.get('meta', {}).get('seconds')} s.\n\n"]
    profile = sim_results.get("meta", {}).get("profile")
    if profile:
        md.append("Timing of the mocker engines (files/perf_profile): "
                  + "; ".join(f"{gpu.upper()}: {src}" for gpu, src in profile.items()) + ".\n\n")
    if sim_results.get("sweep"):
        md += ["## Headline\n\n", headline(sim_results["sweep"]), "\n"]
    md.append(probe_md(sim_results["probe"]) + "\n")
    md.append(search_md(sim_results["search"]) + "\n")
    md.append(per_turn_md(sim_results["sweep"]) + "\n")
    md.append(sweep_md(sim_results["sweep"]))
    p = results_dir / "simulator.md"
    p.write_text("".join(md), encoding="utf-8")
    written.append(p)
    written.append(plot_ttft_by_turn(sim_results["sweep"], results_dir / "ttft_by_turn.png"))
    gpus = dict.fromkeys(c["settings"]["gpu"] for c in sim_results["sweep"])
    for gpu in gpus:
        written.append(plot_vs_load(
            sim_results["sweep"], results_dir / f"ratio_vs_load_{gpu}.png",
            lambda rr, kv: rr["followups"]["median"] / kv["followups"]["median"],
            "RR / KV median TTFT, turns ≥ 2", "How much faster KV-aware follow-ups are", gpu=gpu, log=True))
        written.append(plot_vs_load(
            sim_results["sweep"], results_dir / f"rr_misses_vs_load_{gpu}.png",
            lambda rr, kv: 100 * rr["followups"]["miss"],
            "round-robin follow-ups missing the cache (%)", "Round-robin cache misses", gpu=gpu))
    written.append(plot_search(sim_results["search"], results_dir / "router_search.png"))
    if live:
        p = results_dir / "live.md"
        p.write_text("# Live local stack vs simulator\n\n" + live_md(live), encoding="utf-8")
        written += [p, plot_live(live, results_dir / "live_vs_sim.png")]
    return [w for w in written if w]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def booth_table(results: dict[str, Any]) -> str:
    """booth.json as Markdown: follow-up p50/p90 per routing, misses and the p90 ratio, per run."""
    rows = []
    for run in results["runs"]:
        h = run["headlines"]
        cells = [run["topology"], str(run["seed"]), run["source"]]
        for routing in ("kv", "round_robin"):
            r = h.get(routing)
            cells += ["–", "–", "–"] if r is None else [_f(r["p50_ms"]), _f(r["p90_ms"]), _pct(r["miss_share"])]
        ratio = h.get("ratio_p90")
        cells.append("–" if ratio is None else f"{ratio:.1f}×")
        load = run.get("load_average")
        cells.append("–" if not load else f"{load[0][0]:.1f} → {load[1][0]:.1f}")
        rows.append(cells)
    mode = "A/B (conversations alternate)" if results["ab"] else "one routing at a time"
    head = (f"Booth preset, closed loop ({results['load']['concurrency']} conversations, {results['load']['rate']:g} req/s cap), "
            f"{mode}, profile {results['gpu']}, scheduler {results['scheduler']}. Follow-up TTFT in ms.\n\n")
    return head + table(["topology", "seed", "source", "KV p50", "KV p90", "KV misses", "RR p50", "RR p90", "RR misses",
                         "RR/KV p90", "load avg (1 min)"], rows)
