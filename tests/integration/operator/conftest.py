"""Fixtures for the Dynamo operator stand-in against the test cluster.

``k8s_cluster`` is the session's test cluster (tests/integration/conftest.py;
run with your own GTC_TEST_CLUSTER_NAME / GTC_TEST_CLUSTER_DIR). ``platform``
installs the dynamo-platform stand-in chart with cluster_config's values for
the dev inventory; ``operator`` runs tests/stand_ins/dynamo_operator.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from helpers import REPO
from stand_ins import raw_request
from stand_ins.dynamo_operator import DynamoOperator
from stand_ins.dynamo_platform_chart import build_chart

RENDER = REPO / "tests" / "unit" / "dynamo" / "render.yml"
NAMESPACE = "gtc-demo"


def render(out: Path, **extra: Any) -> Path:
    """The dynamo role's objects and cluster_config's dynamo-platform values for the dev inventory."""
    out.mkdir(parents=True, exist_ok=True)
    playbook = Path(sys.executable).parent / "ansible-playbook"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(playbook), str(RENDER), "-i", "inventories/dev",
         "-e", json.dumps({"render_dir": str(out), "gtc_demo_kubeconfig": "/dev/null", **extra})],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
    return out


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Api:
    """Small dict-based helpers over the test cluster's API."""

    def __init__(self, api_client: Any) -> None:
        self.client = api_client

    def req(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return raw_request(self.client, method, path, body, **kw)

    def get(self, path: str) -> Any:
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            return self.req("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (field manager pytest)."""
        group_version = obj["apiVersion"]
        base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        plural = {"DynamoGraphDeployment": "dynamographdeployments", "ConfigMap": "configmaps",
                  "PersistentVolumeClaim": "persistentvolumeclaims", "PersistentVolume": "persistentvolumes",
                  "Namespace": "namespaces"}[obj["kind"]]
        ns = obj["metadata"].get("namespace")
        path = f"{base}/namespaces/{ns}/{plural}/{obj['metadata']['name']}" if ns else f"{base}/{plural}/{obj['metadata']['name']}"
        return self.req("PATCH", path, obj, content_type="application/apply-patch+yaml",
                        query=[("fieldManager", "pytest"), ("force", "true")])

    def graph(self, name: str) -> dict[str, Any] | None:
        return self.get(f"/apis/nvidia.com/v1beta1/namespaces/{NAMESPACE}/dynamographdeployments/{name}")

    def pods(self, graph: str) -> list[dict[str, Any]]:
        return self.req("GET", f"/api/v1/namespaces/{NAMESPACE}/pods",
                        query=[("labelSelector", f"nvidia.com/dynamo-graph-deployment-name={graph}")])["items"]

    def delete(self, path: str) -> None:
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            self.req("DELETE", path)
        except ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture(scope="module")
def api(k8s_cluster) -> Api:
    return Api(k8s_cluster.api_client())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("operator-render"))


@pytest.fixture(scope="module")
def platform(k8s_cluster, rendered, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The dynamo-platform stand-in release, installed with cluster_config's values (dev)."""
    archive = build_chart(tmp_path_factory.mktemp("charts"), k8s_cluster.helm)
    helm = [str(k8s_cluster.helm), "--kubeconfig", str(k8s_cluster.kubeconfig), "--kube-context", k8s_cluster.context]
    proc = subprocess.run(helm + ["upgrade", "--install", "dynamo-platform", str(archive), "-n", "dynamo-system",
                                  "--create-namespace", "-f", str(rendered / "values-dynamo-platform.yaml"), "--wait",
                                  "--timeout", "120s"],
                          capture_output=True, text=True, env=k8s_cluster.env(), check=False)
    assert proc.returncode == 0, proc.stderr
    values = yaml.safe_load((rendered / "values-dynamo-platform.yaml").read_text())
    yield {"values": values, "helm": helm}
    subprocess.run(helm + ["uninstall", "dynamo-platform", "-n", "dynamo-system", "--wait"],
                   capture_output=True, text=True, env=k8s_cluster.env(), check=False)


@pytest.fixture(scope="module")
def model_volume(api) -> Iterator[None]:
    """What cluster_config and model_sync leave: the namespace, the RuntimeClass ``nvidia`` and a bound
    claim ``models`` (a hostPath PV; nothing mounts it)."""
    api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    # cluster_config's RuntimeClass (templates/k8s/runtimeclass.yaml.j2): the workers name it.
    api.req("PATCH", "/apis/node.k8s.io/v1/runtimeclasses/nvidia",
            {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"}, "handler": "nvidia"},
            content_type="application/apply-patch+yaml", query=[("fieldManager", "pytest"), ("force", "true")])
    api.apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "gtc-b-models"},
               "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany"],
                        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                        "hostPath": {"path": "/models"},
                        "claimRef": {"namespace": NAMESPACE, "name": "models"}}})
    api.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "models", "namespace": NAMESPACE},
               "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": "gtc-b-models",
                        "resources": {"requests": {"storage": "1Ti"}}}})
    wait_for("the model claim to bind",
             lambda: (api.get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/models") or {}).get("status", {}).get("phase") == "Bound")
    yield
    api.delete(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/models")
    api.delete("/api/v1/persistentvolumes/gtc-b-models")


@pytest.fixture(scope="module")
def operator(k8s_cluster, platform) -> Iterator[DynamoOperator]:
    op = DynamoOperator(k8s_cluster.api_client())
    op.start()
    yield op
    op.stop()
    assert not op.running
