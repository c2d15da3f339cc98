"""The test cluster behaves like a DOKS GPU cluster for the real scheduler.

The kube-scheduler decides here, not the test: a pod asking for 4 GPUs and
tolerating the GPU taint lands on a GPU node; the same pod without the
toleration stays Pending (the CPU nodes have no GPUs, the GPU nodes are
tainted).
"""

from __future__ import annotations

import uuid

import pytest

from helpers import wait_for

pytestmark = pytest.mark.integration

NAMESPACE = "default"


def gpu_pod(name, tolerate):
    spec = {
        "containers": [{
            "name": "cuda",
            "image": "nvcr.io/nvidia/cuda:12.9.1-base-ubuntu24.04",
            "resources": {"limits": {"nvidia.com/gpu": "4"}, "requests": {"nvidia.com/gpu": "4"}},
        }],
        "terminationGracePeriodSeconds": 0,
    }
    if tolerate:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def pods(k8s_cluster):
    names = []
    yield names
    for name in names:
        k8s_cluster.core().delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)


def test_default_nodes_look_like_doks(k8s_cluster):
    nodes = {n.metadata.name: n for n in k8s_cluster.core().list_node(
        label_selector="doks.digitalocean.com/node-pool in (pool-cpu,pool-gpu-h100)").items}
    gpu = [n for n in nodes.values() if n.metadata.labels.get("doks.digitalocean.com/gpu-brand") == "nvidia"]
    cpu = [n for n in nodes.values() if n.metadata.labels["doks.digitalocean.com/node-pool"] == "pool-cpu"]
    assert len(gpu) == 3 and len(cpu) == 2
    for node in gpu:
        assert node.status.capacity["nvidia.com/gpu"] == "8" and node.status.allocatable["nvidia.com/gpu"] == "8"
        assert node.metadata.labels["doks.digitalocean.com/gpu-model"] == "h100"
        assert [(t.key, t.effect) for t in node.spec.taints] == [("nvidia.com/gpu", "NoSchedule")]
    for node in cpu:
        assert "nvidia.com/gpu" not in node.status.allocatable
        assert not [t for t in (node.spec.taints or []) if t.key == "nvidia.com/gpu"]
    for node in nodes.values():
        ready = [c.status for c in node.status.conditions if c.type == "Ready"]
        assert ready == ["True"], node.metadata.name


def test_gpu_pod_with_toleration_schedules_onto_a_gpu_node(k8s_cluster, pods):
    name = f"gpu-tolerating-{uuid.uuid4().hex[:6]}"
    pods.append(name)
    core = k8s_cluster.core()
    core.create_namespaced_pod(NAMESPACE, gpu_pod(name, tolerate=True))
    pod = wait_for(lambda: (p := core.read_namespaced_pod(name, NAMESPACE)).status.phase == "Running" and p, timeout=60)
    node = core.read_node(pod.spec.node_name)
    # Usually pool-gpu-h100; other tests' GPU pools are as good to the scheduler.
    assert node.metadata.labels["doks.digitalocean.com/gpu-brand"] == "nvidia"
    assert ("nvidia.com/gpu", "NoSchedule") in [(t.key, t.effect) for t in node.spec.taints]
    assert int(node.status.allocatable["nvidia.com/gpu"]) >= 4


def test_gpu_pod_without_toleration_stays_pending(k8s_cluster, pods):
    name = f"gpu-intolerant-{uuid.uuid4().hex[:6]}"
    pods.append(name)
    core = k8s_cluster.core()
    core.create_namespaced_pod(NAMESPACE, gpu_pod(name, tolerate=False))

    def unschedulable():
        pod = core.read_namespaced_pod(name, NAMESPACE)
        for condition in pod.status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "False":
                return pod, condition
        return None

    pod, condition = wait_for(unschedulable, timeout=60)
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    assert condition.reason == "Unschedulable"
    # The scheduler's own explanation names both obstacles.
    assert "untolerated taint" in condition.message and "nvidia.com/gpu" in condition.message
    assert "Insufficient nvidia.com/gpu" in condition.message
