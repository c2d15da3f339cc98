"""The Stack 2 roles (cluster_config, model_sync, dynamo, gateway) applied to the
test cluster: a real kube-apiserver with the public CRDs, the real scheduler and
controllers, kwok DOKS nodes. The tests run in file order and share the cluster:
the first applies everything, the later ones rerun and change it.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from stack2_helpers import SECRET_ENV, get, jobs, pod_from_template, snapshot, wait_for  # type: ignore[import-not-found]

pytestmark = pytest.mark.integration

MODEL = "nvidia/Llama-3.1-70B-Instruct-FP8"
OTHER_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
REPO_PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"


def graph(cluster):
    return get(cluster, "nvidia.com/v1beta1", "DynamoGraphDeployment", "gtc-demo", "gtc-demo")


def worker(graph_obj):
    return next(c for c in graph_obj["spec"]["components"] if c["name"] == "worker")


def helm_releases(cluster):
    """Helm's own record of the releases (its storage secrets), newest revision per release."""
    core = cluster.core()
    out = {}
    for secret in core.list_secret_for_all_namespaces(label_selector="owner=helm").items:
        labels = secret.metadata.labels
        name, rev = labels["name"], int(labels["version"])
        if name not in out or rev > out[name][0]:
            out[name] = (rev, labels["status"], secret.metadata.namespace)
    return out


@pytest.fixture(scope="module")
def first_run(stack2, k8s_cluster, fake_dynamo_operator):
    run = stack2()
    assert run.returncode == 0, run.explain()
    return run


def test_first_run_applies_every_object(first_run, k8s_cluster, charts):
    core = k8s_cluster.core()
    # cluster_config: namespaces, RuntimeClass, secrets from the environment, releases.
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"gtc-demo", "dynamo-system", "monitoring", "keda", "cert-manager", "external-dns"} <= names
    assert get(k8s_cluster, "node.k8s.io/v1", "RuntimeClass", "nvidia")["handler"] == "nvidia"
    hf = core.read_namespaced_secret("hf-token", "gtc-demo")
    assert base64.b64decode(hf.data["HF_TOKEN"]).decode() == SECRET_ENV["HF_TOKEN"]
    dns = core.read_namespaced_secret("digitalocean-dns", "cert-manager")
    assert base64.b64decode(dns.data["access-token"]).decode() == SECRET_ENV["DIGITALOCEAN_ACCESS_TOKEN"]
    releases = helm_releases(k8s_cluster)
    assert set(releases) == {"cert-manager", "external-dns", "kube-prometheus-stack", "dcgm-exporter", "keda",
                             "dynamo-platform"}
    assert all(entry[1] == "deployed" for entry in releases.values())
    # Each stand-in chart recorded the chart version and the values the role gave it.
    stand_in = core.read_namespaced_config_map("dynamo-platform-stand-in", "dynamo-system")
    assert stand_in.data["chart"] == "dynamo-platform-1.6.1"
    values = json.loads(stand_in.data["values.json"])
    assert values["global"]["grove"]["install"] is True
    assert values["kai-scheduler"]["defaultQueue"]["childName"] == "default-queue"
    dcgm = json.loads(core.read_namespaced_config_map("dcgm-exporter-stand-in", "monitoring").data["values.json"])
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in dcgm["tolerations"]
    # model_sync: the claim is bound to the NFS volume; both Jobs completed.
    pvc = core.read_namespaced_persistent_volume_claim("models", "gtc-demo")
    assert pvc.status.phase == "Bound" and pvc.spec.volume_name == "gtc-demo-models"
    done = jobs(k8s_cluster)
    assert sorted(j["metadata"]["labels"]["gtc-demo/model-sync-stage"] for j in done) == \
        ["hf-to-spaces", "spaces-to-volume"]
    assert all(j["status"].get("succeeded") == 1 for j in done)
    # dynamo: the graph, accepted by the v1beta1 schema, and waited for.
    dgd = graph(k8s_cluster)
    assert dgd["apiVersion"] == "nvidia.com/v1beta1"
    assert [c["name"] for c in dgd["spec"]["components"]] == ["frontend", "frontend-rr", "worker"]
    assert "Wait until the graph is ready" in " ".join(first_run.tasks)
    # gateway: Gateway, routes, grant, issuer, certificate.
    gw = get(k8s_cluster, "gateway.networking.k8s.io/v1", "Gateway", "gtc-demo", "gtc-demo")
    assert gw["spec"]["gatewayClassName"] == "cilium"
    routes = client.CustomObjectsApi(k8s_cluster.api_client()).list_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "gtc-demo", "httproutes")["items"]
    assert sorted(r["metadata"]["name"] for r in routes) == \
        ["gtc-demo-grafana", "gtc-demo-https-redirect", "gtc-demo-loadgen"]
    assert get(k8s_cluster, "cert-manager.io/v1", "ClusterIssuer", "letsencrypt")["spec"]["acme"]["solvers"]
    assert get(k8s_cluster, "cert-manager.io/v1", "Certificate", "gtc-demo", "gtc-demo")["spec"]["dnsNames"] == \
        ["gtc-demo-test.digitalocean.solutions"]
    print(f"first run: {first_run.seconds:.0f}s, {first_run.recap}")


