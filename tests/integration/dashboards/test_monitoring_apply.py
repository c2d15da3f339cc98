"""cluster_config's monitoring tasks applied for real to the test cluster (tests/cluster).

The API server has the prometheus-operator CRDs from ../shared/schemas, so it
validates the ServiceMonitor itself (and the PodMonitors of the test below). The PrometheusRule
CRD is not among those schemas: the test installs a stand-in that accepts any
spec (the rules themselves are checked by promtool and a real Prometheus in
test_dashboard_live.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import cluster_support

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(__file__).with_name("apply_monitoring.yml")


STAND_IN_RULE_CRD = cluster_support().PROMETHEUS_RULE_STAND_IN


def _playbook(cluster: Any, *extra: str) -> tuple[int, str, list[str]]:
    """(rc, output, the items the apply task changed, as '<Kind> <namespace>/<name>')."""
    env = {**cluster.env(), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    args = {"gtc_demo_kubeconfig": str(cluster.kubeconfig), "gtc_demo_kube_context": cluster.context,
            "ansible_python_interpreter": sys.executable}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
         str(PLAYBOOK), "-e", json.dumps(args), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    out = result.stdout + result.stderr
    try:
        plays = json.loads(result.stdout)["plays"]
    except (ValueError, KeyError):
        return result.returncode, out, []
    changed = [f"{r['item']['kind']} {r['item']['metadata']['namespace']}/{r['item']['metadata']['name']}"
               for play in plays for task in play["tasks"]
               for r in task["hosts"].get("localhost", {}).get("results", [])
               if r.get("changed") and isinstance(r.get("item"), dict) and "kind" in r["item"]]
    return result.returncode, out, changed


@pytest.fixture(scope="module")
def cluster(k8s_cluster):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = k8s_cluster.api_client()
    ext = client.ApiextensionsV1Api(api)
    ext.patch_custom_resource_definition(
        STAND_IN_RULE_CRD["metadata"]["name"], STAND_IN_RULE_CRD, field_manager="gtc-demo-dashboard-tests",
        force=True, _content_type="application/apply-patch+yaml")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(STAND_IN_RULE_CRD["metadata"]["name"])
        if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
            break
        time.sleep(0.5)
    core = k8s_cluster.core()
    for ns in ("monitoring", "gtc-demo"):
        try:
            core.create_namespace({"metadata": {"name": ns}})
        except ApiException as exc:
            if exc.status != 409:
                raise
    yield k8s_cluster
    _playbook(k8s_cluster, "-e", "monitoring_state=absent")


def _custom(cluster: Any, plural: str, name: str) -> dict[str, Any]:
    from kubernetes import client

    return client.CustomObjectsApi(cluster.api_client()).get_namespaced_custom_object(
        "monitoring.coreos.com", "v1", "monitoring", plural, name)


def test_apply_is_accepted_then_idempotent_then_removed(cluster) -> None:
    from kubernetes.client.rest import ApiException

    # Start from none: cluster_config's own run (the Stack 2 tests, earlier in
    # the same session) applies these same objects.
    rc, out, _changed = _playbook(cluster, "-e", "monitoring_state=absent")
    assert rc == 0, out[-4000:]

    rc, out, changed = _playbook(cluster)
    assert rc == 0, out[-4000:]
    assert sorted(changed) == [
        "ConfigMap monitoring/gtc-demo-dashboards", "PrometheusRule monitoring/gtc-demo-rules",
        "ServiceMonitor monitoring/gtc-demo-dcgm-exporter",
    ], out[-3000:]

    assert _custom(cluster, "servicemonitors", "gtc-demo-dcgm-exporter")["spec"]["endpoints"][0]["port"] == "metrics"
    cm = cluster.core().read_namespaced_config_map("gtc-demo-dashboards", "monitoring")
    assert cm.metadata.labels["grafana_dashboard"] == "1"
    shipped = json.loads((REPO / "files" / "dashboards" / "gtc-demo.json").read_text())
    assert json.loads(cm.data["gtc-demo.json"]) == shipped
    rules = _custom(cluster, "prometheusrules", "gtc-demo-rules")
    assert rules["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    rc, out, changed = _playbook(cluster)
    assert rc == 0, out[-4000:]
    assert changed == [], "a second apply changed something:\n" + out[-3000:]

    rc, out, changed = _playbook(cluster, "-e", "monitoring_state=absent")
    assert rc == 0, out[-4000:]
    assert len(changed) == 3, changed
    with pytest.raises(ApiException) as gone:
        _custom(cluster, "servicemonitors", "gtc-demo-dcgm-exporter")
    assert gone.value.status == 404


def test_api_server_validates_pod_monitors(cluster) -> None:
    """The CRD's schema is live: a PodMonitor with a malformed interval is refused."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    bad = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
           "metadata": {"name": "gtc-demo-bad", "namespace": "monitoring"},
           "spec": {"selector": {}, "podMetricsEndpoints": [{"port": "http", "interval": "five seconds"}]}}
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(cluster.api_client()).create_namespaced_custom_object(
            "monitoring.coreos.com", "v1", "monitoring", "podmonitors", bad)
    assert refused.value.status == 422
    assert "interval" in refused.value.body
