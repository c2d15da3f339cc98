"""The layer profiler (files/perf_profile/measure.py) on CPU: shape arithmetic, grids, the timing
method, the JSON schema, and the whole measuring code path through a fake timing backend."""

import json

import pytest

from perf_profile import llama_perf_profile as perf
from perf_profile import measure

from npy_reader import read_npz


# --- shape arithmetic -------------------------------------------------------------------
@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_shard_splits_the_layer_evenly(tp):
    s = measure.shard(tp)
    assert s.heads * tp == 64 and s.kv_heads * tp == 8
    assert s.qkv_out == (64 + 2 * 8) * 128 // tp
    assert s.o_in == 8192 // tp
    assert s.gate_up_out == 2 * 28672 // tp and s.down_in == 28672 // tp
    assert s.vocab * tp == 128256
    # _scaled_mm needs K and N multiples of 16 (FP8 tensor-core tiles)
    for k, n in s.gemm_dims().values():
        assert k % 16 == 0 and n % 16 == 0
    # every rank holds 1/tp of the layer's weights
    assert s.weight_bytes() * tp == measure.shard(1).weight_bytes()


def test_layer_weights_add_up_to_llama_70b():
    # 80 layers of the four projections plus embeddings and the LM head (2 x vocab x hidden)
    total = 80 * measure.shard(1).weight_bytes() + 2 * 128256 * 8192
    assert total == pytest.approx(perf.PARAMS, rel=0.005)
    assert measure.shard(1).gemm_dims() == {"qkv": (8192, 10240), "o": (8192, 8192),
                                            "gate_up": (8192, 57344), "down": (28672, 8192)}


def test_shard_refuses_other_tp():
    for tp in (3, 16, 0):
        with pytest.raises(ValueError, match="tp"):
            measure.shard(tp)


