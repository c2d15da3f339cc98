"""The Stack 2 roles' objects, rendered from the real inventories, against the
public CRD schemas (jsonschema) and the core API (kubernetes client models)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client

from k8s_roles_crds import crd_schema, storage_version  # type: ignore[import-not-found]

DGD = ("dynamo", "nvidia.com_dynamographdeployments.yaml")


def strict(schema: Any) -> Any:
    """The schema with unknown fields forbidden wherever Kubernetes would prune them.

    The API server silently drops a field its structural schema does not know
    (a typo, a v1alpha1 field in a v1beta1 object); here that is an error.
    """
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def validate(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    """OpenAPI v3 structural schema ~ JSON Schema draft 4, plus no unknown fields."""
    schema = strict(schema)
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:10])


def core_model(obj: dict[str, Any], model: str) -> Any:
    """Build the kubernetes client model: fails on a missing required field or a wrong type."""
    api = client.ApiClient()
    return api._ApiClient__deserialize(obj, model)  # pylint: disable=protected-access


def components(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in graph["spec"]["components"]}


def main_container(component: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in component["podTemplate"]["spec"]["containers"] if c["name"] == "main")


# --------------------------------------------------------------------------
# dynamo


def test_graph_uses_the_storage_version(rendered):
    graph = rendered["dev"].doc("dynamo", "graph")
    assert storage_version(*DGD) == "v1beta1"
    assert graph["apiVersion"] == "nvidia.com/v1beta1"


@pytest.mark.parametrize("scenario", ["dev", "kind", "dev_other_model"])
def test_graph_passes_the_crd_schema(rendered, scenario):
    graph = rendered[scenario].doc("dynamo", "graph")
    validate(graph, crd_schema(*DGD, "v1beta1"))
    # Two rules the schema states as CEL: unique names, and a "main" container with an image.
    names = [c["name"].lower() for c in graph["spec"]["components"]]
    assert len(names) == len(set(names))
    for comp in graph["spec"]["components"]:
        assert main_container(comp)["image"]
        # The pod template itself is a core PodSpec.
        core_model(comp["podTemplate"]["spec"], "V1PodSpec")


def test_graph_has_every_frontend_on_the_same_workers(rendered):
    graph = rendered["dev"].doc("dynamo", "graph")
    comps = components(graph)
    frontends = {n: c for n, c in comps.items() if c["type"] == "frontend"}
    modes = {n: main_container(c)["args"][main_container(c)["args"].index("--router-mode") + 1]
             for n, c in frontends.items()}
    # roles/_common's gtc_demo_frontends: each component by its name, with its router mode.
    assert modes == {"frontend": "kv", "frontend-rr": "round-robin"}
    assert [c["type"] for c in comps.values()].count("worker") == 1
    assert main_container(comps["frontend"])["command"] == ["python3", "-m", "dynamo.frontend"]


def test_worker_is_tensorrt_llm_with_replicas_times_tp_gpus(rendered):
    graph = rendered["dev"].doc("dynamo", "graph")
    worker = components(graph)["worker"]
    main = main_container(worker)
    spec = worker["podTemplate"]["spec"]
    assert graph["spec"]["backendFramework"] == "trtllm"
    assert worker["replicas"] == 2
    assert main["resources"]["requests"]["nvidia.com/gpu"] == "4"
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert main["command"] == ["python3", "-m", "dynamo.trtllm"]
    args = main["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert args[args.index("--model") + 1] == "/models/nvidia/Llama-3.1-70B-Instruct-FP8"
    assert args[args.index("--served-model-name") + 1] == "nvidia/Llama-3.1-70B-Instruct-FP8"
    assert "--publish-kv-events" in args and "--publish-metrics" in args
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["runtimeClassName"] == "nvidia"
    assert worker["sharedMemorySize"] == "80Gi"
    # The KAI queue, on the graph (propagated) and on the worker pods.
    assert graph["spec"]["labels"]["kai.scheduler/queue"] == "default-queue"
    assert worker["podTemplate"]["metadata"]["labels"]["kai.scheduler/queue"] == "default-queue"


def test_worker_reads_the_model_from_model_syncs_claim(rendered):
    r = rendered["dev"]
    worker = components(r.doc("dynamo", "graph"))["worker"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in worker["podTemplate"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v]
    pv, pvc = r.docs("model_sync", "model_volume")
    out = r.json("model_sync", "output")
    assert claims == [pvc["metadata"]["name"]] == [out["pvc"]]
    mount = next(m for m in main_container(worker)["volumeMounts"] if m["name"] == "models")
    args = main_container(worker)["args"]
    assert args[args.index("--model") + 1] == f"{mount['mountPath']}/{out['model_path']}"
    assert out["models"] == [{"name": "nvidia/Llama-3.1-70B-Instruct-FP8", "path": out["model_path"]}]
    assert pv["spec"]["nfs"] == {"server": "10.120.0.9", "path": "/models-share"}


def test_engine_config_matches_the_topology_and_publishes_kv_events(rendered):
    r = rendered["dev"]
    engine = yaml.safe_load(r.text("dynamo", "trtllm_engine.yaml"))
    assert engine["tensor_parallel_size"] == 4
    assert engine["kv_cache_config"]["enable_block_reuse"] is True
    assert engine["kv_cache_config"]["event_buffer_max_size"] > 0
    configmap = r.doc("dynamo", "engine_configmap")
    core_model(configmap, "V1ConfigMap")
    assert yaml.safe_load(configmap["data"]["engine.yaml"]) == engine
    worker = components(r.doc("dynamo", "graph"))["worker"]
    volume = next(v for v in worker["podTemplate"]["spec"]["volumes"] if v["name"] == "engine")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]


def test_kind_runs_the_mocker_without_the_nvidia_runtime(rendered):
    graph = rendered["kind"].doc("dynamo", "graph")
    worker = components(graph)["worker"]
    main = main_container(worker)
    assert main["command"] == ["python3", "-m", "dynamo.mocker"]
    assert "runtimeClassName" not in worker["podTemplate"]["spec"]
    assert "backendFramework" not in graph["spec"]
    assert main["resources"]["requests"]["nvidia.com/gpu"] == "4"


def test_a_model_change_redeploys_workers_and_tells_loadgen(rendered):
    before, after = rendered["dev"], rendered["dev_other_model"]
    out_before, out_after = before.json("dynamo", "output"), after.json("dynamo", "output")
    assert out_before["rollout_id"] != out_after["rollout_id"]
    assert out_after["model"] == "meta-llama/Llama-3.3-70B-Instruct"
    worker_before = components(before.doc("dynamo", "graph"))["worker"]
    worker_after = components(after.doc("dynamo", "graph"))["worker"]
    # The pod template changes (a rollout of the workers), and carries the id loadgen gets.
    assert worker_before["podTemplate"] != worker_after["podTemplate"]
    assert worker_after["podTemplate"]["metadata"]["annotations"]["gtc-demo/rollout"] == out_after["rollout_id"]
    # The frontends do not change: they discover the new model from the workers.
    assert components(before.doc("dynamo", "graph"))["frontend"] == components(after.doc("dynamo", "graph"))["frontend"]
    # model_sync fetches the new model under new Job names (no immutable-field clash).
    names_before = {j["metadata"]["name"] for j in before.json("model_sync", "jobs")}
    names_after = {j["metadata"]["name"] for j in after.json("model_sync", "jobs")}
    assert names_before.isdisjoint(names_after)


def test_dynamo_output_names_every_frontend_in_order(rendered):
    out = rendered["dev"].json("dynamo", "output")
    assert list(out["frontends"]) == ["kv", "round_robin"]
    kv, rr = out["frontends"]["kv"], out["frontends"]["round_robin"]
    assert kv["url"] == "http://gtc-demo-frontend.gtc-demo.svc.cluster.local:8000"
    assert rr["url"] == "http://gtc-demo-frontend-rr.gtc-demo.svc.cluster.local:8000"
    assert kv["metrics"] == kv["url"] + "/metrics"
    assert (kv["router_mode"], rr["router_mode"]) == ("kv", "round-robin")
    assert (out["replicas"], out["tensor_parallel_size"]) == (2, 4)
    # The same keys as on the local platform.
    assert out["worker_metrics"] == []


# --------------------------------------------------------------------------
# model_sync


@pytest.mark.parametrize("scenario,stages", [("dev", ["hf-to-spaces", "spaces-to-volume"]), ("kind", ["hf-to-volume"])])
def test_copy_jobs_are_valid_and_named_from_model_and_revision(rendered, scenario, stages):
    jobs = rendered[scenario].json("model_sync", "jobs")
    assert [j["metadata"]["labels"]["gtc-demo/model-sync-stage"] for j in jobs] == stages
    for job in jobs:
        core_model(job, "V1Job")
        name = job["metadata"]["name"]
        assert len(name) <= 63 and name.startswith(f"model-{job['metadata']['labels']['gtc-demo/model-sync-stage']}-")
        assert job["metadata"]["annotations"]["gtc-demo/model"] == "nvidia/Llama-3.1-70B-Instruct-FP8"
        container = job["spec"]["template"]["spec"]["containers"][0]
        secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
        # Secrets come from cluster_config's secrets, by reference only.
        made = {s["name"] for s in rendered[scenario].json("cluster_config", "secrets")}
        assert secrets <= made
        assert ".complete" in container["args"][0]  # the script skips what is already there
    vols = rendered[scenario].docs("model_sync", "model_volume")
    core_model(vols[0], "V1PersistentVolume")
    core_model(vols[1], "V1PersistentVolumeClaim")
    if scenario == "kind":
        assert "hostPath" in vols[0]["spec"] and "--include '*.json'" in jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"][0]


# --------------------------------------------------------------------------
# gateway


@pytest.mark.parametrize("name,crd,kind", [
    ("gateway", ("gateway-api", "gateway.networking.k8s.io_gateways.yaml"), "Gateway"),
    ("httproutes", ("gateway-api", "gateway.networking.k8s.io_httproutes.yaml"), "HTTPRoute"),
    ("referencegrant", ("gateway-api", "gateway.networking.k8s.io_referencegrants.yaml"), "ReferenceGrant"),
    ("clusterissuer", ("cert-manager", "cert-manager.io_clusterissuers.yaml"), "ClusterIssuer"),
    ("certificate", ("cert-manager", "cert-manager.io_certificates.yaml"), "Certificate"),
])
@pytest.mark.parametrize("scenario", ["dev", "kind"])
def test_gateway_objects_pass_their_crd_schemas(rendered, scenario, name, crd, kind):
    for doc in rendered[scenario].docs("gateway", name):
        assert doc["kind"] == kind
        version = doc["apiVersion"].split("/")[1]
        assert version == storage_version(*crd), f"{kind} should use the storage version"
        validate(doc, crd_schema(*crd, version))


def test_routes_redirect_http_and_serve_loadgen_and_grafana(rendered):
    r = rendered["dev"]
    gateway = r.doc("gateway", "gateway")
    assert gateway["spec"]["gatewayClassName"] == "cilium"
    listeners = {l["name"]: l for l in gateway["spec"]["listeners"]}
    assert listeners["http"]["port"] == 80 and listeners["https"]["port"] == 443
    assert listeners["https"]["hostname"] == "gtc-2026-dev.digitalocean.solutions"
    routes = {d["metadata"]["name"]: d for d in r.docs("gateway", "httproutes")}
    redirect = routes["gtc-demo-https-redirect"]
    assert redirect["spec"]["parentRefs"] == [{"name": "gtc-demo", "sectionName": "http"}]
    assert redirect["spec"]["rules"][0]["filters"][0]["requestRedirect"] == {"scheme": "https", "statusCode": 301}
    grafana = routes["gtc-demo-grafana"]["spec"]["rules"][0]
    assert grafana["matches"][0]["path"]["value"] == r.json("cluster_config", "grafana_path") == "/grafana"
    backend = grafana["backendRefs"][0]
    grant = r.doc("gateway", "referencegrant")
    assert grant["metadata"]["namespace"] == backend["namespace"] == "monitoring"
    assert grant["spec"]["to"][0]["name"] == backend["name"]
    assert routes["gtc-demo-loadgen"]["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/"
    # Grafana serves itself from the same sub path (no rewrite in the route).
    values = yaml.safe_load(r.text("cluster_config", "values-kube-prometheus-stack.yaml"))
    assert values["grafana"]["grafana.ini"]["server"]["root_url"].endswith("/grafana/")


def test_cluster_issuer_is_lets_encrypt_dns01_on_digitalocean(rendered):
    r = rendered["dev"]
    issuer = r.doc("gateway", "clusterissuer")
    solver = issuer["spec"]["acme"]["solvers"][0]["dns01"]["digitalocean"]["tokenSecretRef"]
    made = {(s["namespace"], s["name"]): s["data"] for s in r.json("cluster_config", "secrets")}
    assert solver["key"] in made[("cert-manager", solver["name"])]
    assert made[("cert-manager", solver["name"])][solver["key"]] == "DIGITALOCEAN_ACCESS_TOKEN"
    cert = r.doc("gateway", "certificate")
    assert cert["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    gateway = r.doc("gateway", "gateway")
    https = next(l for l in gateway["spec"]["listeners"] if l["name"] == "https")
    assert https["tls"]["certificateRefs"][0]["name"] == cert["spec"]["secretName"]
    assert "selfSigned" in rendered["kind"].doc("gateway", "clusterissuer")["spec"]


# --------------------------------------------------------------------------
# cluster_config


def test_namespace_and_runtime_class_are_valid(rendered):
    core_model(rendered["dev"].doc("cluster_config", "namespace"), "V1Namespace")
    rc = rendered["dev"].doc("cluster_config", "runtimeclass")
    core_model(rc, "V1RuntimeClass")
    assert rc["metadata"]["name"] == rc["handler"] == "nvidia"


def test_releases_are_pinned_and_their_values_render(rendered):
    r = rendered["dev"]
    releases = r.json("cluster_config", "releases")
    assert {x["name"] for x in releases} == {
        "cert-manager", "external-dns", "kube-prometheus-stack", "dcgm-exporter", "keda", "dynamo-platform"}
    for rel in releases:
        assert str(rel["version"])[0].isdigit() or str(rel["version"]).startswith("v")
        assert not any(ch in str(rel["version"]) for ch in "^~*><= "), f"{rel['name']} is not pinned"
        assert isinstance(yaml.safe_load(r.text("cluster_config", f"values-{rel['name']}.yaml")), dict)


def test_values_carry_what_the_demo_needs(rendered):
    r = rendered["dev"]

    def values(name: str) -> dict[str, Any]:
        return yaml.safe_load(r.text("cluster_config", f"values-{name}.yaml"))

    dynamo = values("dynamo-platform")
    assert dynamo["global"]["grove"]["install"] is True
    assert dynamo["global"]["kai-scheduler"]["install"] is True
    assert dynamo["kai-scheduler"]["defaultQueue"]["childName"] == "default-queue"
    dcgm = values("dcgm-exporter")
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in dcgm["tolerations"]
    dns = values("external-dns")
    assert dns["provider"]["name"] == "digitalocean"
    ref = dns["env"][0]["valueFrom"]["secretKeyRef"]
    made = {(s["namespace"], s["name"]): s["data"] for s in r.json("cluster_config", "secrets")}
    assert made[("external-dns", ref["name"])][ref["key"]] == "DIGITALOCEAN_ACCESS_TOKEN"
    assert dns["domainFilters"] == ["digitalocean.solutions"]
    assert values("cert-manager")["crds"]["enabled"] is True


def test_kind_installs_no_cloud_or_gpu_only_releases(rendered):
    releases = rendered["kind"].json("cluster_config", "releases")
    on_kind = {x["name"] for x in releases if "kind" in x["platforms"]}
    assert "external-dns" not in on_kind and "dcgm-exporter" not in on_kind
    required_on_kind = {v for s in rendered["kind"].json("cluster_config", "secrets")
                        if "kind" in s["platforms"] for v in s["data"].values()}
    assert required_on_kind == {"HF_TOKEN"}


def test_the_schema_check_catches_mistakes(rendered):
    """Guards the checks above: the CRD schema does reject a wrong graph."""
    graph = rendered["dev"].doc("dynamo", "graph")
    schema = crd_schema(*DGD, "v1beta1")
    for breakage in (
        lambda g: g["spec"]["components"][2].__setitem__("replicas", "two"),
        lambda g: g["spec"]["components"][0].__setitem__("type", "router"),
        lambda g: g["spec"]["components"][2].__setitem__("sharedMemorySize", "80 gigs"),
        lambda g: g["spec"].__setitem__("services", {}),  # the v1alpha1 shape
    ):
        broken = yaml.safe_load(yaml.safe_dump(graph))
        breakage(broken)
        with pytest.raises(AssertionError):
            validate(broken, schema)
