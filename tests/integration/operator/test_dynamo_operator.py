"""The Dynamo operator stand-in (tests/stand_ins/dynamo_operator.py) on the test
cluster: the real API server, scheduler and controller-manager, kwok's DOKS nodes,
the dynamo-platform stand-in release with cluster_config's values, and the
dynamo role's own rendered graph.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from operator_support import NAMESPACE, render, wait_for  # type: ignore[import-not-found]
from helpers import PlaybookRun, run_playbook

GPU = "nvidia.com/gpu"
GPU_NODES = ["pool-gpu-h100-x7q1a", "pool-gpu-h100-x7q1b", "pool-gpu-h100-x7q1c"]


def _kept_if(value, predicate):
    """``value`` when ``predicate(value)`` holds, else None (a wait_for check)."""
    return value if predicate(value) else None


def _ready(graph: dict | None) -> bool:
    if not graph:
        return False
    status = graph.get("status") or {}
    gen = graph["metadata"]["generation"]
    cond = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
    return bool(status.get("state") == "successful" and status.get("observedGeneration") == gen and cond
                and cond[0]["status"] == "True" and cond[0].get("observedGeneration") == gen)


@pytest.fixture
def one_gpu_node(k8s_cluster):
    """Only one 8-GPU node schedulable: the two TP4 workers must share it."""
    for name in GPU_NODES[1:]:
        k8s_cluster.cordon(name)
    yield GPU_NODES[0]
    for name in GPU_NODES[1:]:
        k8s_cluster.cordon(name, unschedulable=False)


def _apply_rendered(api, rendered: Path, name: str | None = None, annotations: dict | None = None) -> dict:
    api.apply(yaml.safe_load((rendered / "engine_configmap.yaml").read_text()))
    graph = yaml.safe_load((rendered / "graph.yaml").read_text())
    if name:
        graph["metadata"]["name"] = name
    graph["metadata"].setdefault("annotations", {}).update(annotations or {})
    return api.apply(graph)


def _delete_graph(api, name: str) -> None:
    api.delete(f"/apis/nvidia.com/v1beta1/namespaces/{NAMESPACE}/dynamographdeployments/{name}")
    wait_for(f"graph {name} and its pods to go", lambda: api.graph(name) is None and not api.pods(name), timeout=90)


def test_the_roles_graph_runs_on_one_gpu_node_and_rolls_on_a_new_generation(api, rendered, model_volume, operator,
                                                                            one_gpu_node):
    graph = _apply_rendered(api, rendered)
    name = graph["metadata"]["name"]
    try:
        graph = wait_for("the graph to be Ready", lambda: _kept_if(api.graph(name), _ready), timeout=120)
        assert graph["metadata"]["annotations"]["nvidia.com/workload-provider"] == "grove"
        assert "nvidia.com/finalizer" in graph["metadata"]["finalizers"]
        pods = api.pods(name)
        workers = [p for p in pods if p["metadata"]["labels"]["nvidia.com/dynamo-component-type"] == "worker"]
        frontends = [p for p in pods if p["metadata"]["labels"]["nvidia.com/dynamo-component-type"] == "frontend"]
        assert len(workers) == 2 and len(frontends) == 2, [p["metadata"]["name"] for p in pods]
        # The real scheduler put both TP4 workers on the one schedulable 8-GPU node.
        assert {p["spec"]["nodeName"] for p in workers} == {one_gpu_node}
        gpus = sum(int(c["resources"]["limits"][GPU]) for p in workers for c in p["spec"]["containers"])
        assert gpus == 8
        node = api.get(f"/api/v1/nodes/{one_gpu_node}")
        assert node["status"]["allocatable"][GPU] == "8"
        # Frontends ask for no GPU and do not tolerate the GPU taint: CPU nodes.
        assert all(not p["spec"]["nodeName"].startswith("pool-gpu") for p in frontends)
        # The operator's labels, the queue from the annotation, the model volume in every pod.
        queue = graph["metadata"]["annotations"]["nvidia.com/kai-scheduler-queue"]
        assert api.get(f"/apis/scheduling.run.ai/v2/queues/{queue}") is not None
        for pod in pods:
            labels = pod["metadata"]["labels"]
            assert labels["kai.scheduler/queue"] == queue
            assert labels["nvidia.com/metrics-enabled"] == "true"
            assert labels["nvidia.com/dynamo-namespace"] == f"{NAMESPACE}-{name}"
            assert {"models"} <= {v["name"] for v in pod["spec"]["volumes"]}
            assert pod["metadata"]["ownerReferences"][0]["uid"] == graph["metadata"]["uid"]
        # Services as the operator names them: what the gateway's HTTPRoutes and the load generator use.
        for frontend in ("frontend", "frontend-rr"):
            svc = api.get(f"/api/v1/namespaces/{NAMESPACE}/services/{name}-{frontend}")
            assert svc is not None, f"{name}-{frontend}"
            assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("http", 8000, "http")]
        assert graph["status"]["components"]["worker"]["readyReplicas"] == 2
        # A steady graph is not written again (its resourceVersion stays).
        steady = graph["metadata"]["resourceVersion"]
        time.sleep(3)
        assert api.graph(name)["metadata"]["resourceVersion"] == steady

        # A new generation (a new engine config, say) replaces the workers.
        before = {p["metadata"]["name"] for p in workers}
        generation = graph["metadata"]["generation"]
        api.req("PATCH", f"/apis/nvidia.com/v1beta1/namespaces/{NAMESPACE}/dynamographdeployments/{name}",
                {"spec": {"components": [dict(c, podTemplate=dict(c["podTemplate"], metadata=dict(
                    c["podTemplate"].get("metadata") or {}, annotations={"gtc-demo/rollout": "second"})))
                    if c["name"] == "worker" else c for c in graph["spec"]["components"]]}},
                content_type="application/merge-patch+json")
        graph = wait_for("the new generation to be Ready",
                         lambda: _kept_if(api.graph(name), lambda g: _ready(g) and g["metadata"]["generation"] > generation),
                         timeout=120)
        after = {p["metadata"]["name"] for p in api.pods(name)
                 if p["metadata"]["labels"]["nvidia.com/dynamo-component-type"] == "worker"}
        assert len(after) == 2 and not after & before, (before, after)
        assert operator.logged("older template")
    finally:
        _delete_graph(api, name)
    # The garbage collector removed what the graph owned.
    assert api.get(f"/api/v1/namespaces/{NAMESPACE}/services/{name}-frontend") is None or wait_for(
        "the frontend Service to go", lambda: api.get(f"/api/v1/namespaces/{NAMESPACE}/services/{name}-frontend") is None)


def test_a_graph_whose_queue_does_not_exist_fails_and_gets_nothing(api, rendered, model_volume, operator):
    graph = _apply_rendered(api, rendered, name="gtc-noqueue", annotations={"nvidia.com/kai-scheduler-queue": "missing-queue"})
    try:
        def failed():
            g = api.graph("gtc-noqueue")
            return g if (g.get("status") or {}).get("state") == "failed" else None
        graph = wait_for("the graph to fail", failed, timeout=60)
        (ready,) = [c for c in graph["status"]["conditions"] if c["type"] == "Ready"]
        assert ready["status"] == "False" and ready["observedGeneration"] == graph["metadata"]["generation"]
        assert "queue 'missing-queue' not found" in ready["message"]
        assert "observedGeneration" not in graph["status"]
        assert api.pods("gtc-noqueue") == []
        assert api.get(f"/api/v1/namespaces/{NAMESPACE}/services/gtc-noqueue-frontend") is None
    finally:
        _delete_graph(api, "gtc-noqueue")


def test_a_graph_without_the_annotation_uses_the_dynamo_queue(api, rendered, model_volume, operator):
    graph = yaml.safe_load((rendered / "graph.yaml").read_text())
    graph["metadata"]["name"] = "gtc-default-queue"
    graph["metadata"]["annotations"].pop("nvidia.com/kai-scheduler-queue")
    api.apply(graph)
    try:
        g = wait_for("the graph to fail", lambda: _kept_if(
            api.graph("gtc-default-queue"), lambda g: (g.get("status") or {}).get("state") == "failed"), timeout=60)
        assert "queue 'dynamo' not found" in g["status"]["conditions"][0]["message"]
    finally:
        _delete_graph(api, "gtc-default-queue")


def test_grove_off_makes_deployments(api, tmp_path, model_volume, operator, one_gpu_node):
    rendered = render(tmp_path / "no-grove", dynamo_k8s_grove=False, dynamo_k8s_name="gtc-deploy")
    graph = _apply_rendered(api, rendered)
    assert graph["metadata"]["annotations"]["nvidia.com/enable-grove"] == "false"
    try:
        graph = wait_for("the graph to be Ready", lambda: _kept_if(api.graph("gtc-deploy"), _ready), timeout=120)
        assert graph["metadata"]["annotations"]["nvidia.com/workload-provider"] == "component"
        assert graph["status"]["components"]["worker"]["componentKind"] == "Deployment"
        deployment = api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/gtc-deploy-worker")
        assert deployment["spec"]["replicas"] == 2
        assert deployment["metadata"]["ownerReferences"][0]["kind"] == "DynamoGraphDeployment"
        workers = [p for p in api.pods("gtc-deploy") if p["metadata"]["labels"]["nvidia.com/dynamo-component-type"] == "worker"]
        # kube-controller-manager made these (a ReplicaSet owns them).
        assert {p["metadata"]["ownerReferences"][0]["kind"] for p in workers} == {"ReplicaSet"}
        assert {p["spec"]["nodeName"] for p in workers} == {one_gpu_node}
    finally:
        _delete_graph(api, "gtc-deploy")
    wait_for("the Deployments to go",
             lambda: api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/gtc-deploy-worker") is None)


def _run_role(k8s_cluster, tmp_path: Path, **extra) -> PlaybookRun:
    vars_file = tmp_path / f"vars-{len(list(tmp_path.glob('vars-*')))}.json"
    vars_file.write_text(json.dumps({"gtc_demo_kubeconfig": str(k8s_cluster.kubeconfig),
                                     "gtc_demo_kube_context": k8s_cluster.context, **extra}))
    return run_playbook(str(Path(__file__).with_name("dynamo_role.yml")), "-e", f"@{vars_file}",
                        inventory="inventories/dev", env=k8s_cluster.env(), json_output=True, timeout=400)


def _monitor(api, name: str) -> dict | None:
    return api.get(f"/apis/monitoring.coreos.com/v1/namespaces/{NAMESPACE}/podmonitors/{name}")


def test_the_roles_wait_passes_on_ready_and_stops_on_what_the_operator_reports(k8s_cluster, api, model_volume,
                                                                               podmonitor_crd, operator, one_gpu_node,
                                                                               tmp_path):
    ok = _run_role(k8s_cluster, tmp_path)
    try:
        assert ok.returncode == 0, ok.output[-5000:]
        assert _ready(api.graph("gtc-demo"))
        (wait,) = [t for t in ok.tasks() if t.action == "do_solutions.gtc_demo.wait_for_dynamo_graph"]
        assert wait.result["ready"] is True and wait.result["state"] == "ready"
        # The role's own PodMonitors, accepted by the real CRD's schema, one routing rule per frontend.
        frontend = _monitor(api, "gtc-demo-frontend")
        rules = frontend["spec"]["podMetricsEndpoints"][0]["relabelings"]
        assert {r["replacement"]: r["regex"] for r in rules if r["targetLabel"] == "routing"} == {
            "kv": "frontend", "round_robin": "frontend-rr"}
        assert _monitor(api, "gtc-demo-worker") is not None
        # A second run changes nothing (the operator's own annotation and finalizer do not count).
        again = _run_role(k8s_cluster, tmp_path)
        assert again.returncode == 0, again.output[-4000:]
        assert not [t.name for t in again.tasks() if t.changed]
    finally:
        _delete_graph(api, "gtc-demo")
    bad = _run_role(k8s_cluster, tmp_path, gtc_demo_kai_queue="no-such-queue", dynamo_k8s_name="gtc-badqueue",
                    dynamo_k8s_wait_timeout=100)
    try:
        assert bad.returncode != 0
        (failed,) = bad.failed_tasks()
        assert failed.action == "do_solutions.gtc_demo.wait_for_dynamo_graph"
        assert failed.result["state"] == "failed"
        assert "the operator reports it failed" in failed.result["msg"]
        assert "queue 'no-such-queue' not found" in failed.result["msg"]
        # It stopped at what the operator said, not at the timeout.
        assert failed.result["elapsed"] < 100
    finally:
        _delete_graph(api, "gtc-badqueue")
        for name in ("gtc-demo-frontend", "gtc-demo-worker", "gtc-badqueue-frontend", "gtc-badqueue-worker"):
            api.delete(f"/apis/monitoring.coreos.com/v1/namespaces/{NAMESPACE}/podmonitors/{name}")
