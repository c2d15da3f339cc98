"""The simulator's engine arguments: each cell gets the profile as it is now, never an NPZ left
in the shared profile folder by an older profile (the roofline's, before the measured one)."""

from gtc_bench import sim

from perf_profile import llama_perf_profile as perf


def test_engine_args_rewrite_a_stale_profile(tmp_path):
    spec = sim.EngineSpec(gpu="h200", profile_dir=tmp_path)
    path = spec.engine_args(2)["engine"]["timing_model"]["config"]["path"]
    with open(path, "wb") as fh:  # what an earlier profile left behind
        fh.write(b"stale")
    args = spec.engine_args(2)["engine"]
    fresh = tmp_path / "expected.npz"
    perf.write_npz(perf.build_profile("h200", 2), fresh)
    with open(args["timing_model"]["config"]["path"], "rb") as fh:
        assert fh.read() == fresh.read_bytes()
    assert args["num_gpu_blocks"] == perf.kv_capacity("h200", 2).num_gpu_blocks
    assert not list(tmp_path.glob("*.tmp"))


def test_roofline_and_measured_profiles_do_not_share_a_file(tmp_path):
    auto = sim.EngineSpec(gpu="h200", profile_dir=tmp_path).engine_args(4)
    roof = sim.EngineSpec(gpu="h200", profile_dir=tmp_path, source="roofline").engine_args(4)
    pa = auto["engine"]["timing_model"]["config"]["path"]
    pr = roof["engine"]["timing_model"]["config"]["path"]
    assert pa != pr and pa.endswith("-measured.npz") and pr.endswith("-roofline.npz")
