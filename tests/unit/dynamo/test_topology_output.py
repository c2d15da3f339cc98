"""dynamo__output.topology: what the demo runs, one shape on every platform (CONTRACT 2; README.md, "Output").

The page and the dashboards show it ("2 × TP4 · 8 × H100 · <model>"), so the
GPU string must come from _common's node inputs, not from a copy of them.
"""

from __future__ import annotations

KEYS = {"replicas", "tensor_parallel", "engine", "gpu", "model"}


def test_every_platform_publishes_the_same_keys(rendered):
    for name in ("dev", "kind", "local_reordered", "dev_reordered"):
        topology = rendered[name].output["topology"]
        assert set(topology) == KEYS, name
        assert isinstance(topology["replicas"], int) and isinstance(topology["tensor_parallel"], int), name
        assert topology["model"] == rendered[name].output["model"], name


def test_topology_per_platform(rendered):
    # dev: 2 x TP4 TensorRT-LLM workers on one gpu-h100x8-640gb node (8 GPUs).
    assert rendered["dev"].output["topology"] == {
        "replicas": 2, "tensor_parallel": 4, "engine": "tensorrt_llm", "gpu": "8 × H100",
        "model": "nvidia/Llama-3.1-70B-Instruct-FP8"}
    # kind: the mocker on a laptop's fake GPUs.
    kind = rendered["kind"].output["topology"]
    assert (kind["engine"], kind["gpu"]) == ("mocker", "mocker (no GPU)")
    # local: the mocker, timed by the auto profile as the inventory's GPU.
    local = rendered["local_reordered"].output["topology"]
    assert (local["engine"], local["gpu"]) == ("mocker", "mocker (no GPU), timed as H100")
    assert (local["replicas"], local["tensor_parallel"]) == (2, 4)


def test_gpu_string_follows_common_inputs(rendered):
    # dev_reordered: two gpu-h200x8-1128gb nodes, gtc_demo_gpus_per_node 0 (the size's 8).
    assert rendered["dev_reordered"].output["topology"]["gpu"] == "16 × H200"
