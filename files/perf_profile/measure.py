#!/usr/bin/env python
"""Time the per-rank shard of one Llama 3.1 70B FP8 decoder layer on a CUDA GPU (issue 19).

One command regenerates the measured profile on any CUDA machine with PyTorch:

    python files/perf_profile/measure.py --out DIR            # all of TP 1, 2, 4, 8
    python files/perf_profile/measure.py --backend fake --out DIR   # the same code path on CPU

It writes ``DIR/<gpu>-layer-timings.json`` (GPU, driver, torch, date, method, raw per-op timings)
and, through ``llama_perf_profile.write_npz`` (the one NPZ writer), ``DIR/<gpu>-tp<N>.npz`` for the
mocker. ``files/perf_profile/data/h200-layer-timings.json`` is such a file, measured on an H200;
``measured.py`` turns it into the mocker's tables.

What is timed, per tensor-parallel rank (TP = 1, 2, 4, 8), for one decoder layer:

* ``norm1`` / ``norm2``: residual add + RMSNorm + FP8 quantisation of the GEMM input (fused);
* ``qkv``, ``o``, ``gate_up``, ``down``: FP8 GEMMs (``torch._scaled_mm``, per-tensor scales, bf16 out);
* ``rope``: rotary embedding of Q and K (fused) and the KV-cache write;
* ``attention``: causal GQA attention (bf16 ``scaled_dot_product_attention``, ``enable_gqa=True``)
  over the new tokens and any cached prefix; decode: one query per sequence over its context;
* ``quant``: FP8 quantisation of the attention output (the O GEMM's input);
* ``activation``: SiLU(gate) x up + FP8 quantisation (fused);
* ``lm_head`` (once per step, not per layer): the bf16 vocabulary projection, vocab / TP columns.

Method: every op and the whole layer run inside CUDA graphs (``--layers`` distinct weight and KV
sets per graph, so weights stream from HBM as in an 80-layer pass), after warm-ups; CUDA events
around each replay; the median of ``--repeats`` replays. The element-wise ops are compiled with
``torch.compile`` (Triton kernels, one per fused op), so what is timed is kernels, not Python.
Not timed (no several GPUs here): the two all-reduces per layer; ``measured.py`` adds a stated model.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

if __package__:  # imported as the perf_profile package
    from . import llama_perf_profile as perf
else:  # run as a file (python files/perf_profile/measure.py): Python puts this folder first on sys.path
    import llama_perf_profile as perf

SCHEMA = "gtc-demo/llama31-70b-fp8-layer-timings/v1"

# --- Llama 3.1 70B (HF config.json of meta-llama/Llama-3.1-70B-Instruct) ----------------
LAYERS = 80
HIDDEN = 8192
HEADS = 64
KV_HEADS = 8
HEAD_DIM = 128
INTERMEDIATE = 28672
VOCAB = 128256
TPS = (1, 2, 4, 8)

# Ops of one layer in execution order, and the class each belongs to in the report.
LAYER_OPS = ("norm1", "qkv", "rope", "attention", "quant", "o", "norm2", "gate_up", "activation", "down")
OP_CLASS = {
    "norm1": "norm", "norm2": "norm", "qkv": "gemm", "o": "gemm", "gate_up": "gemm", "down": "gemm",
    "rope": "rope", "attention": "attention", "quant": "elementwise", "activation": "elementwise",
}
GEMMS = ("qkv", "o", "gate_up", "down")

# --- Grids ------------------------------------------------------------------------------
# Prefill chunk sizes (new tokens, nothing cached). The mocker chunks at 8,192 by default.
PREFILL_TOKENS = (64, 128, 256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 12288, 16384)
# New tokens over a cached prefix (a follow-up turn: e.g. 300 new over 5,000 cached).
PREFIX_NEW = (64, 300, 1024, 4096)
PREFIX_CACHED = (0, 1024, 5000, 8192, 16384, 32768)
# Decode: sequences per step x context per sequence; points over the replica's KV capacity
# are skipped (an engine cannot hold them).
DECODE_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DECODE_CONTEXT = (256, 1024, 4096, 8192, 16384, 32768, 65536)


@dataclass(frozen=True)
class Shard:
    """The per-rank slice of one decoder layer at tensor parallelism ``tp`` (Megatron-style split:
    QKV and gate/up column-parallel, O and down row-parallel, KV heads split over ranks)."""

    tp: int
    heads: int
    kv_heads: int
    q_dim: int
    kv_dim: int
    qkv_out: int
    o_in: int
    gate_up_out: int
    down_in: int
    vocab: int

    def gemm_dims(self) -> dict[str, tuple[int, int]]:
        """(K, N) of each FP8 GEMM: the input is [tokens, K], the weight [K, N]."""
        return {
            "qkv": (HIDDEN, self.qkv_out),
            "o": (self.o_in, HIDDEN),
            "gate_up": (HIDDEN, self.gate_up_out),
            "down": (self.down_in, HIDDEN),
        }

    def weight_bytes(self) -> int:
        """FP8 weight bytes of the layer on this rank (norm weights are negligible)."""
        return sum(k * n for k, n in self.gemm_dims().values())


def shard(tp: int) -> Shard:
    if tp not in TPS:
        raise ValueError(f"tp must be one of {TPS}, got {tp!r}")
    if KV_HEADS % tp or HEADS % tp or INTERMEDIATE % tp or VOCAB % tp:
        raise ValueError(f"Llama 3.1 70B does not split evenly over {tp} ranks")
    heads, kv_heads = HEADS // tp, KV_HEADS // tp
    q_dim, kv_dim = heads * HEAD_DIM, kv_heads * HEAD_DIM
    return Shard(tp, heads, kv_heads, q_dim, kv_dim, q_dim + 2 * kv_dim, q_dim,
                 2 * INTERMEDIATE // tp, INTERMEDIATE // tp, VOCAB // tp)


@dataclass(frozen=True)
class Point:
    """One grid point. Prefill: one sequence of ``new`` tokens after ``prefix`` cached ones.
    Decode: ``batch`` sequences of ``ctx`` tokens each, one new token each."""

    phase: str  # "prefill" or "decode"
    new: int = 0
    prefix: int = 0
    batch: int = 1
    ctx: int = 0

    @property
    def tokens(self) -> int:
        """Rows of every GEMM (tokens computed in this step)."""
        return self.new if self.phase == "prefill" else self.batch

    def key(self) -> dict:
        if self.phase == "prefill":
            return {"new": self.new, "prefix": self.prefix}
        return {"batch": self.batch, "ctx": self.ctx}


def prefill_grid() -> list[Point]:
    pts = [Point("prefill", new=n) for n in PREFILL_TOKENS]
    pts += [Point("prefill", new=n, prefix=p) for n in PREFIX_NEW for p in PREFIX_CACHED
            if p > 0 or n not in PREFILL_TOKENS]
    return pts


def decode_grid(tp: int, max_kv_tokens: int | None = None) -> list[Point]:
    """Batch x context points whose KV fits one H200 replica of ``tp`` GPUs (or ``max_kv_tokens``)."""
    cap = perf.kv_capacity("h200", tp).kv_tokens if max_kv_tokens is None else max_kv_tokens
    return [Point("decode", batch=b, ctx=c) for b in DECODE_BATCH for c in DECODE_CONTEXT if b * c <= cap]


def op_cost(op: str, tp: int, pt: Point) -> tuple[float, float]:
    """(FLOPs, fewest HBM bytes) of one op of one layer on one rank: each input read once, each
    output written once. bf16 = 2 B, FP8 = 1 B; the KV cache is bf16 here (SDPA reads bf16)."""
    s = shard(tp)
    m = pt.tokens
    if op in GEMMS:
        k, n = s.gemm_dims()[op]
        return 2.0 * m * k * n, float(k * n + m * k + 2 * m * n)
    if op == "attention":
        if pt.phase == "prefill":
            pairs = pt.new * pt.prefix + pt.new * (pt.new + 1) / 2.0
            kv_len, seqs, q = pt.prefix + pt.new, 1, pt.new
        else:
            pairs, kv_len, seqs, q = float(pt.batch * pt.ctx), pt.ctx, pt.batch, 1
        flops = 4.0 * pairs * s.heads * HEAD_DIM  # QK^T and PV, 2 FLOPs per multiply-add each
        byts = seqs * (2 * kv_len * s.kv_dim * 2 + 2 * q * s.q_dim * 2)  # K,V read; Q read, O written
        return flops, float(byts)
    if op in ("norm1", "norm2"):
        # read x and residual (bf16), write residual (bf16) and the FP8 GEMM input
        return 5.0 * m * HIDDEN, float(m * HIDDEN * (2 + 2 + 2 + 1))
    if op == "rope":
        # read and write Q and K (bf16); write K and V into the cache
        return 6.0 * m * (s.q_dim + s.kv_dim), float(m * (2 * (s.q_dim + s.kv_dim) * 2 + 2 * s.kv_dim * 2))
    if op == "quant":
        return 2.0 * m * s.q_dim, float(m * s.q_dim * (2 + 1))
    if op == "activation":
        half = s.gate_up_out // 2
        return 6.0 * m * half, float(m * (s.gate_up_out * 2 + half))
    if op == "lm_head":
        return 2.0 * m * HIDDEN * s.vocab, float(HIDDEN * s.vocab * 2 + m * HIDDEN * 2 + m * s.vocab * 2)
    raise ValueError(f"unknown op {op!r}")


def median_ms(replay: Callable[[], float], warmup: int, repeats: int) -> float:
    """Median of ``repeats`` timed calls after ``warmup`` untimed ones; ``replay`` returns the
    milliseconds of one call as the device measured it (CUDA events on a GPU)."""
    if warmup < 0 or repeats < 1:
        raise ValueError("warmup >= 0 and repeats >= 1")
    for _warm in range(warmup):
        replay()
    return statistics.median(replay() for _rep in range(repeats))


# --- Backends ---------------------------------------------------------------------------
class FakeBackend:
    """CPU stand-in for CI: each op 'takes' its roofline time at given rates plus a launch floor,
    with a deterministic jitter, and goes through the same median/warm-up path as the GPU."""

    name = "fake"

    def __init__(self, flops: float = 1.2e15, bandwidth: float = 4.0e12, floor_ms: float = 0.004,
                 warmup: int = 2, repeats: int = 5):
        self.flops, self.bandwidth, self.floor_ms = flops, bandwidth, floor_ms
        self.warmup, self.repeats = warmup, repeats
        self.calls = 0

    def info(self) -> dict:
        return {"name": "fake", "driver": "none", "cuda": "none", "sm_count": 0, "memory_bytes": 0,
                "compute_capability": "none"}

    def _op_ms(self, op: str, tp: int, pt: Point) -> float:
        flops, byts = op_cost(op, tp, pt)
        return self.floor_ms + 1000.0 * max(flops / self.flops, byts / self.bandwidth)

    def _timed(self, base: float) -> float:
        seq = iter(range(10**9))

        def replay() -> float:
            self.calls += 1
            return base * (1.0 + 0.01 * ((next(seq) * 7) % 5 - 2))

        return median_ms(replay, self.warmup, self.repeats)

    def time_point(self, tp: int, pt: Point, per_op: bool = True) -> dict:
        ops = {op: self._timed(self._op_ms(op, tp, pt)) for op in LAYER_OPS} if per_op else {}
        layer = self._timed(sum(self._op_ms(op, tp, pt) for op in LAYER_OPS))
        return {"layer_ms": layer, "ops_ms": ops}

    def time_lm_head(self, tp: int, m: int) -> float:
        return self._timed(self._op_ms("lm_head", tp, Point("decode", batch=m, ctx=1)))

    def ceilings(self) -> dict:
        return {"bf16_tflops": self.flops / 2e12, "fp8_tflops": self.flops / 1e12,
                "copy_tbps": self.bandwidth / 1e12}

    def method(self) -> dict:
        return {"backend": "fake", "warmup": self.warmup, "repeats": self.repeats}

    def release(self, tp: int) -> None:  # pylint: disable=unused-argument
        return None


class TorchBackend:  # pragma: no cover - needs a CUDA GPU; CI runs FakeBackend through the same Measurer
    """Times the layer on ``cuda:0`` with PyTorch: CUDA graphs, CUDA events, compiled element-wise ops."""

    name = "torch"

    def __init__(self, layers: int = 4, prefill_layers: int = 2, warmup: int = 3, repeats: int = 15,
                 compile_elementwise: bool = True):
        import torch  # pylint: disable=import-outside-toplevel
        import torch.nn.functional as F  # pylint: disable=import-outside-toplevel

        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device: use --backend fake for a dry run")
        self.torch, self.F = torch, F
        self.dev = torch.device("cuda:0")
        self.fp8 = torch.float8_e4m3fn
        self.bf16 = torch.bfloat16
        self.layers, self.prefill_layers = layers, prefill_layers
        self.warmup, self.repeats = warmup, repeats
        self.one = torch.ones((), device=self.dev, dtype=torch.float32)
        self._weights: dict[int, list[dict]] = {}
        self._kv: dict[int, tuple] = {}
        self.notes: list[str] = []
        try:
            torch._dynamo.config.cache_size_limit = 256  # pylint: disable=protected-access
        except AttributeError:
            pass
        self.compiled = False
        self._build_elementwise(compile_elementwise)
        self.attention_mode = self._probe_attention()

    # element-wise ops: written once, compiled (fused) when possible
    def _build_elementwise(self, want_compile: bool) -> None:
        torch, fp8 = self.torch, self.fp8

        def add_rmsnorm_quant(x, residual, w):
            r = x + residual
            rf = r.float()
            h = rf * torch.rsqrt(rf.pow(2).mean(-1, keepdim=True) + 1e-5) * w.float()
            return h.clamp(-448.0, 448.0).to(fp8), r

        def rope(qkv, cos, sin, q_dim: int, kv_dim: int):
            q = qkv[:, :q_dim].float().unflatten(-1, (-1, HEAD_DIM))
            k = qkv[:, q_dim:q_dim + kv_dim].float().unflatten(-1, (-1, HEAD_DIM))
            v = qkv[:, q_dim + kv_dim:].unflatten(-1, (-1, HEAD_DIM))
            c, s = cos[:, None, :], sin[:, None, :]

            def rot(t):
                t1, t2 = t[..., :HEAD_DIM // 2], t[..., HEAD_DIM // 2:]
                return torch.cat([t1 * c - t2 * s, t2 * c + t1 * s], -1).to(torch.bfloat16)

            return rot(q), rot(k), v

        def quant(x):
            return x.float().clamp(-448.0, 448.0).to(fp8)

        def silu_mul_quant(gu):
            half = gu.shape[-1] // 2
            g, u = gu[:, :half].float(), gu[:, half:].float()
            return (g * torch.sigmoid(g) * u).clamp(-448.0, 448.0).to(fp8)

        fns = {"norm": add_rmsnorm_quant, "rope": rope, "quant": quant, "act": silu_mul_quant}
        if want_compile:
            try:
                comp = {k: torch.compile(f, dynamic=True) for k, f in fns.items()}
                x = torch.randn(48, HIDDEN, device=self.dev, dtype=self.bf16)
                comp["norm"](x, x, torch.ones(HIDDEN, device=self.dev, dtype=self.bf16))
                comp["quant"](x)
                comp["act"](torch.randn(48, 4096, device=self.dev, dtype=self.bf16))
                cs = torch.randn(48, HEAD_DIM // 2, device=self.dev)
                comp["rope"](torch.randn(48, 10240, device=self.dev, dtype=self.bf16), cs, cs, 8192, 1024)
                torch.cuda.synchronize()
                fns, self.compiled = comp, True
            except Exception as exc:  # pylint: disable=broad-except
                self.notes.append(f"torch.compile failed, element-wise ops run eagerly: {exc!r}"[:400])
        self.ew = fns

    def _sdpa(self, q, k, v, causal: bool):
        return self.F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)

    def _probe_attention(self) -> str:
        """How new tokens attend over a cached prefix: SDPA with a lower-right causal bias if it
        runs (and matches a masked reference), else two SDPA calls (prefix block + causal square)."""
        torch = self.torch
        try:
            from torch.nn.attention.bias import causal_lower_right  # pylint: disable=import-outside-toplevel

            n, p = 96, 160
            q = torch.randn(1, 8, n, HEAD_DIM, device=self.dev, dtype=self.bf16)
            k = torch.randn(1, 1, p + n, HEAD_DIM, device=self.dev, dtype=self.bf16)
            v = torch.randn_like(k)
            out = self.F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(n, p + n),
                                                      enable_gqa=True)
            mask = torch.ones(n, p + n, dtype=torch.bool, device=self.dev).tril(p)
            ref = self.F.scaled_dot_product_attention(q.float(), k.float().expand(1, 8, -1, -1),
                                                      v.float().expand(1, 8, -1, -1), attn_mask=mask)
            err = ((out.float() - ref).norm() / ref.norm()).item()
            if err < 2e-2:
                self._lower_right = causal_lower_right
                return "sdpa-causal-lower-right"
            self.notes.append(f"lower-right causal bias gave rel. error {err:.3g}: split attention used")
        except Exception as exc:  # pylint: disable=broad-except
            self.notes.append(f"lower-right causal bias unavailable ({exc!r})"[:300])
        return "split-prefix-plus-causal"

    def info(self) -> dict:
        torch = self.torch
        props = torch.cuda.get_device_properties(self.dev)
        driver = "unknown"
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
        return {"name": props.name, "driver": driver, "cuda": torch.version.cuda,
                "sm_count": props.multi_processor_count, "memory_bytes": props.total_memory,
                "compute_capability": f"{props.major}.{props.minor}"}

    def method(self) -> dict:
        return {"backend": "torch", "warmup": self.warmup, "repeats": self.repeats,
                "layers_per_graph": {"decode": self.layers, "prefill": self.prefill_layers},
                "cuda_graphs": True, "timer": "torch.cuda.Event around each graph replay",
                "statistic": "median of repeats, divided by layers_per_graph",
                "elementwise_compiled": self.compiled, "prefix_attention": self.attention_mode,
                "gemm": "torch._scaled_mm, float8_e4m3fn x float8_e4m3fn, per-tensor scales, bf16 out",
                "attention": "F.scaled_dot_product_attention bf16, enable_gqa=True, bf16 KV cache",
                "notes": self.notes}

    # --- tensors ---
    def _layer_weights(self, tp: int) -> list[dict]:
        if tp not in self._weights:
            torch, s = self.torch, shard(tp)
            sets = []
            for _copy in range(max(self.layers, self.prefill_layers)):
                w = {name: (torch.randn(n, k, device=self.dev, dtype=self.bf16) * 0.05).to(self.fp8)
                     for name, (k, n) in s.gemm_dims().items()}
                w["norm1"] = torch.rand(HIDDEN, device=self.dev, dtype=self.bf16) + 0.5
                w["norm2"] = torch.rand(HIDDEN, device=self.dev, dtype=self.bf16) + 0.5
                sets.append(w)
            self._weights[tp] = sets
        return self._weights[tp]

    def _kv_buffers(self, tp: int, tokens: int) -> list:
        """One (K, V) flat bf16 buffer pair per layer copy, holding ``tokens`` tokens of this rank."""
        s = shard(tp)
        need = tokens * s.kv_dim
        have = self._kv.get(tp)
        if have is None or have[0] < need:
            self._kv.pop(tp, None)
            self.torch.cuda.empty_cache()
            bufs = [(self.torch.randn(need, device=self.dev, dtype=self.bf16),
                     self.torch.randn(need, device=self.dev, dtype=self.bf16))
                    for _copy in range(max(self.layers, self.prefill_layers))]
            self._kv[tp] = (need, bufs)
        return self._kv[tp][1]

    def release(self, tp: int) -> None:
        self._weights.pop(tp, None)
        self._kv.pop(tp, None)
        self.torch.cuda.empty_cache()

    # --- one layer as a list of steps over a state dict ---
    def _steps(self, tp: int, pt: Point, w: dict, kv: tuple) -> dict[str, Callable[[dict], None]]:
        torch, F, s, ew = self.torch, self.F, shard(tp), self.ew
        one = self.one
        d = HEAD_DIM
        if pt.phase == "prefill":
            b, sq, kv_len, pos0 = 1, pt.new, pt.prefix + pt.new, pt.prefix
        else:
            b, sq, kv_len, pos0 = pt.batch, 1, pt.ctx, pt.ctx - 1
        kc = kv[0][: b * s.kv_heads * kv_len * d].view(b, s.kv_heads, kv_len, d)
        vc = kv[1][: b * s.kv_heads * kv_len * d].view(b, s.kv_heads, kv_len, d)

        def mm(a8, name):
            return torch._scaled_mm(a8, w[name].t(), scale_a=one, scale_b=one,  # pylint: disable=protected-access
                                    out_dtype=torch.bfloat16)

        def norm1(st):
            st["h8"], st["res"] = ew["norm"](st["x"], st["res"], w["norm1"])

        def qkv(st):
            st["qkv"] = mm(st["h8"], "qkv")

        def rope(st):
            q, k, v = ew["rope"](st["qkv"], st["cos"], st["sin"], s.q_dim, s.kv_dim)
            st["q"] = q
            # cache write of this step's K and V (one token per sequence in decode)
            kc[:, :, pos0:pos0 + sq].copy_(k.view(b, sq, s.kv_heads, d).transpose(1, 2))
            vc[:, :, pos0:pos0 + sq].copy_(v.view(b, sq, s.kv_heads, d).transpose(1, 2))

        def attention(st):
            q = st["q"].view(b, sq, s.heads, d).transpose(1, 2)
            if pt.phase == "decode":
                out = self._sdpa(q, kc, vc, False)
            elif pt.prefix == 0:
                out = self._sdpa(q, kc, vc, True)
            elif self.attention_mode == "sdpa-causal-lower-right":
                out = F.scaled_dot_product_attention(q, kc, vc, attn_mask=self._lower_right(sq, kv_len),
                                                     enable_gqa=True)
            else:
                # same FLOPs as the lower-right causal pass: the prefix block, then the causal square
                self._sdpa(q, kc[:, :, :pt.prefix], vc[:, :, :pt.prefix], False)
                out = self._sdpa(q, kc[:, :, pt.prefix:], vc[:, :, pt.prefix:], True)
            st["attn"] = out.transpose(1, 2).reshape(b * sq, s.q_dim)

        def quant(st):
            st["a8"] = ew["quant"](st["attn"])

        def o(st):
            st["x"] = mm(st["a8"], "o")

        def norm2(st):
            st["h8"], st["res"] = ew["norm"](st["x"], st["res"], w["norm2"])

        def gate_up(st):
            st["gu"] = mm(st["h8"], "gate_up")

        def activation(st):
            st["m8"] = ew["act"](st["gu"])

        def down(st):
            st["x"] = mm(st["m8"], "down")

        return {"norm1": norm1, "qkv": qkv, "rope": rope, "attention": attention, "quant": quant, "o": o,
                "norm2": norm2, "gate_up": gate_up, "activation": activation, "down": down}

    def _graph_ms(self, work: Callable[[], None], per: int) -> float:
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _warm in range(2):  # compile, autotune, cuBLAS handles: outside the graph
                work()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            work()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def replay() -> float:
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)

        try:
            return median_ms(replay, self.warmup, self.repeats) / per
        finally:
            del graph

    def time_point(self, tp: int, pt: Point, per_op: bool = True) -> dict:
        torch = self.torch
        n_layers = self.prefill_layers if pt.phase == "prefill" else self.layers
        weights = self._layer_weights(tp)[:n_layers]
        kv_tokens = pt.prefix + pt.new if pt.phase == "prefill" else pt.batch * pt.ctx
        kvs = self._kv_buffers(tp, kv_tokens)[:n_layers]
        m = pt.tokens
        pos = (torch.arange(pt.prefix, pt.prefix + m, device=self.dev) if pt.phase == "prefill"
               else torch.full((m,), pt.ctx - 1, device=self.dev))
        inv = 1.0 / (500000.0 ** (torch.arange(0, HEAD_DIM, 2, device=self.dev).float() / HEAD_DIM))
        ang = pos.float()[:, None] * inv[None, :]
        cos, sin = ang.cos(), ang.sin()
        layers = [self._steps(tp, pt, w, kv) for w, kv in zip(weights, kvs)]

        def fresh_state() -> dict:
            return {"x": torch.randn(m, HIDDEN, device=self.dev, dtype=self.bf16),
                    "res": torch.randn(m, HIDDEN, device=self.dev, dtype=self.bf16), "cos": cos, "sin": sin}

        states = [fresh_state() for _layer in layers]
        x0 = [(st["x"].clone(), st["res"].clone()) for st in states]

        def whole() -> None:
            for steps, st, (x, r) in zip(layers, states, x0):
                st["x"], st["res"] = x, r  # every layer copy starts from its own input
                for op in LAYER_OPS:
                    steps[op](st)

        result = {"layer_ms": self._graph_ms(whole, n_layers), "ops_ms": {}}
        if per_op:
            whole()  # fill every state with real intermediates (eager, outside any graph)
            torch.cuda.synchronize()
            saved = [dict(st) for st in states]
            for op in LAYER_OPS:
                def one_op(op=op) -> None:
                    for steps, st, keep in zip(layers, states, saved):
                        st.update(keep)
                        steps[op](st)

                result["ops_ms"][op] = self._graph_ms(one_op, n_layers)
        del states, layers
        return result

    def time_lm_head(self, tp: int, m: int) -> float:
        torch, s = self.torch, shard(tp)
        w = torch.randn(s.vocab, HIDDEN, device=self.dev, dtype=self.bf16) * 0.02
        x = torch.randn(m, HIDDEN, device=self.dev, dtype=self.bf16)
        out = self._graph_ms(lambda: torch.matmul(x, w.t()), 1)
        del w
        return out

    def ceilings(self) -> dict:
        """The device's own ceilings, measured: bf16 and FP8 8192^3 GEMMs, a 1 GiB copy."""
        torch = self.torch
        n = 8192
        a = torch.randn(n, n, device=self.dev, dtype=self.bf16)
        b = torch.randn(n, n, device=self.dev, dtype=self.bf16)
        a8, b8 = a.to(self.fp8), b.to(self.fp8)
        bf16_ms = self._graph_ms(lambda: torch.matmul(a, b), 1)
        fp8_ms = self._graph_ms(lambda: torch._scaled_mm(a8, b8.t(), scale_a=self.one, scale_b=self.one,  # pylint: disable=protected-access
                                                         out_dtype=torch.bfloat16), 1)
        src = torch.randn(2**29, device=self.dev, dtype=self.bf16)  # 1 GiB, far past the 60 MB L2
        dst = torch.empty_like(src)
        copy_ms = self._graph_ms(lambda: dst.copy_(src), 1)
        nbytes = 2 * src.numel() * 2
        del a, b, a8, b8, src, dst
        torch.cuda.empty_cache()
        return {"bf16_tflops": 2 * n**3 / bf16_ms / 1e9, "fp8_tflops": 2 * n**3 / fp8_ms / 1e9,
                "copy_tbps": nbytes / copy_ms / 1e9, "gemm_n": n, "copy_bytes_read_plus_written": nbytes}