def test_second_run_changes_nothing(first_run, stack2, k8s_cluster):
    before = snapshot(k8s_cluster)
    run = stack2()
    assert run.returncode == 0, run.explain()
    assert run.changed == 0, run.explain()
    after = snapshot(k8s_cluster)
    moved = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not moved, f"written although changed=0: {moved}\n{run.explain()}"
    print(f"second run: {run.seconds:.0f}s, {run.recap}")


def test_check_mode_reports_changes_without_writing(first_run, stack2, k8s_cluster):
    before = snapshot(k8s_cluster)
    run = stack2("--check", "--diff", dynamo_replicas=1)
    assert run.returncode == 0, run.explain()
    assert run.changed >= 1, run.explain()
    assert "Apply the DynamoGraphDeployment" in run.stdout
    assert worker(graph(k8s_cluster))["replicas"] == 2
    assert snapshot(k8s_cluster) == before


def test_tag_dynamo_reruns_only_dynamo(first_run, stack2, k8s_cluster, fake_dynamo_operator):
    jobs_before = {j["metadata"]["name"]: j["metadata"]["resourceVersion"] for j in jobs(k8s_cluster)}
    releases_before = helm_releases(k8s_cluster)
    run = stack2("--tags", "dynamo", dynamo_replicas=1)
    try:
        assert run.returncode == 0, run.explain()
        roles = {t.split(" : ")[0] for t in run.tasks if " : " in t}
        # Other roles only run their always-tagged input checks (and dynamo its outputs).
        for task in run.tasks:
            if " : " in task and not task.startswith("do_solutions.gtc_demo.dynamo"):
                assert any(word in task for word in ("Validating arguments", "Check", "Find the secret", "Fail on missing",
                                                     "Publish")), task
        assert "do_solutions.gtc_demo.dynamo" in roles
        assert worker(graph(k8s_cluster))["replicas"] == 1
        assert run.changed >= 1, run.explain()
        assert {j["metadata"]["name"]: j["metadata"]["resourceVersion"] for j in jobs(k8s_cluster)} == jobs_before
        assert helm_releases(k8s_cluster) == releases_before
    finally:
        restore = stack2("--tags", "dynamo")
        assert restore.returncode == 0, restore.explain()
    assert worker(graph(k8s_cluster))["replicas"] == 2


def test_a_model_change_resyncs_and_redeploys_in_one_run(first_run, stack2, k8s_cluster, fake_dynamo_operator):
    before = graph(k8s_cluster)
    jobs_before = {j["metadata"]["name"] for j in jobs(k8s_cluster)}
    run = stack2(gtc_demo_model=OTHER_MODEL)
    try:
        assert run.returncode == 0, run.explain()
        after = graph(k8s_cluster)
        args = next(c for c in worker(after)["podTemplate"]["spec"]["containers"] if c["name"] == "main")["args"]
        assert args[args.index("--served-model-name") + 1] == OTHER_MODEL
        assert args[args.index("--model") + 1] == f"/models/{OTHER_MODEL}"
        rollout = worker(after)["podTemplate"]["metadata"]["annotations"]["gtc-demo/rollout"]
        assert rollout != worker(before)["podTemplate"]["metadata"]["annotations"]["gtc-demo/rollout"]
        # dynamo__output carries the new rollout id for the load generator in the same run.
        assert f"rollout_id: {rollout}" in run.stdout
        new_jobs = {j["metadata"]["name"] for j in jobs(k8s_cluster)} - jobs_before
        assert len(new_jobs) == 2
        # The graph was waited for at its new generation.
        assert after["metadata"]["generation"] in fake_dynamo_operator
    finally:
        restore = stack2(gtc_demo_model=MODEL)
        assert restore.returncode == 0, restore.explain()


