"""Fixtures for the Dynamo operator stand-in against the test cluster.

``k8s_cluster`` is the session's test cluster (tests/integration/conftest.py;
run with your own GTC_TEST_CLUSTER_NAME / GTC_TEST_CLUSTER_DIR). ``platform``
installs the dynamo-platform stand-in chart with cluster_config's values for
the dev inventory; ``operator`` runs tests/stand_ins/dynamo_operator.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from helpers import REPO
from operator_support import NAMESPACE, Api, render, wait_for  # type: ignore[import-not-found]
from stand_ins.dynamo_operator import DynamoOperator
from stand_ins.dynamo_platform_chart import build_chart


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
def podmonitor_crd(api) -> None:
    """The PodMonitor CRD kube-prometheus-stack brings (the pinned public file): the role applies its monitors."""
    sys.path.insert(0, str(REPO / "tests"))
    import artifacts  # pylint: disable=import-outside-toplevel

    crd = yaml.safe_load(artifacts.resolve("schemas/crds/prometheus-operator/monitoring.coreos.com_podmonitors.yaml").read_text())
    api.req("PATCH", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}", crd,
            content_type="application/apply-patch+yaml", query=[("fieldManager", "pytest"), ("force", "true")])
    wait_for("the PodMonitor CRD to be served",
             lambda: api.get("/apis/monitoring.coreos.com/v1/namespaces/default/podmonitors") is not None)


@pytest.fixture(scope="module")
def operator(k8s_cluster, platform) -> Iterator[DynamoOperator]:
    op = DynamoOperator(k8s_cluster.api_client())
    op.start()
    yield op
    op.stop()
    assert not op.running
