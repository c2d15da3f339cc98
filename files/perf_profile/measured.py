#!/usr/bin/env python
"""The mocker's tables built from measured per-layer timings (the JSON ``measure.py`` writes).

Standard library only (the local demo runs this under the infra Python, which has no numpy).

Per TP rank, from the measurement:

* **prefill** of n new tokens = ``PREFILL_FIXED_MS`` + 80 x layer(n) + 2 x 80 x all-reduce(n tokens)
  + lm_head(1 row); layer(n) is the measured whole-layer time, piecewise linear between the
  measured token counts (made non-decreasing), extrapolated linearly past the last one;
* **decode** of a batch holding ``kv`` KV tokens at context ``ctx`` (batch b = kv / ctx, at least 1)
  = ``DECODE_FIXED_MS`` + 80 x (dense(b) + attention(b, kv)) + 2 x 80 x all-reduce(b tokens)
  + lm_head(b rows). dense(b) = measured layer minus measured attention (median over the contexts
  measured at that batch); attention(b, kv) = a0 + a1 b + a2 kv, a least-squares fit (relative
  error) of the measured decode attention;
* **all-reduce** (not measured: one GPU here; issue 14 measures it): per call
  ``ALLREDUCE_LATENCY_US`` + 2 (TP-1)/TP x bytes / ``ALLREDUCE_BUS_BANDWIDTH`` for bf16 messages of
  tokens x 8,192, two per layer, none at TP 1;
* **H100** (none measured): the H200 timings with each op's memory-bound share slowed by the
  bandwidth ratio 4.8 / 3.35 (same chip and clocks, less HBM bandwidth): an op whose fewest bytes
  over the measured copy bandwidth exceed its FLOPs over the measured matrix rate is memory-bound.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
from pathlib import Path

if __package__:  # imported as the perf_profile package
    from . import llama_perf_profile as perf
    from . import measure
else:  # run as a file (python files/perf_profile/measured.py): Python puts this folder first on sys.path
    import llama_perf_profile as perf
    import measure

DATA = Path(__file__).resolve().parent / "data"
# The committed measurement of each GPU; a GPU without one is derived from SOURCE_OF.
TIMINGS = {"h200": DATA / "h200-layer-timings.json"}
SOURCE_OF = {"h200": "h200", "h100": "h200"}

# All-reduce model (stated, not measured): NCCL ring all-reduce over NVLink 4 / NVSwitch with
# NVLink SHARP off. 15 us small-message latency (the roofline's DECODE_ALLREDUCE_US_PER_LAYER);
# 360 GB/s bus bandwidth, what nccl-tests' all_reduce_perf typically reports for large messages
# on 8 x H100 SXM without NVLS (NVLink 4 peaks at 450 GB/s per direction).
ALLREDUCE_LATENCY_US = 15.0
ALLREDUCE_BUS_BANDWIDTH = 360e9
ALLREDUCES_PER_LAYER = 2


def allreduce_ms(tp: int, tokens: float) -> float:
    """One all-reduce of a [tokens, 8192] bf16 tensor over ``tp`` ranks (model above)."""
    if tp == 1:
        return 0.0
    nbytes = max(0.0, tokens) * measure.HIDDEN * 2
    return (ALLREDUCE_LATENCY_US * 1e-6 + 2.0 * (tp - 1) / tp * nbytes / ALLREDUCE_BUS_BANDWIDTH) * 1e3


def _interp(xs: list[float], ys: list[float], x: float) -> float:
    """Piecewise linear through (xs, ys) (xs ascending), flat below the first point, linear past the last."""
    if len(xs) == 1 or x <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            t = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
            return ys[i - 1] + t * (ys[i] - ys[i - 1])
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return ys[-1] + max(0.0, slope) * (x - xs[-1])


def _nondecreasing(ys: list[float]) -> list[float]:
    out, top = [], float("-inf")
    for y in ys:
        top = max(top, y)
        out.append(top)
    return out


def _solve3(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting for a 3 x 3 system."""
    m = [row[:] + [v] for row, v in zip(a, b)]
    for c in range(3):
        piv = max(range(c, 3), key=lambda r: abs(m[r][c]))
        if abs(m[piv][c]) < 1e-300:
            raise ValueError("singular fit: too few decode points")
        m[c], m[piv] = m[piv], m[c]
        for r in range(3):
            if r != c:
                f = m[r][c] / m[c][c]
                m[r] = [x - f * y for x, y in zip(m[r], m[c])]
    return [m[i][3] / m[i][i] for i in range(3)]


