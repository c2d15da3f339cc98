"""The role steps that talk to the cluster directly, on a test cluster of this module's own.

- Gateway API CRDs (issue 12, defect 2): on a cluster without them the role
  fetches each file from cluster_config_gateway_api_crds_base_url (here a
  127.0.0.1 folder, as the rehearsal serves it) and applies it server-side
  under its own field manager; a rerun fetches nothing and changes nothing;
  teardown removes what it installed. On a cluster that already serves them
  (DOKS installs and manages its own) it fetches nothing, changes nothing and
  teardown leaves them.
- GRADIENT_API_KEY (defect 9): loadgen is its one owner. Set, the key goes
  into loadgen's Secret and the pod is marked to restart; unset, the Secret is
  removed and the pod falls back to offline follow-ups.

The cluster is a real kube-apiserver with kwok nodes on loopback addresses
(tests/cluster/fixture.py), started for this module and brought down after.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, cluster_support

import artifacts  # type: ignore[import-not-found]
from rehearsal.chart_repo import ArtifactServer  # type: ignore[import-not-found]

HERE = Path(__file__).resolve().parent
NAME = "gtc-charts-steps"
GATEWAY_GROUP = "gateway.networking.k8s.io"
KEY = "gradient_key_value_5093"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    support = cluster_support()
    directory = tmp_path_factory.mktemp("steps-cluster")
    started = support.up(crds=None, nodes=False, name=NAME, directory=directory,
                         network=support.Network.loopback(NAME))
    try:
        yield started
    finally:
        support.down(name=NAME, directory=directory)


@pytest.fixture(scope="module")
def crd_server(cluster):
    with ArtifactServer(cluster.helm, [], {"gateway-api": artifacts.resolve_dir("schemas/crds/gateway-api")}) as server:
        yield server


def steps(cluster, server: ArtifactServer, *names: str, env: dict[str, str] | None = None,
          check: bool = False) -> tuple[int, str, int]:
    """Run cluster_steps.yml; (rc, output, number of changed task results, loop items counted one by one)."""
    full_env = cluster.env()
    full_env.pop("GRADIENT_API_KEY", None)
    full_env.update(env or {})
    full_env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                    ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    extra = {"steps": list(names), "cluster_config_gateway_api_crds_base_url": server.folder_url("gateway-api")}
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(HERE / "cluster_steps.yml"),
           "-i", "inventories/kind", "-e", json.dumps(extra), *(["--check"] if check else [])]
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert KEY not in out, "the key reached the output"
    return proc.returncode, out, changed_results(proc.stdout)


def changed_results(stdout: str) -> int:
    """Changed results in Ansible's JSON callback output, each loop item counted on its own."""
    count = 0
    for play in json.loads(stdout).get("plays", []):
        for task in play["tasks"]:
            host = task["hosts"].get("localhost", {})
            items = host.get("results")
            count += sum(1 for r in items if r.get("changed")) if items else int(bool(host.get("changed")))
    return count


def gateway_crds(cluster) -> dict[str, dict]:
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    ext = client.ApiextensionsV1Api(cluster.api_client())
    return {c.metadata.name: c.to_dict() for c in ext.list_custom_resource_definition().items
            if c.spec.group == GATEWAY_GROUP}


def fetched(server: ArtifactServer) -> list[str]:
    return [r for r in server.requests if "/gateway-api/" in r]


