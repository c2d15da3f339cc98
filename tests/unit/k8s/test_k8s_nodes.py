"""Unit tests of the node evaluation and the waiter in plugins/module_utils/k8s_nodes.py.

The waiter gets a scripted node list and a fake clock, so the timing rules
(deadline, last look, retries) are checked exactly and instantly; the same
code runs against the real API server in tests/integration/cluster.
"""

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils import k8s_nodes
from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.k8s_nodes import (
    GpuNodeWaiter,
    NodeListError,
    classify_error,
    describe,
    evaluate_node,
    parse_count,
)


def node(name, ready="True", gpus="8", unschedulable=False, reason=None, message=None, pool="gpu"):
    conditions = []
    if ready is not None:
        condition = {"type": "Ready", "status": ready}
        if reason:
            condition["reason"] = reason
        if message:
            condition["message"] = message
        conditions.append({"type": "MemoryPressure", "status": "False"})
        conditions.append(condition)
    allocatable = {"cpu": "159"}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = gpus
    return {
        "metadata": {"name": name, "labels": {
            "doks.digitalocean.com/node-pool": pool, "doks.digitalocean.com/gpu-model": "h100"}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"conditions": conditions, "allocatable": allocatable, "capacity": dict(allocatable)},
    }


@pytest.mark.parametrize("value, expected", [
    ("8", 8), (8, 8), ("0", 0), (" 4 ", 4), ("8.0", 8), ("1.5", None), ("8k", None), ("", None),
    (None, None), (True, None),
])
def test_parse_count(value, expected):
    assert parse_count(value) == expected


def test_ready_node_with_enough_gpus_is_eligible():
    result = evaluate_node(node("a"), gpus_per_node=8)
    assert result == {
        "name": "a", "node_pool": "gpu", "gpu_model": "h100", "gpus": 8, "gpu_capacity": 8,
        "ready": True, "schedulable": True, "eligible": True, "reasons": [],
    }


def test_not_ready_node_says_why():
    result = evaluate_node(node("a", ready="False", reason="KubeletNotReady", message="cni not ready"))
    assert not result["eligible"] and not result["ready"]
    assert result["reasons"] == ["Ready is False (KubeletNotReady: cni not ready)"]


def test_node_without_ready_condition():
    result = evaluate_node(node("a", ready=None))
    assert result["reasons"] == ["no Ready condition yet"]


def test_cordoned_node_is_not_eligible_whatever_its_gpus():
    result = evaluate_node(node("a", unschedulable=True), gpus_per_node=8)
    assert result["ready"] and not result["schedulable"] and not result["eligible"]
    assert result["reasons"] == ["cordoned (spec.unschedulable is true)"]


def test_too_few_and_missing_gpus():
    few = evaluate_node(node("a", gpus="4"), gpus_per_node=8)
    assert few["gpus"] == 4 and few["reasons"] == ["allocatable nvidia.com/gpu is 4, want at least 8"]
    none = evaluate_node(node("b", gpus=None))
    assert none["gpus"] == 0 and none["reasons"] == ["no allocatable nvidia.com/gpu"]
    odd = evaluate_node(node("c", gpus="2k"))
    assert odd["reasons"] == ["allocatable nvidia.com/gpu is '2k', not a count"]


def test_other_gpu_resource_name():
    n = node("a", gpus=None)
    n["status"]["allocatable"]["amd.com/gpu"] = "8"
    assert evaluate_node(n, gpu_resource="amd.com/gpu", gpus_per_node=8)["eligible"]


def test_several_reasons_are_all_reported():
    result = evaluate_node(node("a", ready="Unknown", unschedulable=True, gpus="0"))
    assert len(result["reasons"]) == 3


def test_describe_names_every_node_and_its_verdict():
    evaluated = k8s_nodes.evaluate_nodes(
        [node("b", ready="False", reason="KubeletNotReady"), node("a")], gpus_per_node=8)
    text = describe(evaluated, 3, 8, "nvidia.com/gpu", "pool=gpu")
    assert text.startswith("1 of 3 wanted node(s) matching pool=gpu")
    assert "a: ok (8 GPUs)" in text and "b: Ready is False (KubeletNotReady)" in text
    assert text.index("a: ok") < text.index("b: Ready")
    assert "no node matches" in describe([], 1, 1, "nvidia.com/gpu", "x=y")


