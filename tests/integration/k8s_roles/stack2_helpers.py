"""Helpers for the Stack 2 cluster tests: the cluster's state, pods from the graph's template."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

# Fake secrets: the tests check they reach the cluster and never the output.
SECRET_ENV = {
    "HF_TOKEN": "hf_test_token_5b1d",
    "GRADIENT_API_KEY": "gradient_test_key_77aa",
    "DIGITALOCEAN_ACCESS_TOKEN": "dop_v1_test_token_c0ffee",
    "SPACES_ACCESS_KEY_ID": "DO00TESTKEYID",
    "SPACES_SECRET_ACCESS_KEY": "spaces_test_secret_9f9f",
}
NAMESPACES = ["gtc-demo", "dynamo-system", "monitoring", "keda", "cert-manager", "external-dns"]


# --------------------------------------------------------------------------
# The cluster's state


def snapshot(cluster) -> dict[str, str]:
    """A digest of every object the roles manage (and Helm's release secrets).

    The digest covers the whole object but its status and the bookkeeping the
    API server changes on any write (resourceVersion, managedFields): a change
    of spec, data, labels or annotations shows, a controller's status update
    does not. (A bare resourceVersion is too strict: re-applying an unchanged
    Gateway once makes the API server store it again, byte-for-byte the same
    content, under a new resourceVersion.)
    """
    from kubernetes import dynamic  # pylint: disable=import-outside-toplevel

    dyn = dynamic.DynamicClient(cluster.api_client())
    kinds = [
        ("v1", "Namespace", False), ("node.k8s.io/v1", "RuntimeClass", False), ("v1", "PersistentVolume", False),
        ("cert-manager.io/v1", "ClusterIssuer", False),
        ("v1", "Secret", True), ("v1", "ConfigMap", True), ("v1", "PersistentVolumeClaim", True),
        ("batch/v1", "Job", True), ("nvidia.com/v1beta1", "DynamoGraphDeployment", True),
        ("gateway.networking.k8s.io/v1", "Gateway", True), ("gateway.networking.k8s.io/v1", "HTTPRoute", True),
        ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant", True), ("cert-manager.io/v1", "Certificate", True),
    ]
    state: dict[str, str] = {}
    for api_version, kind, namespaced in kinds:
        resource = dyn.resources.get(api_version=api_version, kind=kind)
        for ns in (NAMESPACES if namespaced else [None]):
            items = resource.get(namespace=ns).items if ns else resource.get().items
            for item in items:
                meta = item.metadata
                if kind == "Namespace" and meta.name not in NAMESPACES:
                    continue
                body = item.to_dict()
                body.pop("status", None)
                for key in ("resourceVersion", "managedFields"):
                    body["metadata"].pop(key, None)
                digest = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
                state[f"{kind}/{meta.namespace or ''}/{meta.name}"] = digest
    return state


def get(cluster, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    from kubernetes import dynamic  # pylint: disable=import-outside-toplevel

    dyn = dynamic.DynamicClient(cluster.api_client())
    return dyn.resources.get(api_version=api_version, kind=kind).get(name=name, namespace=namespace).to_dict()


def jobs(cluster, namespace: str = "gtc-demo") -> list[dict[str, Any]]:
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    batch = client.BatchV1Api(cluster.api_client())
    items = batch.list_namespaced_job(namespace, label_selector="app.kubernetes.io/component=model-sync").items
    return [cluster.api_client().sanitize_for_serialization(j) for j in items]


def pod_from_template(graph: dict[str, Any], component: str, name: str,
                      node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """A Pod made from a component's podTemplate, the way the operator would (main container as is)."""
    comp = next(c for c in graph["spec"]["components"] if c["name"] == component)
    spec = json.loads(json.dumps(comp["podTemplate"]["spec"]))
    if node_selector:
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **node_selector}
    spec["terminationGracePeriodSeconds"] = 0
    labels = {**graph["spec"].get("labels", {}), **(comp["podTemplate"].get("metadata", {}).get("labels", {}))}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


def wait_for(predicate, timeout: float = 60, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
