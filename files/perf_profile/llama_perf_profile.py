#!/usr/bin/env python
"""Mocker performance profile for Llama 3.1 70B Instruct FP8 by GPU and tensor parallelism.

Dynamo's mocker (``python -m dynamo.mocker --planner-profile-data <npz>``) and its offline
simulator (``extra_engine_args={"engine": {"timing_model": {"type": "external",
"provider": "dynamo_profile", "config": {"path": <npz>}}}}``) look latencies up in an NPZ with
five arrays:

* ``prefill_isl`` (1-D, tokens prefilled in one engine iteration) and ``prefill_ttft_ms``
  (1-D, same length): the mocker binary-searches the tokens of the iteration's prefill chunk;
* ``decode_active_kv_tokens`` (1-D), ``decode_context_length`` (1-D) and ``decode_itl``
  (2-D, ``[kv_idx, ctx_idx]``): one decode step for a batch holding that many KV tokens at
  that mean context length (batch size = kv / ctx).

Two sources of timing (``--source``):

* ``measured`` (the default where a measurement exists: H200, and H100 derived from it): the
  per-layer kernels timed on a GPU by ``measure.py``, committed as ``data/<gpu>-layer-timings.json``
  and turned into tables by ``measured.py`` (all-reduce modelled; see there);
* ``roofline``: a first-principles model with assumed efficiencies, the documented fallback. Every
  input is a named constant with its source; ``ASSUMPTIONS`` lists them for the benchmark report.

KV capacity is arithmetic either way.

Model (Llama 3.1 70B, ``config.json`` of meta-llama/Llama-3.1-70B-Instruct): 80 layers,
hidden 8192, 64 query heads, 8 KV heads, head dim 128, ~70.6e9 parameters.
KV bytes per token at FP8 = 2 (K and V) x 80 x 8 x 128 x 1 B = 163,840 B.

Usage:
    llama_perf_profile.py --gpu h200 --tp 4 --out profile.npz   # prints a JSON summary
    llama_perf_profile.py --gpu h200 --tp 4 --source roofline   # the fallback model
Function API: ``build_profile(gpu, tp, source="auto")`` -> ``PerfProfile``; ``write_npz(profile, path)``;
``kv_capacity(gpu, tp)`` -> ``KvCapacity`` (``num_gpu_blocks`` at block size 32).
Standard library only (``write_npz`` writes the NPY format itself).
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

# --- The model -------------------------------------------------------------------------
# Llama 3.1 70B architecture (HF config.json): num_hidden_layers=80, hidden_size=8192,
# num_attention_heads=64, num_key_value_heads=8, head_dim=128.
LAYERS = 80
HIDDEN = 8192
KV_HEADS = 8
HEAD_DIM = 128
PARAMS = 70.6e9  # parameter count; at FP8 (1 B/param) also the weight bytes.
WEIGHT_BYTES = PARAMS * 1.0  # FP8 weights (nvidia/Llama-3.1-70B-Instruct-FP8); embeddings ignored.
KV_BYTES_PER_TOKEN = 2 * LAYERS * KV_HEADS * HEAD_DIM * 1  # FP8 KV cache: 163,840 B.
BLOCK_SIZE = 32  # TensorRT-LLM's default tokens_per_block.


@dataclass(frozen=True)
class Gpu:
    """One GPU model's datasheet numbers (NVIDIA H100/H200 SXM datasheets)."""

    name: str
    hbm_bytes: float  # usable HBM as the driver reports it (nvidia-smi total memory)
    hbm_bandwidth: float  # bytes/s
    fp8_dense_flops: float  # FLOP/s, dense (no sparsity)


