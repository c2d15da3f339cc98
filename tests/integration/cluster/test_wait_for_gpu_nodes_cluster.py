"""wait_for_gpu_nodes against the real test cluster (API server, scheduler, kwok nodes).

Every test that shapes nodes makes its own pool (``pool_name``), so tests do
not see each other's nodes; the cluster's own pools (pool-cpu, pool-gpu-h100,
from tests/cluster/nodes/doks-nodes.yaml) are left as they are.
"""

from __future__ import annotations

import socket
import time

import pytest

pytestmark = pytest.mark.integration

GPU_POOL = "pool-gpu-h100"


def pool_selector(pool):
    return [f"doks.digitalocean.com/node-pool={pool}"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_nodes_already_ready(run_module):
    run = run_module(count=3, gpus_per_node=8, label_selectors=pool_selector(GPU_POOL), timeout=30,
                     poll_interval=1)
    result = run.result
    assert run.returncode == 0, result
    assert result["changed"] is False and result["ready"] is True
    assert result["attempts"] == 1 and result["elapsed"] < 5
    assert result["eligible_nodes"] == ["pool-gpu-h100-x7q1a", "pool-gpu-h100-x7q1b", "pool-gpu-h100-x7q1c"]
    assert result["total_gpus"] == 24
    assert {(n["gpus"], n["gpu_capacity"], n["gpu_model"], n["node_pool"]) for n in result["nodes"]} == {
        (8, 8, "h100", GPU_POOL)}


def test_default_selector_finds_only_gpu_nodes(run_module):
    # Defaults of the old scripts/wait-for-gpu.sh: 3 nodes; the default selector is the DOKS GPU label.
    result = run_module(timeout=10, poll_interval=1).result
    assert result["ready"] is True, result
    # Other tests may add GPU pools of their own meanwhile; the CPU pool never matches.
    assert {"pool-gpu-h100-x7q1a", "pool-gpu-h100-x7q1b", "pool-gpu-h100-x7q1c"} <= set(result["eligible_nodes"])
    assert result["nodes"] and all(n["gpu_model"] and n["node_pool"] != "pool-cpu" for n in result["nodes"])


def test_nodes_turning_ready_after_a_delay(k8s_cluster, run_module, pool_name):
    # One node has registered but is still booting; the other joins the cluster later.
    k8s_cluster.add_test_node(f"{pool_name}-a", pool_name, owner=pool_name, managed=False)
    # The delays outlast the module's start-up (about 2 s here), so its first looks see too few nodes.
    k8s_cluster.make_node_ready_later(8, f"{pool_name}-a")
    k8s_cluster.add_test_node_later(5, f"{pool_name}-b", pool_name, owner=pool_name)
    started = time.monotonic()
    run = run_module(count=2, gpus_per_node=8, label_selectors=pool_selector(pool_name), timeout=90,
                     poll_interval=1)
    took = time.monotonic() - started
    result = run.result
    assert run.returncode == 0, result
    assert result["ready"] is True
    assert result["eligible_nodes"] == [f"{pool_name}-a", f"{pool_name}-b"]
    assert result["total_gpus"] == 16
    assert 8 <= took and 1 <= result["elapsed"] <= took and result["attempts"] >= 2


def test_too_few_gpus_per_node(k8s_cluster, run_module, pool_name):
    k8s_cluster.add_test_node(f"{pool_name}-a", pool_name, owner=pool_name, gpus=4)
    k8s_cluster.wait_nodes_ready([f"{pool_name}-a"])
    run = run_module(count=1, gpus_per_node=8, label_selectors=pool_selector(pool_name), timeout=3,
                     poll_interval=1)
    result = run.result
    assert run.returncode == 1 and result["failed"] and result["ready"] is False
    assert "allocatable nvidia.com/gpu is 4, want at least 8" in result["msg"]
    assert result["nodes"][0]["gpus"] == 4 and result["eligible_nodes"] == []
    # The same node is enough for a job that needs 4 per node.
    assert run_module(count=1, gpus_per_node=4, label_selectors=pool_selector(pool_name),
                      timeout=3).result["ready"] is True


def test_timeout_says_what_it_saw(k8s_cluster, run_module, pool_name):
    k8s_cluster.add_test_node(f"{pool_name}-booting", pool_name, owner=pool_name, managed=False)
    k8s_cluster.add_test_node(f"{pool_name}-cordoned", pool_name, owner=pool_name, unschedulable=True)
    k8s_cluster.add_test_node(f"{pool_name}-ok", pool_name, owner=pool_name)
    k8s_cluster.wait_nodes_ready([f"{pool_name}-cordoned", f"{pool_name}-ok"])
    started = time.monotonic()
    run = run_module(count=3, gpus_per_node=8, label_selectors=pool_selector(pool_name), timeout=4,
                     poll_interval=1)
    took = time.monotonic() - started
    result, msg = run.result, run.result["msg"]
    assert run.returncode == 1 and result["failed"]
    assert msg.startswith("Timed out after 4.")
    assert f"1 of 3 wanted node(s) matching doks.digitalocean.com/node-pool={pool_name}" in msg
    assert f"{pool_name}-booting: Ready is False (KubeletNotReady: container runtime network not ready" in msg
    assert f"{pool_name}-cordoned: cordoned (spec.unschedulable is true)" in msg
    assert f"{pool_name}-ok: ok (8 GPUs)" in msg
    assert 4 <= result["elapsed"] < 8 and took < 30
    assert result["eligible_nodes"] == [f"{pool_name}-ok"]


def test_no_matching_node(run_module):
    run = run_module(count=1, label_selectors=["doks.digitalocean.com/node-pool=no-such-pool"], timeout=2,
                     poll_interval=1)
    assert run.returncode == 1 and "no node matches the selector" in run.result["msg"]


def test_unreachable_api(run_module):
    # Nothing listens on this port: every attempt fails to connect, the module retries until the timeout.
    run = run_module(kubeconfig=None, context=None, host=f"https://127.0.0.1:{free_port()}", api_key="x",
                     validate_certs=False, count=1, timeout=3, poll_interval=1)
    result = run.result
    assert run.returncode == 1 and result["failed"]
    assert "The Kubernetes API could not be reached" in result["msg"]
    assert "Connection refused" in result["msg"] or "ConnectionRefused" in result["msg"]
    assert result["attempts"] >= 2 and result["api_errors"] == result["attempts"]
    assert "x" not in {str(v) for v in result.values()}, "the token must not be echoed"


def test_wrong_credentials_fail_at_once(k8s_cluster, run_module):
    run = run_module(kubeconfig=None, context=None, host=k8s_cluster.server(), api_key="not-a-token",
                     validate_certs=False, count=1, timeout=60, poll_interval=1)
    assert run.returncode == 1 and "HTTP 401" in run.result["msg"]
    assert "not-a-token" not in run.stderr + str(run.result)


def test_check_mode_looks_once_and_does_not_wait(k8s_cluster, run_module, pool_name):
    k8s_cluster.add_test_node(f"{pool_name}-booting", pool_name, owner=pool_name, managed=False)
    started = time.monotonic()
    run = run_module(_check_mode=True, count=1, label_selectors=pool_selector(pool_name), timeout=900)
    assert time.monotonic() - started < 30
    result = run.result
    assert run.returncode == 0 and result["ready"] is False and result["attempts"] == 1
    assert result["msg"].startswith("Check mode, one look: 0 of 1")
    ready = run_module(_check_mode=True, count=3, label_selectors=pool_selector(GPU_POOL))
    assert ready.result["ready"] is True and ready.result["changed"] is False