class FakeTime:
    """A monotonic clock that only moves when the waiter sleeps (or a list call takes time)."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(fake, looks, cost=0.0):
    """A list_nodes that returns (or raises) the scripted looks in turn, then repeats the last."""
    calls = []

    def list_nodes(request_timeout):
        calls.append(request_timeout)
        fake.now += cost
        item = looks[min(len(calls) - 1, len(looks) - 1)]
        if isinstance(item, Exception):
            raise item
        return item
    return list_nodes, calls


def test_waiter_returns_as_soon_as_enough_nodes_are_eligible():
    fake = FakeTime()
    looks = [[node("a", ready="False")], [node("a"), node("b", ready="False")], [node("a"), node("b")]]
    list_nodes, calls = scripted(fake, looks)
    outcome = GpuNodeWaiter(list_nodes, count=2, gpus_per_node=8, timeout=60, poll_interval=5,
                            clock=fake.clock, sleep=fake.sleep).run()
    assert outcome.satisfied and outcome.attempts == 3 and len(calls) == 3
    assert outcome.elapsed == 10.0 and fake.sleeps == [5, 5]
    assert [n["name"] for n in outcome.eligible] == ["a", "b"]


def test_waiter_times_out_with_a_last_look_at_the_deadline():
    fake = FakeTime()
    list_nodes, calls = scripted(fake, [[node("a", gpus="4")]])
    outcome = GpuNodeWaiter(list_nodes, count=1, gpus_per_node=8, timeout=12, poll_interval=5,
                            clock=fake.clock, sleep=fake.sleep).run()
    assert not outcome.satisfied and outcome.looked
    # Looks at 0, 5, 10 and 12 (the sleep is cut to the deadline), then gives up.
    assert fake.sleeps == [5, 5, 2] and outcome.attempts == 4 and outcome.elapsed == 12.0
    assert outcome.nodes[0]["reasons"] == ["allocatable nvidia.com/gpu is 4, want at least 8"]


def test_waiter_request_timeout_never_outlives_the_deadline():
    fake = FakeTime()
    list_nodes, calls = scripted(fake, [[]])
    GpuNodeWaiter(list_nodes, count=1, timeout=45, poll_interval=20, clock=fake.clock,
                  sleep=fake.sleep, max_request_timeout=30).run()
    # Looks at 0, 20, 40 and 45; the one at the deadline still gets a 1 s floor.
    assert calls == [30, 25, 5, 1]


def test_waiter_retries_transient_errors_and_counts_them():
    fake = FakeTime()
    looks = [NodeListError("HTTP 503 Service Unavailable", transient=True), [node("a")]]
    list_nodes, calls = scripted(fake, looks)
    outcome = GpuNodeWaiter(list_nodes, count=1, timeout=30, poll_interval=1,
                            clock=fake.clock, sleep=fake.sleep).run()
    assert outcome.satisfied and outcome.errors == 1 and outcome.attempts == len(calls) == 2


def test_waiter_stops_at_once_on_a_permanent_error():
    fake = FakeTime()
    list_nodes, calls = scripted(fake, [NodeListError("HTTP 403 Forbidden", transient=False)])
    with pytest.raises(NodeListError, match="403"):
        GpuNodeWaiter(list_nodes, count=1, timeout=30, poll_interval=1,
                      clock=fake.clock, sleep=fake.sleep).run()
    assert len(calls) == 1


def test_waiter_that_never_reached_the_api_says_so():
    fake = FakeTime()
    list_nodes, calls = scripted(fake, [NodeListError("connection refused", transient=True)], cost=1.0)
    outcome = GpuNodeWaiter(list_nodes, count=1, timeout=5, poll_interval=2,
                            clock=fake.clock, sleep=fake.sleep).run()
    assert not outcome.satisfied and not outcome.looked and outcome.attempts == len(calls)
    assert outcome.last_error == "connection refused" and outcome.errors == outcome.attempts


def test_one_look_without_waiting():
    fake = FakeTime()
    list_nodes, calls = scripted(fake, [[node("a", ready="False")]])
    outcome = GpuNodeWaiter(list_nodes, count=1, timeout=900, poll_interval=10,
                            clock=fake.clock, sleep=fake.sleep).run(wait=False)
    assert not outcome.satisfied and len(calls) == 1 and fake.sleeps == []


@pytest.mark.parametrize("status, transient", [(503, True), (429, True), (500, True), (401, False),
                                               (403, False), (404, False)])
def test_api_errors_are_classified(status, transient):
    error = classify_error(ApiException(status=status, reason="Reason"))
    assert error.transient is transient and str(error) == f"HTTP {status} Reason"


def test_connection_errors_are_transient():
    error = classify_error(MaxRetryError(None, "/api/v1/nodes", reason="Connection refused"))
    assert error.transient and "MaxRetryError" in str(error)
    assert classify_error(ConnectionRefusedError("refused")).transient
    assert not classify_error(ValueError("bad json")).transient
