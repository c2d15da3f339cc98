"""The loadgen role on a Kubernetes platform (kind's inventory), against a real kube-apiserver
of this module's own (tests/cluster, loopback only, no nodes: the pods stay Pending, so the
Deployment is not waited on) with prometheus-operator's CRDs, so the API server checks the
PodMonitor against its schema. The frontends are given as dynamo publishes them; a reorder
with a third reaches the container's LOADGEN_FRONTENDS. Results come from the JSON
callback and from the objects in the cluster."""
from __future__ import annotations

import base64
import json
import re

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


def run(cluster, entry: str, order: list[str], *extra: str, token: str = ""):
    env = cluster.env()
    env.pop("GRADIENT_API_KEY", None)
    env["GTC_PRESENTER_TOKEN"] = token  # the presenter token only where a test gives one
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


def presenter_token(cluster) -> str | None:
    from kubernetes import client  # pylint: disable=import-outside-toplevel
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    try:
        secret = client.CoreV1Api(cluster.api_client()).read_namespaced_secret("loadgen-presenter", NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return base64.b64decode(secret.data["token"]).decode()


def published(run_) -> dict:
    return [t.result["ansible_facts"]["loadgen__output"] for t in run_.tasks()
            if "loadgen__output" in t.result.get("ansible_facts", {})][-1]


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
    pub = published(first)
    assert pub["service"] == {"name": "loadgen", "namespace": NAMESPACE, "port": 3000}
    assert pub["url"] == f"http://loadgen.{NAMESPACE}.svc.cluster.local:3000"
    assert "loadgen-followup" not in out["secrets"]  # no key in the environment: no Secret
    # No presenter token given: one generated into the Secret, read by the pod, never printed.
    generated = presenter_token(cluster)
    assert generated and re.fullmatch(r"[A-Za-z0-9]{43}", generated), generated
    ref = {e.name: e for e in dep.spec.template.spec.containers[0].env}["GTC_LOADGEN_PRESENTER_TOKEN"]
    assert ref.value is None and (ref.value_from.secret_key_ref.name, ref.value_from.secret_key_ref.key) == (
        "loadgen-presenter", "token")
    assert pub["presenter_token_secret"] == {"namespace": NAMESPACE, "name": "loadgen-presenter", "key": "token"}
    command = pub["presenter_token_command"]
    assert command.endswith(f"-n {NAMESPACE} get secret loadgen-presenter -o jsonpath='{{.data.token}}' | base64 -d")
    assert f"Presenter controls need the token, which this prints: {command}" in first.output
    assert generated not in first.output and base64.b64encode(generated.encode()).decode() not in first.output

    again = run(cluster, "main", ["kv", "round_robin"])
    assert again.returncode == 0 and again.recap["changed"] == 0, [t.name for t in again.tasks() if t.changed]
    assert presenter_token(cluster) == generated  # a rerun never rotates it


def test_a_given_presenter_token_replaces_the_secret_rolls_the_pod_and_is_kept(cluster):
    given = "given-presenter-token-5d1e"
    before = objects(cluster)["deployments"]["loadgen"]
    generated = presenter_token(cluster)
    check = run(cluster, "main", ["kv", "round_robin"], "--check", token=given)
    assert check.returncode == 0, check.output[-4000:]
    assert "Store the given presenter token, or generate one when none is given and none is stored" in [
        t.name for t in check.tasks() if t.changed]
    assert presenter_token(cluster) == generated  # check mode wrote nothing
    set_ = run(cluster, "main", ["kv", "round_robin"], "-v", token=given)
    assert set_.returncode == 0, set_.output[-4000:]
    assert presenter_token(cluster) == given and given not in set_.output
    dep = objects(cluster)["deployments"]["loadgen"]
    version = "gtc-demo/presenter-token-version"
    assert dep.spec.template.metadata.annotations[version] != before.spec.template.metadata.annotations[version]
    assert dep.metadata.generation == before.metadata.generation + 1  # the pod reads the new token at start
    same = run(cluster, "main", ["kv", "round_robin"], token=given)
    assert same.returncode == 0 and same.recap["changed"] == 0, [t.name for t in same.tasks() if t.changed]
    # Given no more, the stored token stays: see the next runs (none gives one).


def test_the_pods_service_account_keeps_the_settings_in_that_configmap_only(cluster, tmp_path):
    """What the app does in the pod (persist.ConfigMapStore), with a token of the role's service
    account against the real API server: its RBAC allows this ConfigMap and nothing else."""
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    from gtc_loadgen.persist import ConfigMapStore, Keeper  # pylint: disable=import-outside-toplevel
    from gtc_loadgen.settings import Settings  # pylint: disable=import-outside-toplevel

    api = cluster.api_client()
    core = client.CoreV1Api(api)
    token = core.create_namespaced_service_account_token(
        "loadgen", NAMESPACE, {"spec": {"expirationSeconds": 600}}).status.token
    token_file = tmp_path / "token"
    token_file.write_text(token)

    def store(name: str = "loadgen-settings") -> ConfigMapStore:
        return ConfigMapStore(NAMESPACE, name, server=api.configuration.host, token_file=token_file,
                              ca_file=api.configuration.ssl_ca_cert)
    assert store().load() is None  # made empty by the role
    ids = ("kv", "round_robin")
    changed = Settings(concurrency=7, rate=2.5, routing="round_robin", ab=True, preset="custom")
    writer = store()
    Keeper(writer, {}).save(changed)
    assert writer.flush() and writer.last_error is None, writer.last_error
    # A restarted app reads them back.
    assert Keeper(store(), {}).load(Settings().for_routings(ids), ids) == changed
    # The token reaches nothing else: another ConfigMap, the Secrets.
    other = store("other")
    with pytest.raises(OSError, match="HTTP 403"):
        other.load()
    other.save("{}")
    assert other.flush() and "HTTP 403" in other.last_error
    with pytest.raises(client.exceptions.ApiException) as denied:
        client.CoreV1Api(_as_token(cluster, token)).list_namespaced_secret(NAMESPACE)
    assert denied.value.status == 403
    # A rerun of the role keeps what the app wrote.
    again = run(cluster, "main", ["kv", "round_robin"])
    assert again.returncode == 0 and again.recap["changed"] == 0, [t.name for t in again.tasks() if t.changed]
    assert json.loads(core.read_namespaced_config_map("loadgen-settings", NAMESPACE).data["settings.json"])[
        "settings"]["concurrency"] == 7


def _as_token(cluster, token: str):
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    admin = cluster.api_client().configuration
    conf = client.Configuration()
    conf.host, conf.ssl_ca_cert = admin.host, admin.ssl_ca_cert
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def test_a_reorder_with_a_third_frontend_reaches_the_container(cluster):
    before = objects(cluster)["deployments"]["loadgen"].metadata.generation
    run_ = run(cluster, "main", ["round_robin", "kv", "random"])
    assert run_.returncode == 0, run_.output[-4000:]
    dep = objects(cluster)["deployments"]["loadgen"]
    assert [f["id"] for f in json.loads(env_of(dep)["LOADGEN_FRONTENDS"])] == ["round_robin", "kv", "random"]
    assert dep.metadata.generation == before + 1  # one new pod template: a rollout
    # This run gave no presenter token: the one given before stays (no silent rotation).
    assert presenter_token(cluster) == "given-presenter-token-5d1e"


def test_teardown_removes_the_objects_and_a_second_changes_nothing(cluster):
    gone = run(cluster, "teardown", [])
    assert gone.returncode == 0, gone.output[-4000:]
    out = objects(cluster)
    assert "loadgen" not in out["deployments"] and "loadgen" not in out["services"]
    assert "loadgen" not in out["podmonitors"]
    assert "loadgen-presenter" not in out["secrets"]
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    api = cluster.api_client()
    assert "loadgen-settings" not in {c.metadata.name for c in client.CoreV1Api(api).list_namespaced_config_map(
        NAMESPACE).items}
    assert "loadgen" not in {a.metadata.name for a in client.CoreV1Api(api).list_namespaced_service_account(
        NAMESPACE).items}
    assert not client.RbacAuthorizationV1Api(api).list_namespaced_role(NAMESPACE).items
    again = run(cluster, "teardown", [])
    assert again.returncode == 0 and again.recap["changed"] == 0, again.output[-3000:]