def fit_attention(points: list[tuple[float, float, float]]) -> list[float]:
    """(a0, a1, a2) of t = a0 + a1 b + a2 kv minimising the relative error over (b, kv, t) points;
    negative coefficients are clamped to 0 and the rest refitted."""
    active = [0, 1, 2]
    while True:
        ata = [[0.0] * 3 for _row in range(3)]
        atb = [0.0] * 3
        for b, kv, t in points:
            row = [1.0, b, kv]
            w = 1.0 / (t * t)
            for i in range(3):
                atb[i] += w * row[i] * t
                for j in range(3):
                    ata[i][j] += w * row[i] * row[j]
        for i in range(3):  # a dropped coefficient is pinned to 0
            if i not in active:
                ata[i] = [1.0 if j == i else 0.0 for j in range(3)]
                atb[i] = 0.0
                for r in range(3):
                    if r != i:
                        ata[r][i] = 0.0
        coef = _solve3(ata, atb)
        neg = [i for i in active if coef[i] < 0]
        if not neg:
            return coef
        active.remove(min(neg, key=lambda i: coef[i]))


class MeasuredModel:
    """Per-TP lookups over one measurement document."""

    def __init__(self, doc: dict):
        measure.validate(doc)
        self.doc = doc
        self.gpu_name = doc["gpu"]["name"]
        self.ceil = doc["ceilings"]
        self.bandwidth = self._best_bandwidth()
        self._cache: dict = {}

    def _best_bandwidth(self) -> float:
        """Bytes/s for the memory-bound test: the measured copy, or the fastest weight streaming a
        decode GEMM achieved (fewest bytes over time), whichever is higher."""
        best = self.ceil["copy_tbps"] * 1e12
        for tp, e in self.doc["tp"].items():
            for r in e.get("decode", []):
                pt = measure.Point("decode", batch=r["batch"], ctx=r["ctx"])
                for op in measure.GEMMS:
                    if r["ops_ms"].get(op):
                        best = max(best, measure.op_cost(op, int(tp), pt)[1] / (r["ops_ms"][op] * 1e-3))
        return best

    @property
    def tps(self) -> list[int]:
        return sorted(int(t) for t in self.doc["tp"])

    def _entry(self, tp: int) -> dict:
        try:
            return self.doc["tp"][str(tp)]
        except KeyError:
            raise ValueError(f"tp {tp} was not measured (have {self.tps})") from None

    # --- GPU scaling ---
    def _mem_share(self, op: str, tp: int, pt: measure.Point) -> float:
        flops, byts = measure.op_cost(op, tp, pt)
        rate = (self.ceil["fp8_tflops"] if op in measure.GEMMS else self.ceil["bf16_tflops"]) * 1e12
        t_mem, t_comp = byts / self.bandwidth, flops / rate
        return t_mem / max(t_mem, t_comp)

    def _scale(self, op: str, tp: int, pt: measure.Point, gpu: str) -> float:
        if gpu == "h200":
            return 1.0
        ratio = perf.GPUS["h200"].hbm_bandwidth / perf.GPUS[gpu].hbm_bandwidth
        return 1.0 + self._mem_share(op, tp, pt) * (ratio - 1.0)

    def _layer_scale(self, rec: dict, tp: int, pt: measure.Point, gpu: str, ops=measure.LAYER_OPS) -> float:
        """Whole-layer scale for ``gpu``: per-op scales weighted by the measured per-op times."""
        if gpu == "h200":
            return 1.0
        ops_ms = rec["ops_ms"]
        if not ops_ms:
            return self._scale("qkv", tp, pt, gpu)
        tot = sum(ops_ms[o] for o in ops if o in ops_ms)
        return sum(ops_ms[o] * self._scale(o, tp, pt, gpu) for o in ops if o in ops_ms) / tot

    # --- tables for one (gpu, tp) ---
    def tables(self, gpu: str, tp: int) -> dict:
        key = (gpu, tp)
        if key in self._cache:
            return self._cache[key]
        e = self._entry(tp)
        pre = sorted((r for r in e["prefill"] if r["prefix"] == 0), key=lambda r: r["new"])
        if not pre:
            raise ValueError(f"tp {tp}: no prefill points without a prefix")
        pre_x = [float(r["new"]) for r in pre]
        pre_y = _nondecreasing([r["layer_ms"] * self._layer_scale(r, tp, measure.Point("prefill", new=r["new"]), gpu)
                                for r in pre])
        dense: dict[int, list[float]] = {}
        attn_pts = []
        for r in e["decode"]:
            pt = measure.Point("decode", batch=r["batch"], ctx=r["ctx"])
            layer = r["layer_ms"] * self._layer_scale(r, tp, pt, gpu)
            att = r["ops_ms"].get("attention")
            if att is None:
                raise ValueError(f"tp {tp}: decode points need the per-op attention time")
            att *= self._scale("attention", tp, pt, gpu)
            dense.setdefault(r["batch"], []).append(max(layer - att, 0.0))
            attn_pts.append((float(r["batch"]), float(r["batch"] * r["ctx"]), att))
        if len(dense) < 2 or len(attn_pts) < 3:
            raise ValueError(f"tp {tp}: too few decode points")
        dec_x = sorted(dense)
        dec_y = _nondecreasing([statistics.median(dense[b]) for b in dec_x])
        lm = sorted(e["lm_head"], key=lambda r: r["m"])
        if not lm:
            raise ValueError(f"tp {tp}: no lm_head timings")
        lm_x = [float(r["m"]) for r in lm]
        lm_y = _nondecreasing([r["ms"] * self._scale("lm_head", tp, measure.Point("decode", batch=r["m"], ctx=1), gpu)
                               for r in lm])
        out = {"prefill": (pre_x, pre_y), "dense": ([float(b) for b in dec_x], dec_y),
               "attention": fit_attention(attn_pts), "lm_head": (lm_x, lm_y)}
        self._cache[key] = out
        return out

    def layer_prefill_ms(self, gpu: str, tp: int, tokens: float) -> float:
        xs, ys = self.tables(gpu, tp)["prefill"]
        return _interp(xs, ys, tokens)

    def lm_head_ms(self, gpu: str, tp: int, rows: float) -> float:
        xs, ys = self.tables(gpu, tp)["lm_head"]
        return _interp(xs, ys, rows)

    def prefill_ms(self, gpu: str, tp: int, tokens: float) -> float:
        n = max(0.0, float(tokens))
        if n == 0:
            return perf.PREFILL_FIXED_MS
        return (perf.PREFILL_FIXED_MS + measure.LAYERS * self.layer_prefill_ms(gpu, tp, n)
                + ALLREDUCES_PER_LAYER * measure.LAYERS * allreduce_ms(tp, n) + self.lm_head_ms(gpu, tp, 1))

    def decode_layer_ms(self, gpu: str, tp: int, active_kv_tokens: float, context_length: float) -> float:
        t = self.tables(gpu, tp)
        kv = max(0.0, float(active_kv_tokens))
        batch = max(1.0, kv / max(1.0, float(context_length)))
        a0, a1, a2 = t["attention"]
        return _interp(*t["dense"], batch) + a0 + a1 * batch + a2 * kv

    def decode_itl_ms(self, gpu: str, tp: int, active_kv_tokens: float, context_length: float) -> float:
        kv = max(0.0, float(active_kv_tokens))
        batch = max(1.0, kv / max(1.0, float(context_length)))
        return (perf.DECODE_FIXED_MS + measure.LAYERS * self.decode_layer_ms(gpu, tp, kv, context_length)
                + ALLREDUCES_PER_LAYER * measure.LAYERS * allreduce_ms(tp, batch) + self.lm_head_ms(gpu, tp, batch))

    def prefix_extra_ms(self, gpu: str, tp: int, new: int, prefix: int) -> float | None:
        """What a cached prefix adds to a prefill of ``new`` tokens (80 layers), measured; None if not measured."""
        recs = {(r["new"], r["prefix"]): r for r in self._entry(tp)["prefill"]}
        if (new, prefix) not in recs or (new, 0) not in recs:
            return None

        def layer(p: int) -> float:
            r = recs[(new, p)]
            return r["layer_ms"] * self._layer_scale(r, tp, measure.Point("prefill", new=new, prefix=p), gpu)

        return measure.LAYERS * (layer(prefix) - layer(0))


