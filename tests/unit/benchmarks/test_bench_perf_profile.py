"""The Llama 3.1 70B FP8 mocker profile: capacity arithmetic, monotonicity, TP scaling.

The roofline's own properties are tested with ``source="roofline"`` (the documented fallback);
the measured profile's are in tests/unit/perf_profile/."""

import json

import pytest

from perf_profile import llama_perf_profile as perf


def test_kv_bytes_per_token_is_llama70b_fp8():
    # 2 (K, V) x 80 layers x 8 KV heads x 128 head dim x 1 byte
    assert perf.KV_BYTES_PER_TOKEN == 163_840


@pytest.mark.parametrize("gpu", ["h100", "h200"])
@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_capacity_follows_from_free_memory(gpu, tp):
    cap = perf.kv_capacity(gpu, tp)
    hbm = perf.GPUS[gpu].hbm_bytes
    expected_pool = 0.9 * (hbm - 70.6e9 / tp - perf.RUNTIME_OVERHEAD_BYTES)
    assert cap.kv_pool_per_gpu_bytes == pytest.approx(expected_pool)
    # each rank stores 1/tp of every token's KV
    assert cap.kv_tokens == int(expected_pool // (163_840 / tp))
    assert cap.num_gpu_blocks == cap.kv_tokens // 32


def test_capacity_reference_numbers():
    # H200 (143,771 MiB): one replica of TP4 holds ~2.8 M tokens; TP1 ~0.42 M tokens.
    assert perf.kv_capacity("h200", 4).num_gpu_blocks == pytest.approx(88_446, rel=1e-3)
    assert perf.kv_capacity("h200", 1).num_gpu_blocks == pytest.approx(13_022, rel=1e-3)
    # H100 TP1: weights leave only ~9 GiB, under 60 K tokens
    assert perf.kv_capacity("h100", 1).kv_tokens < 60_000


def test_capacity_grows_with_tp_and_hbm():
    for gpu in ("h100", "h200"):
        blocks = [perf.kv_capacity(gpu, tp).num_gpu_blocks for tp in (1, 2, 4, 8)]
        assert blocks == sorted(blocks) and len(set(blocks)) == 4
    for tp in (1, 2, 4, 8):
        assert perf.kv_capacity("h200", tp).num_gpu_blocks > perf.kv_capacity("h100", tp).num_gpu_blocks


def test_prefill_monotonic_in_tokens_and_superlinear():
    for gpu in ("h100", "h200"):
        for tp in (1, 2, 4, 8):
            prof = perf.build_profile(gpu, tp, "roofline")
            ttft = prof.prefill_ttft_ms
            assert all(b > a for a, b in zip(ttft, ttft[1:]))
            assert prof.prefill_isl[0] == 0 and prof.prefill_isl[-1] >= 8192
    # attention makes 16K cost more than twice 8K (beyond the fixed cost)
    f = perf.PREFILL_FIXED_MS
    for source in ("roofline", "auto"):  # the measured profile too: attention grows with n^2
        assert perf.prefill_ms("h200", 4, 16384, source) - f > 2 * (perf.prefill_ms("h200", 4, 8192, source) - f)


def test_prefill_scales_with_tp_with_a_communication_penalty():
    f = perf.PREFILL_FIXED_MS
    t1 = perf.roofline_prefill_ms("h200", 1, 8192) - f
    for tp in (2, 4, 8):
        ttp = perf.roofline_prefill_ms("h200", tp, 8192) - f
        assert t1 / tp < ttp < t1  # faster, but less than linearly
        assert ttp == pytest.approx(t1 / (tp * perf.TP_EFFICIENCY[tp]))
    for source in ("roofline", "auto"):
        t1 = perf.prefill_ms("h200", 1, 8192, source) - f
        for tp in (2, 4, 8):
            assert t1 / tp < perf.prefill_ms("h200", tp, 8192, source) - f < t1
        # 8K prefill of a 70B model at TP4 on Hopper: hundreds of milliseconds
        assert 300 < perf.prefill_ms("h200", 4, 8192, source) < 800


@pytest.mark.parametrize("source", ["roofline", "auto"])
def test_decode_itl_monotonic_and_bandwidth_bound(source):
    prof = perf.build_profile("h200", 4, source)
    itl = prof.decode_itl
    for row in itl:  # more context at fixed KV = smaller batch: never slower
        assert all(b <= a + 1e-9 for a, b in zip(row, row[1:]))
    for j in range(len(prof.decode_context_length)):  # more KV tokens: slower
        col = [row[j] for row in itl]
        assert all(b >= a for a, b in zip(col, col[1:]))
    assert col[-1] > col[0]
    # H200 has more bandwidth than H100: faster decode at the same TP
    assert perf.decode_itl_ms("h200", 4, 8192, 8192, source) < perf.decode_itl_ms("h100", 4, 8192, 8192, source)
    # weights/TP at 70% of 4.8 TB/s: ~5 ms at TP4 plus fixed and all-reduce costs
    assert 5 < perf.decode_itl_ms("h200", 4, 0, 1, source) < 15


def test_decode_grid_spans_the_replica_capacity():
    prof = perf.build_profile("h100", 2)
    assert prof.decode_active_kv_tokens[0] == 0
    assert prof.decode_active_kv_tokens[-1] == prof.capacity.kv_tokens
    assert len(prof.decode_itl) == len(prof.decode_active_kv_tokens)
    assert all(len(r) == len(prof.decode_context_length) for r in prof.decode_itl)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="gpu"):
        perf.kv_capacity("a100", 4)
    with pytest.raises(ValueError, match="tp"):
        perf.kv_capacity("h200", 3)


def test_cli_prints_capacity_without_writing(capsys):
    assert perf.main(["--gpu", "h200", "--tp", "2"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_gpu_blocks"] == perf.kv_capacity("h200", 2).num_gpu_blocks
    assert info["block_size"] == 32 and "npz" not in info