GPUS: dict[str, Gpu] = {
    # H100 SXM5 80 GB: nvidia-smi reports 81,559 MiB; 3.35 TB/s; 1,979 TFLOPS FP8 dense
    # (the datasheet's 3,958 is with 2:4 sparsity).
    "h100": Gpu("h100", 81_559 * 2**20, 3.35e12, 1.979e15),
    # H200 SXM 141 GB: nvidia-smi reports 143,771 MiB; 4.8 TB/s; same Hopper compute as H100.
    "h200": Gpu("h200", 143_771 * 2**20, 4.8e12, 1.979e15),
}

# --- Engine assumptions ----------------------------------------------------------------
# TensorRT-LLM KvCacheConfig.free_gpu_memory_fraction default: 0.9 of the memory left after
# weights and runtime buffers goes to the KV cache.
FREE_GPU_MEMORY_FRACTION = 0.9
# Per-GPU memory that is neither weights nor KV: CUDA context, activations and workspace,
# CUDA graphs, NCCL buffers. Assumed 4 GiB (TensorRT-LLM typically leaves 3-6 GiB).
RUNTIME_OVERHEAD_BYTES = 4 * 2**30
# Model FLOPs utilisation of a prefill forward pass at FP8 on Hopper. Assumed 40%
# (large-batch FP8 GEMMs reach 60-70%; attention, norms and launches pull the whole pass down).
PREFILL_MFU = 0.40
# Scaling efficiency of tensor parallelism (two all-reduces per layer over NVLink 4):
# assumed 1.0 / 0.92 / 0.85 / 0.78 for TP 1 / 2 / 4 / 8.
TP_EFFICIENCY = {1: 1.0, 2: 0.92, 4: 0.85, 8: 0.78}
# Fixed cost of one engine iteration (scheduling, launch, sampling); assumed 4 ms prefill,
# 2 ms decode, plus 15 us per TP all-reduce pair per layer for decode (latency-bound).
PREFILL_FIXED_MS = 4.0
DECODE_FIXED_MS = 2.0
DECODE_ALLREDUCE_US_PER_LAYER = 15.0
# Fraction of peak HBM bandwidth a decode step achieves streaming weights and KV: assumed 70%.
DECODE_BW_EFFICIENCY = 0.70
# Decode is also bounded by compute for very large batches (2 FLOPs/param/token) at this MFU.
DECODE_MFU = 0.35

# Grids written to the NPZ. The mocker chunks prefill at max_num_batched_tokens (8192 by
# default), so 16,384 covers every chunk it asks for.
PREFILL_GRID_MAX = 16_384
PREFILL_GRID_POINTS = 129
DECODE_GRID_POINTS = 64
DECODE_CONTEXT_MAX = 65_536

ASSUMPTIONS: dict[str, str] = {
    "model": "Llama 3.1 70B: 80 layers, hidden 8192, 8 KV heads x 128 (HF config.json); 70.6e9 params",
    "weights": "FP8, 1 byte/param = 70.6e9 B, split evenly over TP ranks",
    "kv_bytes_per_token": f"2 x 80 x 8 x 128 x 1 B = {KV_BYTES_PER_TOKEN:,} B (FP8 KV), split over TP",
    "hbm": "nvidia-smi total: H100 SXM 81,559 MiB; H200 SXM 143,771 MiB",
    "kv_pool": f"{FREE_GPU_MEMORY_FRACTION} x (HBM - weights/TP - {RUNTIME_OVERHEAD_BYTES / 2**30:.0f} GiB runtime) "
    "(TensorRT-LLM free_gpu_memory_fraction default 0.9; runtime overhead assumed)",
    "prefill": f"(2 x params x n + 4 x layers x hidden x n^2/2) FLOPs / (TP x 1,979 TFLOPS FP8 dense x MFU {PREFILL_MFU}"
    f" x TP efficiency {TP_EFFICIENCY}) + {PREFILL_FIXED_MS} ms",
    "decode": f"max(memory: (weights/TP + kv_tokens x KV bytes/TP) / ({DECODE_BW_EFFICIENCY} x HBM bandwidth), "
    f"compute: 2 x params x batch / (TP x peak x {DECODE_MFU})) + {DECODE_FIXED_MS} ms"
    f" + 2 x 80 x {DECODE_ALLREDUCE_US_PER_LAYER} us all-reduce when TP > 1",
    "bandwidth": "H100 SXM 3.35 TB/s, H200 SXM 4.8 TB/s (NVIDIA datasheets)",
}