@functools.lru_cache(maxsize=8)
def _load(path: str) -> MeasuredModel:
    return MeasuredModel(json.loads(Path(path).read_text(encoding="utf-8")))


def model_for(gpu: str, timings: str | Path | None = None) -> MeasuredModel | None:
    """The measured model that times ``gpu``, or None where there is none (then: the roofline)."""
    if timings is not None:
        return _load(str(Path(timings).resolve()))
    src = SOURCE_OF.get(gpu.lower())
    path = TIMINGS.get(src) if src else None
    if path is None or not path.exists():
        return None
    return _load(str(path))


def build_profile(model: MeasuredModel, gpu: str, tp: int) -> perf.PerfProfile:
    """The mocker tables for ``tp`` x ``gpu`` from ``model``: the roofline's grids, measured values."""
    gpu = gpu.lower()
    cap = perf.kv_capacity(gpu, tp)
    isl = perf.linspace(0.0, perf.PREFILL_GRID_MAX, perf.PREFILL_GRID_POINTS)
    ttft = [model.prefill_ms(gpu, tp, n) for n in isl]
    kv_grid = perf.linspace(0.0, float(cap.kv_tokens), perf.DECODE_GRID_POINTS)
    ctx_grid = perf.linspace(1.0, float(perf.DECODE_CONTEXT_MAX), perf.DECODE_GRID_POINTS)
    itl = [[model.decode_itl_ms(gpu, tp, kv, ctx) for ctx in ctx_grid] for kv in kv_grid]
    source = f"measured on {model.gpu_name} ({model.doc['date'][:10]})"
    if gpu != "h200":
        source += f", scaled to {gpu.upper()} bandwidth"
    return perf.PerfProfile(gpu, tp, cap, isl, ttft, kv_grid, ctx_grid, itl, source=source)


