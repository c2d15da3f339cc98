"""Issue 12 on the DigitalOcean path: the GPU wait, the token rule, a fresh kubeconfig, teardown, validate.yml
and the preflight, against the fake DigitalOcean API (behind Prism) whose clusters are the test control plane.

Each test names the defect it holds fixed; each failed before its fix (the report of the change says how).
"""
from __future__ import annotations

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from fake_do.harness import TOKEN, InfraRunner
from helpers import REPO

pytestmark = pytest.mark.integration

GPU_POOL = "gtc-demo-dev-gpu"


def ok(run) -> None:
    assert run.returncode == 0, f"{run.args}\n{run.output[-8000:]}"


def changed(run) -> list[str]:
    """The modules of the tasks that reported a change (Ansible's JSON callback)."""
    return [t.action for t in run.tasks() if t.changed]


def failed_play(run) -> str:
    """The name of the play that held the first failed task (Ansible's JSON callback)."""
    for play in json.loads(run.stdout).get("plays", []):
        for task in play.get("tasks", []):
            host = task.get("hosts", {}).get("localhost", {})
            if host.get("failed") and not host.get("ignore_errors"):
                return play["play"]["name"]
    return ""


def results_of(run, action: str) -> list[dict[str, Any]]:
    """The results of the tasks that ran ``action`` and were not skipped."""
    return [t.result for t in run.tasks() if t.action == action and not t.skipped]


def ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def gpu_nodes(backend, pool: str = GPU_POOL) -> dict[str, tuple[bool, int]]:
    """Node name -> (Ready, allocatable GPUs) for the pool's nodes in the cluster."""
    return {n.metadata.name: (ready(n), int((n.status.allocatable or {}).get("nvidia.com/gpu", 0)))
            for n in backend.node_objects() if n.metadata.labels.get("doks.digitalocean.com/node-pool") == pool}


def claims(kubeconfig: Path) -> dict[str, Any]:
    """The claims of the kubeconfig's bearer token (a TokenRequest token is a JWT)."""
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def works(kubeconfig: Path) -> bool:
    """Whether the kubeconfig's credential is accepted by the cluster's API server."""
    from kubernetes import client, config  # pylint: disable=import-outside-toplevel
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        client.CoreV1Api(api).list_node(_request_timeout=10)
        return True
    except ApiException as exc:
        if exc.status == 401:
            return False
        raise


@pytest.fixture
def backend(infra: InfraRunner):
    be = infra.api.fake.cluster_backend
    saved = (be.gpu_plugin_seconds, be.server_url)
    yield be
    be.gpu_plugin_seconds, be.server_url = saved


# --- defect 11: infra waits for the GPU pool ------------------------------------------------------------


def test_infra_waits_for_the_gpu_nodes_and_says_what_it_saw(infra: InfraRunner, backend) -> None:
    """The pool is 'running' in the API before its nodes are Ready with GPUs; infra must not end before."""
    # The NVIDIA device plugin never registers: the wait times out and names the node and what it lacks.
    backend.gpu_plugin_seconds = 3600
    stuck = infra.apply(infra_gpu_wait_timeout=4)
    assert stuck.returncode != 0, "infra ended while the GPU nodes had no GPUs: " + stuck.output[-3000:]
    assert "Timed out after" in stuck.output and "waiting for GPU nodes" in stuck.output, stuck.output[-3000:]
    (name,) = gpu_nodes(backend)
    assert name in stuck.output and "nvidia.com/gpu" in stuck.output

    # The GPUs appear 15 s after the droplet runs: a rerun ends only once they are allocatable.
    backend.gpu_plugin_seconds = 15
    infra.api.control("/_fake/reset", {"token": TOKEN, "node_seconds": 0.5})
    run = infra.apply()
    ok(run)
    (waited,) = results_of(run, "do_solutions.gtc_demo.wait_for_gpu_nodes")
    nodes = gpu_nodes(backend)
    assert list(nodes.values()) == [(True, 8)], nodes
    assert len(waited["eligible_nodes"]) == 1 and waited["total_gpus"] == 8, waited


# --- defect 13: one token rule; infra's check says what is missing -----------------------------------