@dataclass(frozen=True)
class KvCapacity:
    """KV-cache capacity of one replica (TP GPUs)."""

    gpu: str
    tp: int
    weights_per_gpu_bytes: float
    kv_pool_per_gpu_bytes: float
    kv_tokens: int
    num_gpu_blocks: int  # at BLOCK_SIZE tokens per block: the mocker's --num-gpu-blocks-override


@dataclass
class PerfProfile:
    """The mocker's lookup tables plus what they were derived from."""

    gpu: str
    tp: int
    capacity: KvCapacity
    prefill_isl: list[float] = field(repr=False)
    prefill_ttft_ms: list[float] = field(repr=False)
    decode_active_kv_tokens: list[float] = field(repr=False)
    decode_context_length: list[float] = field(repr=False)
    decode_itl: list[list[float]] = field(repr=False)
    source: str = "roofline"


def _gpu(gpu: str) -> Gpu:
    try:
        return GPUS[gpu.lower()]
    except KeyError:
        raise ValueError(f"gpu must be one of {sorted(GPUS)}, got {gpu!r}") from None


def _check_tp(tp: int) -> None:
    if tp not in TP_EFFICIENCY:
        raise ValueError(f"tp must be one of {sorted(TP_EFFICIENCY)}, got {tp!r}")


