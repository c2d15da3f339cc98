"""From measured layer timings to the mocker's tables (files/perf_profile/measured.py), and the
committed H200 measurement that the local demo and the benchmarks use by default."""

import json

import pytest

from perf_profile import llama_perf_profile as perf
from perf_profile import measure
from perf_profile import measured

from npy_reader import read_npz


def test_interp_is_flat_below_linear_between_and_past():
    xs, ys = [64.0, 128.0, 256.0], [1.0, 2.0, 4.0]
    assert measured._interp(xs, ys, 10) == 1.0
    assert measured._interp(xs, ys, 96) == pytest.approx(1.5)
    assert measured._interp(xs, ys, 512) == pytest.approx(8.0)  # last slope continued
    assert measured._nondecreasing([1.0, 3.0, 2.0, 4.0]) == [1.0, 3.0, 3.0, 4.0]


def test_attention_fit_recovers_a_linear_cost_and_never_goes_negative():
    pts = [(b, b * c, 0.01 + 0.002 * b + 3e-7 * b * c) for b in (1, 4, 16, 64) for c in (256, 4096, 32768)]
    a0, a1, a2 = measured.fit_attention(pts)
    assert (a0, a1, a2) == pytest.approx((0.01, 0.002, 3e-7), rel=1e-6)
    # data that would pull the batch term below zero: clamped to 0, the others refitted
    pts = [(b, b * c, 0.05 - 0.0001 * b + 1e-7 * b * c) for b in (1, 8, 64) for c in (1024, 8192)]
    coef = measured.fit_attention(pts)
    assert min(coef) >= 0 and coef[1] == 0


def test_allreduce_model():
    assert measured.allreduce_ms(1, 8192) == 0
    # TP 4, 8K tokens: 15 us + 2 x 3/4 x 8192 x 8192 x 2 B / 360 GB/s
    assert measured.allreduce_ms(4, 8192) == pytest.approx(0.015 + 1.5 * 8192 * 8192 * 2 / 360e9 * 1e3)
    assert measured.allreduce_ms(8, 1) == pytest.approx(0.015, rel=0.01)  # latency-bound at decode


@pytest.fixture(scope="module")
def fake_model():
    doc = measure.measure(measure.FakeBackend(), measure.Plan())
    return measured.MeasuredModel(doc)


def test_prefill_is_fixed_cost_plus_80_layers_plus_allreduce(fake_model):
    layer = fake_model.layer_prefill_ms("h200", 4, 8192)
    expected = (perf.PREFILL_FIXED_MS + 80 * layer + 2 * 80 * measured.allreduce_ms(4, 8192)
                + fake_model.lm_head_ms("h200", 4, 1))
    assert fake_model.prefill_ms("h200", 4, 8192) == pytest.approx(expected)
    rec = next(r for r in fake_model.doc["tp"]["4"]["prefill"] if r["new"] == 8192 and r["prefix"] == 0)
    assert layer == rec["layer_ms"]  # a measured point is used as measured
    assert fake_model.prefill_ms("h200", 4, 0) == perf.PREFILL_FIXED_MS


def test_decode_adds_dense_attention_allreduce_and_lm_head(fake_model):
    t = fake_model.tables("h200", 2)
    a0, a1, a2 = t["attention"]
    dense = measured._interp(*t["dense"], 16)
    expected = (perf.DECODE_FIXED_MS + 80 * (dense + a0 + a1 * 16 + a2 * 16 * 8192)
                + 2 * 80 * measured.allreduce_ms(2, 16) + fake_model.lm_head_ms("h200", 2, 16))
    assert fake_model.decode_itl_ms("h200", 2, 16 * 8192, 8192) == pytest.approx(expected)


def test_h100_is_h200_slowed_where_memory_bound(fake_model):
    for tp in (1, 8):
        # decode streams weights and KV: close to the bandwidth ratio 4.8 / 3.35
        ratio = fake_model.decode_itl_ms("h100", tp, 8192, 8192) / fake_model.decode_itl_ms("h200", tp, 8192, 8192)
        assert 1.2 < ratio <= 4.8 / 3.35 + 1e-9
        # a 16K prefill is compute-bound: nearly the same
        pre = fake_model.prefill_ms("h100", tp, 16384) / fake_model.prefill_ms("h200", tp, 16384)
        assert 1.0 <= pre < 1.1