def test_token_rule_digitalocean_token_is_read_when_access_token_is_empty(infra: InfraRunner) -> None:
    """DIGITALOCEAN_ACCESS_TOKEN, else DIGITALOCEAN_TOKEN; an exported but empty first one is skipped."""
    run = infra.apply("--check", token="", env={"DIGITALOCEAN_TOKEN": TOKEN})
    ok(run)
    reads = infra.api.log()
    assert reads and all(e["status"] == 200 for e in reads), reads


def test_missing_token_message_names_the_variables(infra: InfraRunner) -> None:
    """Defect 12's no_log: the check's own message must show, naming the variables, never a value."""
    run = infra.apply(token="", env={"DIGITALOCEAN_TOKEN": ""})
    assert run.returncode != 0
    assert "has been hidden" not in run.output, run.output[-2000:]
    assert "DIGITALOCEAN_ACCESS_TOKEN (read first) and DIGITALOCEAN_TOKEN are both unset" in run.output
    assert infra.api.log() == []


# --- defect 13: a fresh kubeconfig from infra's outputs ------------------------------------------------


def test_outputs_fetch_a_fresh_kubeconfig_read_only(infra: InfraRunner) -> None:
    ok(infra.apply(infra_kubeconfig_expiry_seconds=3600))
    kube = infra.kubeconfig
    assert works(kube)
    # The API's expiry_seconds reached the token (DigitalOcean's kubernetes_expiry_seconds).
    assert claims(kube)["exp"] - claims(kube)["iat"] == 3600

    # Another machine (no kubeconfig): outputs fetch one, with DigitalOcean's default lifetime, 7 days.
    kube.unlink()
    mark = len(infra.api.log())
    run = infra.playbook("outputs.yml")
    ok(run)
    assert run.recap["changed"] == 0, changed(run)
    assert infra.api.writes_since(mark) == []
    assert works(kube) and claims(kube)["exp"] - claims(kube)["iat"] == 7 * 24 * 3600
    assert infra.output()["kubeconfig"] == str(kube)

    # A stale credential (expired, or revoked) is replaced.
    config = yaml.safe_load(kube.read_text())
    config["users"][0]["user"]["token"] = "expired-" + "x" * 40
    kube.write_text(yaml.safe_dump(config))
    assert not works(kube)
    run = infra.playbook("outputs.yml")
    ok(run)
    assert run.recap["changed"] == 0
    assert works(kube)

    # Check mode leaves a kubeconfig that points at the cluster as it is.
    before = kube.read_bytes()
    ok(infra.playbook("outputs.yml", "--check"))
    assert kube.read_bytes() == before


# --- defect 13 and the teardown: a stale kubeconfig or a failing Stack 2 never keeps the GPU pool --------