def test_missing_gateway_api_crds_are_installed_server_side_once_and_removed_at_teardown(cluster, crd_server):
    assert gateway_crds(cluster) == {}
    rc, out, _changed = steps(cluster, crd_server, "gateway_api_crds", check=True)
    assert rc == 0, out[-3000:]
    assert gateway_crds(cluster) == {}, "check mode wrote a CRD"
    read_in_check_mode = len(fetched(crd_server))  # check mode reads the files to dry-run them
    assert read_in_check_mode == 4
    rc, out, changed = steps(cluster, crd_server, "gateway_api_crds")
    assert rc == 0, out[-3000:]
    crds = gateway_crds(cluster)
    assert sorted(crds) == ["gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
                            "httproutes.gateway.networking.k8s.io", "referencegrants.gateway.networking.k8s.io"]
    for name, crd in crds.items():
        managers = {(f["manager"], f["operation"]) for f in crd["metadata"]["managed_fields"]}
        assert ("gtc-demo-cluster-config", "Apply") in managers, (name, managers)
        assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == "v1.6.1"
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gtc-demo"
        assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    assert changed == 4 and len(fetched(crd_server)) == read_in_check_mode + 4
    before = len(crd_server.requests)
    rc, out, changed = steps(cluster, crd_server, "gateway_api_crds")
    assert rc == 0 and changed == 0, out[-3000:]
    assert len(crd_server.requests) == before, "a rerun fetched the CRDs again"
    rc, out, changed = steps(cluster, crd_server, "teardown_gateway_api_crds")
    assert rc == 0 and changed == 4, out[-3000:]
    assert gateway_crds(cluster) == {}
    rc, out, changed = steps(cluster, crd_server, "teardown_gateway_api_crds")
    assert rc == 0 and changed == 0, out[-3000:]


def writers(cluster) -> dict[str, list]:
    """Who wrote each Gateway API CRD's spec: its managed fields, less the API server's own
    status updates (it sets the CRD's conditions when it likes, a role's run or not)."""
    return {n: [f for f in c["metadata"]["managed_fields"] if f.get("subresource") != "status"]
            for n, c in gateway_crds(cluster).items()}


def test_gateway_api_crds_the_cluster_has_are_left_alone(cluster, crd_server):
    """As on DOKS, which installs and manages them: nothing fetched, nothing changed, nothing removed."""
    applied = cluster.apply_crds(["gateway-api"])  # the test cluster's own field manager, no role labels
    try:
        owners = writers(cluster)
        before = len(crd_server.requests)
        rc, out, changed = steps(cluster, crd_server, "gateway_api_crds")
        assert rc == 0 and changed == 0, out[-3000:]
        assert len(crd_server.requests) == before
        rc, out, changed = steps(cluster, crd_server, "teardown_gateway_api_crds")
        assert rc == 0 and changed == 0, out[-3000:]
        assert writers(cluster) == owners
    finally:
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        ext = client.ApiextensionsV1Api(cluster.api_client())
        for name in applied:
            ext.delete_custom_resource_definition(name)


def test_loadgen_owns_the_optional_followup_key(cluster, crd_server):
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    core = client.CoreV1Api(cluster.api_client())
    apps = client.AppsV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": "gtc-demo"}})
    # The loadgen role applies its pods' PodMonitor: kube-prometheus-stack's CRDs are there before it on a cluster.
    cluster.apply_crds(["prometheus-operator"])

    def secrets() -> dict[str, dict]:
        """The namespace's Secrets but the presenter token's (the role keeps that one always; tests of its
        own in tests/integration/loadgen), by name, so an assertion never prints the token."""
        found = {s.metadata.name: s.data for s in core.list_namespaced_secret("gtc-demo").items}
        assert "loadgen-presenter" in found and set(found.pop("loadgen-presenter")) == {"token"}, sorted(found)
        return found

    def marked() -> str:
        return apps.read_namespaced_deployment("loadgen", "gtc-demo").spec.template.metadata.annotations[
            "gtc-demo/followup-key"]

    rc, out, _stderr = steps(cluster, crd_server, "loadgen")
    assert rc == 0, out[-3000:]
    assert secrets() == {} and marked() == "unset"
    rc, out, _stderr = steps(cluster, crd_server, "loadgen", env={"GRADIENT_API_KEY": KEY})
    assert rc == 0, out[-3000:]
    assert base64.b64decode(secrets()["loadgen-followup"]["GRADIENT_API_KEY"]).decode() == KEY
    assert marked() == "set"
    rc, out, changed = steps(cluster, crd_server, "loadgen", env={"GRADIENT_API_KEY": KEY})
    assert rc == 0 and changed == 0, out[-3000:]
    rc, out, _stderr = steps(cluster, crd_server, "loadgen")
    assert rc == 0, out[-3000:]
    assert "loadgen-followup" not in secrets() and marked() == "unset"