def test_measured_profile_tables_are_monotonic(fake_model):
    prof = measured.build_profile(fake_model, "h200", 4)
    assert prof.source.startswith("measured on fake")
    assert all(b >= a for a, b in zip(prof.prefill_ttft_ms, prof.prefill_ttft_ms[1:]))
    for row in prof.decode_itl:
        assert all(b <= a + 1e-9 for a, b in zip(row, row[1:]))
    for j in range(len(prof.decode_context_length)):
        col = [row[j] for row in prof.decode_itl]
        assert all(b >= a - 1e-9 for a, b in zip(col, col[1:]))


def test_a_document_without_enough_points_is_refused(fake_model):
    doc = json.loads(json.dumps(fake_model.doc))
    doc["tp"]["1"]["decode"] = doc["tp"]["1"]["decode"][:1]
    with pytest.raises(ValueError, match="decode"):
        measured.MeasuredModel(doc).tables("h200", 1)
    with pytest.raises(ValueError, match="not measured"):
        measured.MeasuredModel({**doc, "tp": {"1": doc["tp"]["1"]}}).tables("h200", 4)


# --- the committed measurement ------------------------------------------------------------
@pytest.fixture(scope="module")
def h200():
    path = measured.TIMINGS["h200"]
    assert path.exists(), "the measured H200 timings are committed data"
    return measured.MeasuredModel(json.loads(path.read_text()))


def test_committed_h200_measurement_is_complete(h200):
    doc = h200.doc
    assert "H200" in doc["gpu"]["name"] and doc["gpu"]["driver"] and doc["torch"].startswith("2.")
    assert doc["method"]["cuda_graphs"] is True and doc["method"]["elementwise_compiled"] is True
    assert doc["errors"] == [] and doc["skipped"] == []
    assert h200.tps == [1, 2, 4, 8]
    for tp in (1, 2, 4, 8):
        e = doc["tp"][str(tp)]
        assert {(r["new"], r["prefix"]) for r in e["prefill"]} == {(p.new, p.prefix) for p in measure.prefill_grid()}
        assert {(r["batch"], r["ctx"]) for r in e["decode"]} == {(p.batch, p.ctx) for p in measure.decode_grid(tp)}


def test_committed_measurement_is_what_the_mocker_gets_by_default(h200, tmp_path):
    for tp in (1, 2, 4, 8):
        prof = perf.build_profile("h200", tp)
        assert prof.source.startswith("measured on NVIDIA H200")
        assert perf.prefill_ms("h200", tp, 8192) == pytest.approx(h200.prefill_ms("h200", tp, 8192))
        assert perf.build_profile("h100", tp).source.endswith("scaled to H100 bandwidth")
        assert perf.build_profile("h200", tp, "roofline").source == "roofline"
    npz = read_npz(perf.write_npz(perf.build_profile("h200", 2), tmp_path / "p.npz"))
    assert npz["prefill_ttft_ms.npy"][1] == pytest.approx(perf.build_profile("h200", 2).prefill_ttft_ms)


def test_a_cached_prefix_costs_attention_time(h200):
    # 300 new tokens over 5,000 cached: more than the same 300 alone, growing with the prefix
    for tp in (1, 2, 4, 8):
        extra = [h200.prefix_extra_ms("h200", tp, 300, p) for p in (5000, 16384, 32768)]
        assert 0 < extra[0] < extra[1] < extra[2]
    assert h200.prefix_extra_ms("h200", 2, 300, 777) is None


def test_cli_source_switch(capsys):
    assert perf.main(["--gpu", "h200", "--tp", "4", "--source", "roofline"]) == 0
    roof = json.loads(capsys.readouterr().out)
    assert perf.main(["--gpu", "h200", "--tp", "4"]) == 0
    meas = json.loads(capsys.readouterr().out)
    assert roof["source"] == "roofline" and meas["source"].startswith("measured")
    assert roof["num_gpu_blocks"] == meas["num_gpu_blocks"]  # capacity is arithmetic either way
    assert roof["prefill_ms_8k"] == pytest.approx(perf.roofline_prefill_ms("h200", 4, 8192), abs=0.1)
    assert meas["prefill_ms_8k"] == pytest.approx(perf.prefill_ms("h200", 4, 8192), abs=0.1)
    with pytest.raises(ValueError, match="source"):
        perf.build_profile("h200", 4, "guess")