def test_op_cost_gemm_and_attention():
    pt = measure.Point("prefill", new=1000)
    flops, byts = measure.op_cost("gate_up", 4, pt)
    assert flops == 2 * 1000 * 8192 * (2 * 28672 // 4)
    assert byts == 8192 * 14336 + 1000 * 8192 + 2 * 1000 * 14336  # FP8 weight + FP8 input + bf16 out
    # causal: n(n+1)/2 pairs; a cached prefix adds n x prefix pairs
    f0 = measure.op_cost("attention", 1, measure.Point("prefill", new=300))[0]
    f1, b1 = measure.op_cost("attention", 1, measure.Point("prefill", new=300, prefix=5000))
    assert f0 == 4 * (300 * 301 / 2) * 64 * 128
    assert f1 - f0 == 4 * 300 * 5000 * 64 * 128
    assert b1 == 2 * 5300 * 1024 * 2 + 2 * 300 * 8192 * 2
    # decode: batch x context pairs, KV read dominates the bytes
    fd, bd = measure.op_cost("attention", 8, measure.Point("decode", batch=16, ctx=8192))
    assert fd == 4 * 16 * 8192 * 8 * 128
    assert bd == 16 * (2 * 8192 * 128 * 2 + 2 * 1024 * 2)
    with pytest.raises(ValueError):
        measure.op_cost("softmax", 1, pt)


# --- grids ------------------------------------------------------------------------------
def test_prefill_grid_spans_64_to_16k_and_cached_prefixes():
    pts = measure.prefill_grid()
    plain = sorted(p.new for p in pts if p.prefix == 0 and p.new in measure.PREFILL_TOKENS)
    assert plain[0] == 64 and plain[-1] == 16384 and plain == sorted(set(plain))
    keys = {(p.new, p.prefix) for p in pts}
    assert (300, 5000) in keys and (300, 0) in keys  # the follow-up turn and its baseline
    assert all((n, 0) in keys for n in measure.PREFIX_NEW)  # each prefix row has its zero
    assert len(keys) == len(pts)  # no point twice


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_decode_grid_stays_inside_the_replica(tp):
    cap = perf.kv_capacity("h200", tp).kv_tokens
    pts = measure.decode_grid(tp)
    assert pts and all(p.batch * p.ctx <= cap for p in pts)
    assert {p.batch for p in pts} >= {1, 16, 64}
    assert {(1, 8192), (16, 8192)} <= {(p.batch, p.ctx) for p in pts}
    assert measure.decode_grid(tp, max_kv_tokens=1024) == [
        measure.Point("decode", batch=b, ctx=c) for b in measure.DECODE_BATCH for c in measure.DECODE_CONTEXT
        if b * c <= 1024]


# --- the timing method ------------------------------------------------------------------
def test_median_ms_drops_warmups_and_takes_the_median():
    seq = iter([100.0, 90.0, 3.0, 1.0, 2.0, 50.0, 4.0])
    calls = []

    def replay():
        v = next(seq)
        calls.append(v)
        return v

    assert measure.median_ms(replay, warmup=2, repeats=5) == 3.0  # median of 3, 1, 2, 50, 4
    assert len(calls) == 7
    with pytest.raises(ValueError):
        measure.median_ms(replay, warmup=0, repeats=0)


def _fake_doc(tps=(1, 8), **plan):
    return measure.measure(measure.FakeBackend(), measure.Plan(tps=tuple(tps), **plan))


def test_measure_runs_every_point_through_the_backend():
    backend = measure.FakeBackend(warmup=2, repeats=5)
    doc = measure.measure(backend, measure.Plan(tps=(2,)))
    measure.validate(doc)
    entry = doc["tp"]["2"]
    assert len(entry["prefill"]) == len(measure.prefill_grid())
    assert len(entry["decode"]) == len(measure.decode_grid(2))
    assert {r["m"] for r in entry["lm_head"]} == {1, *(p.batch for p in measure.decode_grid(2))}
    for rec in entry["prefill"] + entry["decode"]:
        assert set(rec["ops_ms"]) == set(measure.LAYER_OPS)
        assert rec["layer_ms"] > 0
    # each timed quantity: warm-ups plus repeats, (10 ops + the layer) per point, one per lm_head row
    points = len(entry["prefill"]) + len(entry["decode"])
    assert backend.calls == 7 * (11 * points + len(entry["lm_head"]))
    assert doc["gpu"]["name"] == "fake" and doc["schema"] == measure.SCHEMA
    assert doc["errors"] == [] and doc["skipped"] == []


def test_a_failing_point_is_recorded_and_the_rest_measured():
    class Flaky(measure.FakeBackend):
        def time_point(self, tp, pt, per_op=True):
            if pt.phase == "decode" and pt.batch == 256:
                raise RuntimeError("CUDA out of memory")
            return super().time_point(tp, pt, per_op)

    doc = measure.measure(Flaky(), measure.Plan(tps=(8,)))
    bad = [e for e in doc["errors"] if e["phase"] == "decode"]
    assert bad and all(e["batch"] == 256 and "out of memory" in e["error"] for e in bad)
    assert len(doc["tp"]["8"]["decode"]) == len(measure.decode_grid(8)) - len(bad)


def test_budget_skips_points_and_lists_them():
    doc = _fake_doc(tps=(4,), budget_s=-1.0)
    assert doc["tp"]["4"]["prefill"] == [] and doc["tp"]["4"]["decode"] == []
    assert len(doc["skipped"]) == len(measure.prefill_grid()) + len(measure.decode_grid(4))


def test_whole_layers_only_when_per_op_is_off():
    doc = _fake_doc(tps=(1,), per_op=False, quick=True)
    assert all(r["ops_ms"] == {} for r in doc["tp"]["1"]["prefill"])


# --- the JSON schema --------------------------------------------------------------------
def test_validate_refuses_broken_documents():
    doc = _fake_doc(tps=(1,), quick=True)
    measure.validate(doc)
    cases = [
        (lambda d: d.update(schema="v0"), "schema"),
        (lambda d: d["gpu"].pop("driver"), "driver"),
        (lambda d: d.pop("date"), "date"),
        (lambda d: d["tp"].update({"3": d["tp"]["1"]}), "tp"),
        (lambda d: d["tp"]["1"]["decode"][0].update(layer_ms=-1.0), "positive"),
        (lambda d: d["tp"]["1"]["decode"][0].update(layer_ms=float("nan")), "positive"),
        (lambda d: d["tp"]["1"]["prefill"][0].pop("prefix"), "prefix"),
        (lambda d: d["tp"]["1"]["prefill"][0]["ops_ms"].update(softmax=1.0), "unknown ops"),
        (lambda d: d["tp"]["1"]["lm_head"][0].pop("ms"), "lm_head"),
        (lambda d: d.update(tp={}), "no TP"),
    ]
    for breaks, match in cases:
        bad = json.loads(json.dumps(doc))
        breaks(bad)
        with pytest.raises(ValueError, match=match):
            measure.validate(bad)


def test_merge_joins_runs_of_one_gpu():
    a, b = _fake_doc(tps=(1, 2), quick=True), _fake_doc(tps=(4, 8), quick=True)
    merged = measure.merge([a, b])
    assert list(merged["tp"]) == ["1", "2", "4", "8"]
    assert merged["tp"]["4"] == b["tp"]["4"] and [r["tps"] for r in merged["runs"]] == [["1", "2"], ["4", "8"]]
    b["gpu"]["name"] = "other"
    with pytest.raises(ValueError, match="different GPUs"):
        measure.merge([a, b])


# --- end to end: JSON and the mocker's NPZ ----------------------------------------------
def test_cli_writes_json_and_a_mocker_npz_per_tp(tmp_path, capsys):
    assert measure.main(["--backend", "fake", "--out", str(tmp_path), "--tp", "2", "8", "--quick"]) == 0
    assert '"errors": 0' in capsys.readouterr().out
    doc = json.loads((tmp_path / "h200-layer-timings.json").read_text())
    measure.validate(doc)
    assert not (tmp_path / "h200-layer-timings.partial.json").exists()
    for tp in (2, 8):
        arrays = read_npz(tmp_path / f"h200-tp{tp}.npz")
        # the five arrays dynamo.mocker's is_mocker_format_npz requires, float64, numpy's layout
        assert set(arrays) == {f"{n}.npy" for n in perf.NPZ_ARRAYS}
        shapes = {k: v[0] for k, v in arrays.items()}
        assert shapes == {"prefill_isl.npy": (129,), "prefill_ttft_ms.npy": (129,),
                          "decode_active_kv_tokens.npy": (64,), "decode_context_length.npy": (64,),
                          "decode_itl.npy": (64, 64)}
        for _shape, _values, header, offset in arrays.values():
            assert header["descr"] == "<f8" and header["fortran_order"] is False and offset % 64 == 0
        isl = arrays["prefill_isl.npy"][1]
        assert isl[0] == 0 and isl[-1] == 16384 and isl == sorted(isl)
        assert arrays["decode_active_kv_tokens.npy"][1][-1] == perf.kv_capacity("h200", tp).kv_tokens