@pytest.mark.parametrize("case", ["missing_secret", "model_typo", "too_many_gpus"])
def test_bad_input_fails_early_and_changes_nothing(first_run, stack2, k8s_cluster, case):
    before = snapshot(k8s_cluster)
    if case == "missing_secret":
        run = stack2(env_drop=("SPACES_SECRET_ACCESS_KEY",))
        expected = "SPACES_SECRET_ACCESS_KEY"
    elif case == "model_typo":
        run = stack2(gtc_demo_model="nvidia/Llama-3.1-70B-Instruct-FP9")
        expected = "nvidia/Llama-3.1-70B-Instruct-FP9"
    else:
        run = stack2(dynamo_replicas=3)
        expected = "dynamo_replicas (3)"
    assert run.returncode != 0, run.explain()
    assert expected in run.stdout, run.explain()
    assert run.changed == 0, run.explain()
    assert snapshot(k8s_cluster) == before


def test_worker_pods_from_the_template_fit_one_8_gpu_node(first_run, k8s_cluster, pool_name):
    """The real scheduler places 2 workers x 4 GPUs on one 8-GPU node; a third does not fit."""
    node = f"{pool_name}-gpu-0"
    k8s_cluster.add_test_node(node, pool_name, owner=pool_name, gpus=8)
    k8s_cluster.wait_nodes_ready([node])
    dgd = graph(k8s_cluster)
    core = k8s_cluster.core()
    names = [f"worker-{index}-{uuid.uuid4().hex[:6]}" for index in range(3)]
    try:
        for name in names:
            pod = pod_from_template(dgd, "worker", name, {"doks.digitalocean.com/node-pool": pool_name})
            core.create_namespaced_pod("gtc-demo", pod)

        def placed():
            pods = [core.read_namespaced_pod(n, "gtc-demo") for n in names]
            bound = [p.spec.node_name for p in pods if p.spec.node_name]
            unschedulable = [p for p in pods if any(
                c.type == "PodScheduled" and c.reason == "Unschedulable" for c in (p.status.conditions or []))]
            return (bound, unschedulable) if len(bound) == 2 and unschedulable else None

        bound, unschedulable = wait_for(placed, timeout=90)
        assert bound == [node, node]
        message = unschedulable[0].status.conditions[0].message
        assert "nvidia.com/gpu" in message, message
    finally:
        for name in names:
            core.delete_namespaced_pod(name, "gtc-demo", grace_period_seconds=0)


def _set_status(cluster, group, version, plural, name, status):
    client.CustomObjectsApi(cluster.api_client()).patch_namespaced_custom_object_status(
        group, version, "gtc-demo", plural, name, {"status": status})


def test_validate_playbook_reads_routes_and_certificate(first_run, stack2, k8s_cluster):
    """playbooks/validate.yml against the real objects; Cilium's and cert-manager's status
    updates are played by the test (neither controller runs on the test cluster)."""
    pending = stack2(playbook_path=REPO_PLAYBOOKS / "validate.yml", gateway_check_timeout=4,
                     gateway_check_poll_interval=2, gateway_check_http=False)
    assert pending.returncode != 0, pending.explain()
    assert "Wait for the Gateway to be accepted and programmed" in pending.stdout

    now = "2026-01-01T00:00:00Z"

    def cond(kind, gen=1):
        return {"type": kind, "status": "True", "reason": kind, "message": "test", "lastTransitionTime": now,
                "observedGeneration": gen}

    gw = get(k8s_cluster, "gateway.networking.k8s.io/v1", "Gateway", "gtc-demo", "gtc-demo")
    _set_status(k8s_cluster, "gateway.networking.k8s.io", "v1", "gateways", "gtc-demo", {
        "conditions": [cond("Accepted", gw["metadata"]["generation"]), cond("Programmed", gw["metadata"]["generation"])]})
    for route in ("gtc-demo-https-redirect", "gtc-demo-loadgen", "gtc-demo-grafana"):
        _set_status(k8s_cluster, "gateway.networking.k8s.io", "v1", "httproutes", route, {"parents": [{
            "parentRef": {"name": "gtc-demo"}, "controllerName": "io.cilium/gateway-controller",
            "conditions": [cond("Accepted"), cond("ResolvedRefs")]}]})
    _set_status(k8s_cluster, "cert-manager.io", "v1", "certificates", "gtc-demo", {"conditions": [cond("Ready")]})

    ready = stack2(playbook_path=REPO_PLAYBOOKS / "validate.yml", gateway_check_timeout=20,
                   gateway_check_poll_interval=2, gateway_check_http=False)
    assert ready.returncode == 0, ready.explain()
    assert "Wait for the certificate to be issued" in ready.stdout