def class_shares(model: MeasuredModel, tp: int, phase: str, **key) -> dict[str, float]:
    """Share of each op class in the sum of per-op times at one measured point."""
    for r in model._entry(tp)[phase]:  # pylint: disable=protected-access
        if all(r[k] == v for k, v in key.items()):
            tot = sum(r["ops_ms"].values())
            shares: dict[str, float] = {}
            for op, ms in r["ops_ms"].items():
                shares[measure.OP_CLASS[op]] = shares.get(measure.OP_CLASS[op], 0.0) + ms / tot
            return shares
    raise ValueError(f"tp {tp} {phase} {key}: not measured")


def report(model: MeasuredModel) -> str:
    """Markdown tables for files/perf_profile/README.md."""
    d = model.doc
    lines = [f"Measured on {d['gpu']['name']} (driver {d['gpu']['driver']}, CUDA {d['gpu'].get('cuda')}, "
             f"torch {d['torch']}), {d['date']}; ceilings measured there: FP8 GEMM "
             f"{d['ceilings']['fp8_tflops']:.0f} TFLOP/s, bf16 GEMM {d['ceilings']['bf16_tflops']:.0f} TFLOP/s, "
             f"copy {d['ceilings']['copy_tbps']:.2f} TB/s (read + written); fastest weight streaming of a decode "
             f"GEMM {model.bandwidth / 1e12:.2f} TB/s.", ""]
    lines += ["| GPU | TP | prefill 256: roofline / measured ms | prefill 8K | prefill 16K | "
              "decode 1 x 8K ctx | decode 16 x 8K ctx |", "|---|---|---|---|---|---|---|"]
    for gpu in ("h200", "h100"):
        for tp in model.tps:
            cells = []
            for n in (256, 8192, 16384):
                cells.append(f"{perf.roofline_prefill_ms(gpu, tp, n):,.0f} / **{model.prefill_ms(gpu, tp, n):,.0f}**")
            for b in (1, 16):
                kv = b * 8192
                cells.append(f"{perf.roofline_decode_itl_ms(gpu, tp, kv, 8192):.1f} / "
                             f"**{model.decode_itl_ms(gpu, tp, kv, 8192):.1f}**")
            lines.append(f"| {gpu.upper()}{' (derived)' if gpu != 'h200' else ''} | {tp} | " + " | ".join(cells) + " |")
    lines += ["", "Per layer and rank, H200, GPU time only (no all-reduce, no fixed cost): whole layer in ms "
              "and the share of each op class (sum of per-op graphs):", "",
              "| TP | point | layer ms | gemm | attention | norm | rope | elementwise |", "|---|---|---|---|---|---|---|---|"]
    for tp in model.tps:
        for phase, key, label in (("prefill", {"new": 8192, "prefix": 0}, "prefill 8K"),
                                  ("prefill", {"new": 256, "prefix": 0}, "prefill 256"),
                                  ("decode", {"batch": 1, "ctx": 8192}, "decode 1 x 8K"),
                                  ("decode", {"batch": 16, "ctx": 8192}, "decode 16 x 8K")):
            rec = next((r for r in model._entry(tp)[phase]  # pylint: disable=protected-access
                        if all(r[k] == v for k, v in key.items())), None)
            if rec is None or not rec["ops_ms"]:
                continue
            sh = class_shares(model, tp, phase, **key)
            lines.append(f"| {tp} | {label} | {rec['layer_ms']:.3f} | " + " | ".join(
                f"{100 * sh.get(c, 0):.0f}%" for c in ("gemm", "attention", "norm", "rope", "elementwise")) + " |")
    lines += ["", "A cached prefix is not free: extra ms (80 layers, H200) that attention over the cached tokens "
              "adds to a prefill of the new tokens:", "",
              "| TP | new tokens | " + " | ".join(f"{p:,} cached" for p in measure.PREFIX_CACHED[1:]) + " |",
              "|---|---|" + "---|" * (len(measure.PREFIX_CACHED) - 1)]
    for tp in model.tps:
        for n in measure.PREFIX_NEW:
            cells = []
            for p in measure.PREFIX_CACHED[1:]:
                x = model.prefix_extra_ms("h200", tp, n, p)
                cells.append("–" if x is None else f"{x:,.1f}")
            lines.append(f"| {tp} | {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Report on a measured timing file (markdown)")
    ap.add_argument("--timings", type=Path, default=TIMINGS["h200"])
    args = ap.parse_args(argv)
    print(report(_load(str(args.timings.resolve()))), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
