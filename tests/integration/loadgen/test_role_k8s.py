"""The loadgen role on a Kubernetes platform (kind's inventory), against a real kube-apiserver
of this module's own (tests/cluster, loopback only, no nodes: the pods stay Pending, so the
Deployment is not waited on) with prometheus-operator's CRDs, so the API server checks the
PodMonitor against its schema. The frontends are given as dynamo publishes them; a reorder
with a third reaches the container's LOADGEN_FRONTENDS. Results come from the JSON
callback and from the objects in the cluster."""
from __future__ import annotations

import json

import pytest

from helpers import cluster_support, run_playbook

pytestmark = pytest.mark.integration

NAME = "gtc-loadgen-k8s"
NAMESPACE = "gtc-demo"


def frontends(order: list[str]) -> dict:
    return {fid: {"url": f"http://gtc-demo-{fid.replace('_', '-')}.{NAMESPACE}.svc.cluster.local:8000",
                  "title": fid.replace("_", " ").title(), "router_mode": "kv" if fid == "kv" else "round-robin",
                  "metrics": ""} for fid in order}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    support = cluster_support()
    directory = tmp_path_factory.mktemp("loadgen-cluster")
    started = support.up(crds=["prometheus-operator"], nodes=False, name=NAME, directory=directory,
                         network=support.Network.loopback(NAME))
    try:
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        client.CoreV1Api(started.api_client()).create_namespace({"metadata": {"name": NAMESPACE}})
        yield started
    finally:
        support.down(name=NAME, directory=directory)


def run(cluster, entry: str, order: list[str], *extra: str):
    env = cluster.env()
    env.pop("GRADIENT_API_KEY", None)
    variables = {"entry": entry, "gtc_demo_kubeconfig": env["K8S_AUTH_KUBECONFIG"],
                 "gtc_demo_kube_context": env["K8S_AUTH_CONTEXT"], "loadgen_k8s_wait": False,
                 "loadgen_image_tag": "test",
                 "dynamo__output": {"platform": "kind", "model": "m", "rollout_id": "r1", "frontends": frontends(order)}}
    return run_playbook("tests/integration/loadgen/role.yml", "-e", json.dumps(variables), *extra,
                        inventory="inventories/kind", env=env, json_output=True)


def objects(cluster) -> dict:
    from kubernetes import client, dynamic  # pylint: disable=import-outside-toplevel

    api = cluster.api_client()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    monitors = dynamic.DynamicClient(api).resources.get(api_version="monitoring.coreos.com/v1", kind="PodMonitor")
    return {
        "deployments": {d.metadata.name: d for d in apps.list_namespaced_deployment(NAMESPACE).items},
        "services": {s.metadata.name: s for s in core.list_namespaced_service(NAMESPACE).items},
        "podmonitors": {m.metadata.name: m.to_dict() for m in monitors.get(namespace=NAMESPACE).items},
        "secrets": {s.metadata.name for s in core.list_namespaced_secret(NAMESPACE).items},
    }


def env_of(deployment) -> dict[str, str]:
    return {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}


def test_main_applies_the_deployment_service_and_podmonitor(cluster):
    first = run(cluster, "main", ["kv", "round_robin"])
    assert first.returncode == 0, first.output[-4000:]
    out = objects(cluster)
    dep, svc, mon = out["deployments"]["loadgen"], out["services"]["loadgen"], out["podmonitors"]["loadgen"]
    assert json.loads(env_of(dep)["LOADGEN_FRONTENDS"]) == [
        {"id": fid, "url": f["url"], "title": f["title"]} for fid, f in frontends(["kv", "round_robin"]).items()]
    assert dep.spec.template.spec.containers[0].image.endswith("/gtc-demo-loadgen:test")
    assert not dep.spec.template.spec.image_pull_secrets  # kind: the image is loaded, no registry secret
    assert svc.spec.selector.items() <= dep.spec.template.metadata.labels.items()
    assert mon["spec"]["selector"]["matchLabels"].items() <= dep.spec.template.metadata.labels.items()
    assert mon["spec"]["podMetricsEndpoints"][0]["port"] == "http"
    published = [t.result["ansible_facts"]["loadgen__output"] for t in first.tasks()
                 if "loadgen__output" in t.result.get("ansible_facts", {})][-1]
    assert published["service"] == {"name": "loadgen", "namespace": NAMESPACE, "port": 3000}
    assert published["url"] == f"http://loadgen.{NAMESPACE}.svc.cluster.local:3000"
    assert "loadgen-followup" not in out["secrets"]  # no key in the environment: no Secret

    again = run(cluster, "main", ["kv", "round_robin"])
    assert again.returncode == 0 and again.recap["changed"] == 0, [t.name for t in again.tasks() if t.changed]


def test_a_reorder_with_a_third_frontend_reaches_the_container(cluster):
    before = objects(cluster)["deployments"]["loadgen"].metadata.generation
    run_ = run(cluster, "main", ["round_robin", "kv", "random"])
    assert run_.returncode == 0, run_.output[-4000:]
    dep = objects(cluster)["deployments"]["loadgen"]
    assert [f["id"] for f in json.loads(env_of(dep)["LOADGEN_FRONTENDS"])] == ["round_robin", "kv", "random"]
    assert dep.metadata.generation == before + 1  # one new pod template: a rollout


def test_teardown_removes_the_objects_and_a_second_changes_nothing(cluster):
    gone = run(cluster, "teardown", [])
    assert gone.returncode == 0, gone.output[-4000:]
    out = objects(cluster)
    assert "loadgen" not in out["deployments"] and "loadgen" not in out["services"]
    assert "loadgen" not in out["podmonitors"]
    again = run(cluster, "teardown", [])
    assert again.returncode == 0 and again.recap["changed"] == 0, again.output[-3000:]