def site_env(cluster) -> dict[str, str]:
    """helm on PATH (cluster_config's teardown and preflight look for it there), as for a user's run."""
    return {"PATH": f"{cluster.bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_teardown_without_kubeconfig_empties_the_cloud_and_reruns_clean(infra: InfraRunner, fake_do_cluster) -> None:
    # The CRDs a deployed demo's cluster serves (the charts bring them): Stack 2's teardown reads them.
    fake_do_cluster.apply_crds(None)
    ok(infra.apply())
    backend = infra.api.fake.cluster_backend
    assert gpu_nodes(backend)
    # Another machine: no kubeconfig at all. Teardown fetches one and removes Stack 2 and Stack 1.
    infra.kubeconfig.unlink()
    down = infra.site_playbook("playbooks/teardown.yml", env=site_env(fake_do_cluster))
    ok(down)
    assert infra.api.fake.is_empty(), infra.api.state()
    assert backend.node_objects() == []
    assert not infra.kubeconfig.exists()
    again = infra.site_playbook("playbooks/teardown.yml", env=site_env(fake_do_cluster))
    ok(again)
    assert again.recap["changed"] == 0, changed(again)
    assert "nothing of Stack 2 is left in it" in again.output


def test_teardown_removes_the_gpu_pool_when_stack2_fails(infra: InfraRunner, backend, fake_do_cluster) -> None:
    ok(infra.apply())
    # The cluster's API stops answering (kubeconfigs now point at a loopback port nobody listens on):
    # every Stack 2 teardown fails, Stack 1 must still go, and the play fails at the end, saying why.
    backend.server_url = "https://127.0.0.1:1"
    started = time.monotonic()
    down = infra.site_playbook("playbooks/teardown.yml", env=site_env(fake_do_cluster))
    assert down.returncode != 0
    state = infra.api.state()
    assert infra.api.fake.is_empty(), f"teardown left billing resources: {state}"
    assert "Teardown finished with" in down.output and "error(s)" in down.output, down.output[-4000:]
    for role in ("gateway", "loadgen", "dynamo", "model_sync", "cluster_config"):
        assert f"{role} (" in down.output, f"no error collected for {role}"
    assert time.monotonic() - started < 600


# --- defect 8: validate.yml on dev gets infra's outputs first ------------------------------------------


def _gateway_objects(cluster, namespace: str = "gtc-demo") -> None:
    """What gateway's check reads, as a working cluster shows it: Gateway, routes, certificate."""
    from kubernetes import client  # pylint: disable=import-outside-toplevel
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    cluster.apply_crds(["gateway-api", "cert-manager"])
    api = cluster.api_client()
    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    custom = client.CustomObjectsApi(api)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def cond(kind: str) -> dict[str, Any]:
        return {"type": kind, "status": "True", "reason": kind, "message": "", "lastTransitionTime": now,
                "observedGeneration": 1}

    def put(group: str, version: str, plural: str, body: dict[str, Any], status: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        try:
            custom.create_namespaced_custom_object(group, version, namespace, plural, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        custom.patch_namespaced_custom_object_status(group, version, namespace, plural, name, {"status": status})

    gw = "gtc-demo"
    put("gateway.networking.k8s.io", "v1", "gateways",
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": gw},
         "spec": {"gatewayClassName": "cilium", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}},
        {"conditions": [cond("Accepted"), cond("Programmed")]})
    for route in ("loadgen", "grafana", "redirect"):
        put("gateway.networking.k8s.io", "v1", "httproutes",
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": f"{gw}-{route}", "labels": {"app.kubernetes.io/component": "gateway"}},
             "spec": {"parentRefs": [{"name": gw}]}},
            {"parents": [{"parentRef": {"name": gw}, "controllerName": "io.cilium/gateway-controller",
                          "conditions": [cond("Accepted"), cond("ResolvedRefs")]}]})
    put("cert-manager.io", "v1", "certificates",
        {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": gw},
         "spec": {"secretName": f"{gw}-tls", "dnsNames": ["gtc-2026-dev.digitalocean.solutions"],
                  "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}},
        {"conditions": [cond("Ready")]})


def test_validate_playbook_on_dev_fetches_the_kubeconfig_itself(infra: InfraRunner, fake_do_cluster) -> None:
    """playbooks/validate.yml -i inventories/dev on a machine without a kubeconfig and no infra__output given."""
    sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins"))
    from openai_fake_server import FakeOpenAI, dynamo_routes  # pylint: disable=import-outside-toplevel

    ok(infra.apply())
    _gateway_objects(fake_do_cluster)
    infra.kubeconfig.unlink()
    frontend = dynamo_routes(FakeOpenAI()).start()
    try:
        # Endpoints only: the frontends this machine reaches (a port-forward on DOKS), no public HTTP check.
        frontends = yaml.safe_load((REPO / "roles" / "_common" / "defaults" / "main.yml").read_text())[
            "gtc_demo_frontends"]
        run = infra.site_playbook("playbooks/validate.yml", dynamo_verify_urls={i: frontend.url for i in frontends},
                                  gateway_verify_http=False, gateway_verify_timeout=20, gateway_verify_poll_interval=1)
    finally:
        frontend.stop()
    ok(run)
    assert infra.kubeconfig.exists() and works(infra.kubeconfig)
    seen = [r["resources"][0]["kind"] for r in results_of(run, "kubernetes.core.k8s_info") if r.get("resources")]
    assert {"Gateway", "HTTPRoute", "Certificate"} <= set(seen), seen
    assert len(frontend.requests("/v1/chat/completions")) >= len(frontends), "not every frontend was checked"
    assert infra.api.writes_since(0) != [] and run.recap["changed"] == 0


# --- defect 12: nothing is bought before a refusal -------------------------------------------------------


@pytest.mark.parametrize("missing, message", [
    ("HF_TOKEN", "HF_TOKEN"),
    ("SPACES_SECRET_ACCESS_KEY", "SPACES_SECRET_ACCESS_KEY"),
])
def test_site_refuses_a_missing_secret_before_any_call(infra: InfraRunner, fake_do_cluster, missing: str,
                                                       message: str) -> None:
    secrets = {"HF_TOKEN": "hf_fake", "SPACES_ACCESS_KEY_ID": "fake-id", "SPACES_SECRET_ACCESS_KEY": "fake-secret"}
    secrets[missing] = ""
    run = infra.site_playbook("site.yml", env={**site_env(fake_do_cluster), **secrets})
    assert run.returncode != 0
    assert "Preflight" in failed_play(run) and message in run.output, run.output[-3000:]
    assert infra.api.log() == [], "site.yml talked to DigitalOcean before refusing"


@pytest.mark.parametrize("overrides, message", [
    ({"gtc_demo_model": "nvidia/Llama-3.1-70B-Instruct-FP9"}, "is not a known model"),
    ({"model_sync_k8s_spaces_bucket": "GTC_Models"}, "must be a Spaces bucket name"),
    ({"cluster_config_dns_zone": "not a zone"}, "must be a DNS domain"),
    ({"gtc_demo_gpus_per_node": 16}, "must be at most the 8 GPUs a gpu-h100x8-640gb node has"),
])
def test_site_refuses_bad_inputs_before_any_call(infra: InfraRunner, fake_do_cluster, overrides: dict[str, Any],
                                                 message: str) -> None:
    secrets = {"HF_TOKEN": "hf_fake", "SPACES_ACCESS_KEY_ID": "fake-id", "SPACES_SECRET_ACCESS_KEY": "fake-secret"}
    run = infra.site_playbook("site.yml", env={**site_env(fake_do_cluster), **secrets}, **overrides)
    assert run.returncode != 0
    assert "Preflight" in failed_play(run) and message in run.output, run.output[-3000:]
    assert infra.api.log() == [], "site.yml talked to DigitalOcean before refusing"


# --- defect 12: the image tag pushed, looked up in the Container Registry ------------------------------


def test_registry_tag_info_finds_a_pushed_tag_only(infra: InfraRunner) -> None:
    repo = "registry.digitalocean.com/do-solutions-sfo3/gtc-demo-loadgen"
    infra.api.control("/_fake/images", {"registry": "do-solutions-sfo3", "repository": "gtc-demo-loadgen",
                                        "tag": "20260301-abc1234"})
    infra.api.control("/_fake/images", {"registry": "do-solutions-sfo3", "repository": "tools/bench", "tag": "v1"})
    found = infra.module("do_registry_tag_info", {"repository": repo, "tag": "20260301-abc1234"})
    ok(found)
    assert '"exists": true' in found.output or "exists: true" in found.output, found.output
    assert "sha256:" in found.output
    missing = infra.module("do_registry_tag_info", {"repository": repo, "tag": "20260302-def5678"})
    ok(missing)
    assert "exists: false" in missing.output and "20260301-abc1234" in missing.output
    # A repository name with '/' goes URL-encoded, as the API asks.
    nested = infra.module("do_registry_tag_info", {"repository": "do-solutions-sfo3/tools/bench", "tag": "v1"})
    ok(nested)
    assert "exists: true" in nested.output
    assert any(e["path"] == "/v2/registries/do-solutions-sfo3/repositories/tools%2Fbench/tags"
               for e in infra.api.log()), infra.api.log()
    absent = infra.module("do_registry_tag_info", {"repository": "registry.digitalocean.com/nobody/x", "tag": "v1"})
    ok(absent)
    assert "exists: false" in absent.output
    elsewhere = infra.module("do_registry_tag_info", {"repository": "ghcr.io/a/b", "tag": "v1"})
    assert elsewhere.returncode != 0 and "not in the DigitalOcean Container Registry" in elsewhere.output
    # Images are not site.yml's: they do not make the cloud non-empty.
    assert infra.api.fake.is_empty()


def test_domain_info_tells_a_served_zone_from_a_missing_one(infra: InfraRunner) -> None:
    """For a preflight check that the DNS zone is DigitalOcean's (external-dns, DNS-01) before anything is bought."""
    infra.api.control("/_fake/config", {"domains": ["digitalocean.solutions"]})
    served = infra.module("do_domain_info", {"name": "digitalocean.solutions"})
    ok(served)
    assert "exists: true" in served.output and "ns1.digitalocean.com" in served.output
    missing = infra.module("do_domain_info", {"name": "digitalocean.example"})
    ok(missing)
    assert "exists: false" in missing.output
    assert infra.api.fake.is_empty()