def kv_capacity(gpu: str, tp: int) -> KvCapacity:
    """KV tokens and blocks one replica of ``tp`` GPUs holds; raises if the weights do not fit."""
    g = _gpu(gpu)
    _check_tp(tp)
    weights = WEIGHT_BYTES / tp
    free = g.hbm_bytes - weights - RUNTIME_OVERHEAD_BYTES
    if free <= 0:
        raise ValueError(f"Llama 3.1 70B FP8 does not fit on {tp} x {g.name}")
    pool = FREE_GPU_MEMORY_FRACTION * free
    # Each rank holds KV_HEADS/tp heads of every token, so per-rank bytes per token shrink with TP.
    tokens = int(pool // (KV_BYTES_PER_TOKEN / tp))
    return KvCapacity(g.name, tp, weights, pool, tokens, tokens // BLOCK_SIZE)


SOURCES = ("auto", "measured", "roofline")


def _measured_module():
    """measured.py, imported late: it imports this module."""
    if __package__:  # imported as the perf_profile package
        from . import measured  # pylint: disable=import-outside-toplevel
    else:  # run as a file (the dynamo role: python files/perf_profile/llama_perf_profile.py --gpu G --tp N)
        import measured  # pylint: disable=import-outside-toplevel
    return measured


def _measured(gpu: str, source: str, timings=None):
    """The measured model for ``gpu`` (source auto/measured), or None for the roofline."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source == "roofline":
        return None
    measured = _measured_module()
    model = measured.model_for(gpu, timings)
    if model is None and source == "measured":
        raise ValueError(f"no measured timings for {gpu!r} (have {sorted(measured.SOURCE_OF)})")
    return model


def prefill_ms(gpu: str, tp: int, tokens: float, source: str = "auto", timings=None) -> float:
    """Milliseconds for one prefill pass over ``tokens`` new tokens: measured where there is a
    measurement for ``gpu`` (``source="auto"``), else the roofline."""
    _gpu(gpu)
    _check_tp(tp)
    model = _measured(gpu, source, timings)
    if model is not None:
        return model.prefill_ms(gpu.lower(), tp, tokens)
    return roofline_prefill_ms(gpu, tp, tokens)


def decode_itl_ms(gpu: str, tp: int, active_kv_tokens: float, context_length: float,
                  source: str = "auto", timings=None) -> float:
    """Milliseconds for one decode step of a batch holding ``active_kv_tokens`` KV tokens."""
    _gpu(gpu)
    _check_tp(tp)
    model = _measured(gpu, source, timings)
    if model is not None:
        return model.decode_itl_ms(gpu.lower(), tp, active_kv_tokens, context_length)
    return roofline_decode_itl_ms(gpu, tp, active_kv_tokens, context_length)


def roofline_prefill_ms(gpu: str, tp: int, tokens: float) -> float:
    """Roofline: milliseconds for one prefill pass over ``tokens`` new tokens (starting at position 0)."""
    g = _gpu(gpu)
    _check_tp(tp)
    n = max(0.0, float(tokens))
    # Linear layers: 2 FLOPs per parameter per token. Causal attention: QK^T and PV each
    # 2 x hidden FLOPs per (query, key) pair per layer, n^2/2 pairs.
    flops = 2.0 * PARAMS * n + 4.0 * LAYERS * HIDDEN * n * n / 2.0
    rate = tp * g.fp8_dense_flops * PREFILL_MFU * TP_EFFICIENCY[tp]
    return PREFILL_FIXED_MS + 1000.0 * flops / rate


def roofline_decode_itl_ms(gpu: str, tp: int, active_kv_tokens: float, context_length: float) -> float:
    """Roofline: milliseconds for one decode step of a batch holding ``active_kv_tokens`` KV tokens."""
    g = _gpu(gpu)
    _check_tp(tp)
    kv = max(0.0, float(active_kv_tokens))
    batch = max(1.0, kv / max(1.0, float(context_length)))
    memory_s = (WEIGHT_BYTES / tp + kv * KV_BYTES_PER_TOKEN / tp) / (g.hbm_bandwidth * DECODE_BW_EFFICIENCY)
    compute_s = 2.0 * PARAMS * batch / (tp * g.fp8_dense_flops * DECODE_MFU)
    comm_ms = 2 * LAYERS * DECODE_ALLREDUCE_US_PER_LAYER / 1000.0 if tp > 1 else 0.0
    return DECODE_FIXED_MS + comm_ms + 1000.0 * max(memory_s, compute_s)


def linspace(lo: float, hi: float, n: int) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def build_profile(gpu: str, tp: int, source: str = "auto", timings=None) -> PerfProfile:
    """The mocker tables for Llama 3.1 70B FP8 on ``tp`` x ``gpu`` (``h100`` or ``h200``):
    measured timings where there are some (``source="auto"``), else the roofline."""
    cap = kv_capacity(gpu, tp)
    model = _measured(gpu, source, timings)
    if model is not None:
        return _measured_module().build_profile(model, gpu, tp)
    isl = linspace(0.0, PREFILL_GRID_MAX, PREFILL_GRID_POINTS)
    ttft = [roofline_prefill_ms(gpu, tp, n) for n in isl]
    kv_grid = linspace(0.0, float(cap.kv_tokens), DECODE_GRID_POINTS)
    ctx_grid = linspace(1.0, float(DECODE_CONTEXT_MAX), DECODE_GRID_POINTS)
    itl = [[roofline_decode_itl_ms(gpu, tp, kv, ctx) for ctx in ctx_grid] for kv in kv_grid]
    return PerfProfile(gpu.lower(), tp, cap, isl, ttft, kv_grid, ctx_grid, itl, source="roofline")


# The arrays of the mocker's NPZ, in order, with their dimensions (1-D, or 2-D [kv_idx, ctx_idx]).
NPZ_ARRAYS = ("prefill_isl", "prefill_ttft_ms", "decode_active_kv_tokens", "decode_context_length", "decode_itl")


def _npy(values: list, shape: tuple[int, ...]) -> bytes:
    """One array in NPY format version 1.0, little-endian float64, C order (numpy's format spec:
    numpy/lib/format.py; the header is padded with spaces so the data starts at a multiple of 64)."""
    flat = [float(v) for row in values for v in row] if len(shape) == 2 else [float(v) for v in values]
    expected = shape[0] * (shape[1] if len(shape) == 2 else 1)
    if len(flat) != expected:
        raise ValueError(f"array is not rectangular: {len(flat)} values for shape {shape}")
    dims = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + dims + ", }"
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * (pad % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + \
        struct.pack(f"<{len(flat)}d", *flat)


def write_npz(profile: PerfProfile, path: str | Path) -> Path:
    """Write the mocker-format NPZ: what ``numpy.savez`` writes (a stored zip of ``<name>.npy``
    members), without numpy, so the infra Python can write it too."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "prefill_isl": (profile.prefill_isl, (len(profile.prefill_isl),)),
        "prefill_ttft_ms": (profile.prefill_ttft_ms, (len(profile.prefill_ttft_ms),)),
        "decode_active_kv_tokens": (profile.decode_active_kv_tokens, (len(profile.decode_active_kv_tokens),)),
        "decode_context_length": (profile.decode_context_length, (len(profile.decode_context_length),)),
        "decode_itl": (profile.decode_itl, (len(profile.decode_itl), len(profile.decode_itl[0]))),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in NPZ_ARRAYS:
            values, shape = arrays[name]
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, _npy(values, shape))
    out.write_bytes(buf.getvalue())
    return out


def _lookup(xs: list[float], ys: list[float], x: float) -> float:
    """Linear interpolation in a table (x inside it)."""
    for i in range(1, len(xs)):
        if x <= xs[i]:
            return ys[i - 1] + (x - xs[i - 1]) / (xs[i] - xs[i - 1]) * (ys[i] - ys[i - 1])
    return ys[-1]


def _lookup2(profile: PerfProfile, kv: float, ctx: float) -> float:
    """Bilinear interpolation in the decode table (kv and ctx inside it)."""
    rows = [_lookup(profile.decode_context_length, row, ctx) for row in profile.decode_itl]
    return _lookup(profile.decode_active_kv_tokens, rows, kv)


def summary(profile: PerfProfile) -> dict:
    """What a caller needs besides the NPZ: capacity and a few reference latencies."""
    cap = profile.capacity
    return {
        "gpu": profile.gpu,
        "tp": profile.tp,
        "source": profile.source,
        "block_size": BLOCK_SIZE,
        "num_gpu_blocks": cap.num_gpu_blocks,
        "kv_tokens": cap.kv_tokens,
        "kv_pool_per_gpu_gib": round(cap.kv_pool_per_gpu_bytes / 2**30, 2),
        "prefill_ms_8k": round(_lookup(profile.prefill_isl, profile.prefill_ttft_ms, 8192), 1),
        "prefill_ms_256": round(_lookup(profile.prefill_isl, profile.prefill_ttft_ms, 256), 1),
        "decode_itl_ms_batch1_8k": round(_lookup2(profile, 8192, 8192), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--gpu", required=True, choices=sorted(GPUS))
    parser.add_argument("--tp", required=True, type=int, choices=sorted(TP_EFFICIENCY))
    parser.add_argument("--out", type=Path, help="NPZ to write (omit to print the summary only)")
    parser.add_argument("--assumptions", action="store_true", help="also print the assumptions")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="measured timings (auto: where measured, else the roofline) or the roofline")
    parser.add_argument("--timings", type=Path, help="a measure.py JSON to use instead of the committed one")
    args = parser.parse_args(argv)
    try:
        profile = build_profile(args.gpu, args.tp, args.source, args.timings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        write_npz(profile, args.out)
    info = summary(profile)
    if args.out:
        info["npz"] = str(args.out)
    if args.assumptions:
        info["assumptions"] = ASSUMPTIONS
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