# --- The measurement ----------------------------------------------------------------------
@dataclass
class Plan:
    tps: tuple[int, ...] = TPS
    prefill: bool = True
    decode: bool = True
    per_op: bool = True
    budget_s: float = 1e9  # stop starting new points after this many seconds (what is skipped is listed)
    quick: bool = False  # a few points per grid: a smoke test


def _thin(points: list[Point], quick: bool) -> list[Point]:
    if not quick:
        return points
    keep = points[:: max(1, len(points) // 4)]
    return keep if points[-1] in keep else keep + [points[-1]]


def measure(backend, plan: Plan, log: Callable[[str], None] = lambda _m: None,
            checkpoint: Callable[[dict], None] | None = None) -> dict:
    """Run the plan on ``backend`` and return the JSON document (see SCHEMA)."""
    t0 = time.monotonic()
    doc: dict = {
        "schema": SCHEMA,
        "model": {"name": "Llama 3.1 70B Instruct, FP8 weights", "layers": LAYERS, "hidden": HIDDEN,
                  "heads": HEADS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM, "intermediate": INTERMEDIATE,
                  "vocab": VOCAB},
        "gpu": backend.info(),
        "torch": _torch_version(),
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": backend.method(),
        "ops": list(LAYER_OPS),
        "op_class": OP_CLASS,
        "ceilings": backend.ceilings(),
        "tp": {},
        "skipped": [],
        "errors": [],
    }
    for tp in plan.tps:
        entry: dict = {"shard": asdict(shard(tp)), "prefill": [], "decode": [], "lm_head": []}
        doc["tp"][str(tp)] = entry
        points = (_thin(prefill_grid(), plan.quick) if plan.prefill else []) + \
                 (_thin(decode_grid(tp), plan.quick) if plan.decode else [])
        for pt in points:
            if time.monotonic() - t0 > plan.budget_s:
                doc["skipped"].append({"tp": tp, "phase": pt.phase, **pt.key()})
                continue
            try:
                res = backend.time_point(tp, pt, per_op=plan.per_op)
            except Exception as exc:  # pylint: disable=broad-except  # one bad point must not lose the rest
                doc["errors"].append({"tp": tp, "phase": pt.phase, **pt.key(), "error": repr(exc)[:500]})
                log(f"tp{tp} {pt}: ERROR {exc!r}"[:300])
                continue
            rec = {**pt.key(), "layer_ms": round(res["layer_ms"], 6),
                   "ops_ms": {k: round(v, 6) for k, v in res["ops_ms"].items()}}
            entry[pt.phase].append(rec)
            log(f"tp{tp} {pt.phase} {pt.key()} layer {res['layer_ms']:.4f} ms")
        if plan.decode or plan.prefill:
            for m in sorted({1, *(p.batch for p in decode_grid(tp))} if not plan.quick else {1, 8, 64}):
                try:
                    entry["lm_head"].append({"m": m, "ms": round(backend.time_lm_head(tp, m), 6)})
                except Exception as exc:  # pylint: disable=broad-except
                    doc["errors"].append({"tp": tp, "phase": "lm_head", "m": m, "error": repr(exc)[:500]})
        backend.release(tp)
        if checkpoint:
            checkpoint(doc)
    doc["elapsed_s"] = round(time.monotonic() - t0, 1)
    return doc


def _torch_version() -> str:
    try:
        import torch  # pylint: disable=import-outside-toplevel

        return torch.__version__
    except ImportError:
        return "not installed"


def validate(doc: dict) -> None:
    """Raise ValueError unless ``doc`` has the layout ``measured.py`` reads."""
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"schema must be {SCHEMA!r}, got {doc.get('schema')!r}")
    for key in ("gpu", "torch", "date", "method", "ceilings", "tp", "model"):
        if key not in doc:
            raise ValueError(f"missing {key!r}")
    for key in ("name", "driver"):
        if key not in doc["gpu"]:
            raise ValueError(f"gpu.{key} missing")
    if not doc["tp"]:
        raise ValueError("no TP measured")
    for tp, entry in doc["tp"].items():
        if int(tp) not in TPS:
            raise ValueError(f"tp {tp!r} not one of {TPS}")
        for phase, keys in (("prefill", ("new", "prefix")), ("decode", ("batch", "ctx"))):
            for rec in entry.get(phase, []):
                for k in (*keys, "layer_ms", "ops_ms"):
                    if k not in rec:
                        raise ValueError(f"tp {tp} {phase} record lacks {k!r}: {rec}")
                if not (isinstance(rec["layer_ms"], (int, float)) and math.isfinite(rec["layer_ms"])
                        and rec["layer_ms"] > 0):
                    raise ValueError(f"tp {tp} {phase} {rec}: layer_ms must be a positive number")
                unknown = set(rec["ops_ms"]) - set(LAYER_OPS)
                if unknown:
                    raise ValueError(f"unknown ops {sorted(unknown)}")
        for rec in entry.get("lm_head", []):
            if not ({"m", "ms"} <= set(rec)):
                raise ValueError(f"tp {tp} lm_head record lacks m/ms: {rec}")


def write_outputs(doc: dict, out: Path, gpu: str, tps: Iterable[int] | None = None) -> dict:
    """The JSON, and through measured.py and llama_perf_profile.write_npz, one NPZ per TP."""
    if __package__:  # measured imports this module, hence the late import
        from . import measured  # pylint: disable=import-outside-toplevel
    else:
        import measured  # pylint: disable=import-outside-toplevel

    out.mkdir(parents=True, exist_ok=True)
    js = out / f"{gpu}-layer-timings.json"
    js.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    written = {"json": str(js), "npz": {}}
    model = measured.MeasuredModel(doc)
    for tp in tps or [int(t) for t in doc["tp"]]:
        try:
            prof = measured.build_profile(model, gpu if gpu in perf.GPUS else "h200", tp)
        except ValueError as exc:
            written["npz"][str(tp)] = f"not written: {exc}"
            continue
        written["npz"][str(tp)] = str(perf.write_npz(prof, out / f"{gpu}-tp{tp}.npz"))
    return written


def merge(docs: list[dict]) -> dict:
    """One document from several runs of the same GPU (e.g. TP 1-2 in one call, TP 4-8 in another):
    the first run's header, every run's TPs (a TP in two runs: the later wins)."""
    if not docs:
        raise ValueError("nothing to merge")
    for d in docs:
        validate(d)
    names = {d["gpu"]["name"] for d in docs}
    if len(names) != 1:
        raise ValueError(f"runs come from different GPUs: {sorted(names)}")
    out = json.loads(json.dumps(docs[0]))
    out["runs"] = [{"date": d["date"], "tps": sorted(d["tp"], key=int), "elapsed_s": d.get("elapsed_s"),
                    "ceilings": d["ceilings"]} for d in docs]
    for d in docs[1:]:
        out["tp"].update(d["tp"])
        out["skipped"] += d.get("skipped", [])
        out["errors"] += d.get("errors", [])
    out["tp"] = dict(sorted(out["tp"].items(), key=lambda kv: int(kv[0])))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the JSON and the NPZs")
    ap.add_argument("--merge", type=Path, nargs="+", help="merge these runs' JSON files instead of measuring")
    ap.add_argument("--backend", choices=("torch", "fake"), default="torch")
    ap.add_argument("--gpu", default="h200", help="name of the profile (file prefix); h200 or h100 for NPZs")
    ap.add_argument("--tp", type=int, nargs="+", default=list(TPS), choices=TPS)
    ap.add_argument("--no-prefill", action="store_true")
    ap.add_argument("--no-decode", action="store_true")
    ap.add_argument("--no-per-op", action="store_true", help="time whole layers only")
    ap.add_argument("--quick", action="store_true", help="a few points per grid (smoke test)")
    ap.add_argument("--budget-s", type=float, default=1e9, help="start no new point after this many seconds")
    ap.add_argument("--layers", type=int, default=4, help="decode: distinct layer copies per CUDA graph")
    ap.add_argument("--prefill-layers", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--no-compile", action="store_true", help="element-wise ops eager (to see what fusion saves)")
    args = ap.parse_args(argv)
    if args.merge:
        doc = merge([json.loads(p.read_text(encoding="utf-8")) for p in args.merge])
        print(json.dumps({"written": write_outputs(doc, args.out, args.gpu)}, indent=1))
        return 0
    if args.backend == "fake":
        backend = FakeBackend()
    else:  # pragma: no cover
        backend = TorchBackend(layers=args.layers, prefill_layers=args.prefill_layers, warmup=args.warmup,
                               repeats=args.repeats, compile_elementwise=not args.no_compile)
    plan = Plan(tuple(args.tp), not args.no_prefill, not args.no_decode, not args.no_per_op,
                args.budget_s, args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / f"{args.gpu}-layer-timings.partial.json"

    def checkpoint(doc: dict) -> None:
        partial.write_text(json.dumps(doc, sort_keys=True) + "\n", encoding="utf-8")

    def log(msg: str) -> None:
        print(msg, flush=True)

    doc = measure(backend, plan, log=log, checkpoint=checkpoint)
    validate(doc)
    written = write_outputs(doc, args.out, args.gpu)
    if partial.exists():
        os.unlink(partial)
    print(json.dumps({"written": written, "errors": len(doc["errors"]), "skipped": len(doc["skipped"]),
                      "elapsed_s": doc["elapsed_s"]}, indent=1))
    return 0 if not doc["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
