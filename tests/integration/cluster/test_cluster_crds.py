"""The session's cluster serves the CRDs of ../shared/schemas/crds (Dynamo, Gateway API,
cert-manager, prometheus-operator), so roles can create those resources for real."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

EXPECTED = {
    "dynamographdeployments.nvidia.com",
    "dynamocomponentdeployments.nvidia.com",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "certificates.cert-manager.io",
    "clusterissuers.cert-manager.io",
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
}


def test_shared_crds_are_established(k8s_cluster):
    served = {crd.metadata.name for crd in client.ApiextensionsV1Api(k8s_cluster.api_client())
              .list_custom_resource_definition().items}
    assert EXPECTED <= served, sorted(EXPECTED - served)


def test_a_custom_resource_is_validated_by_its_schema(k8s_cluster):
    custom = client.CustomObjectsApi(k8s_cluster.api_client())
    name = f"probe-{uuid.uuid4().hex[:6]}"
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": "dynamo-frontend"}}, "endpoints": [{"port": "http"}]},
    }
    created = custom.create_namespaced_custom_object("monitoring.coreos.com", "v1", "default",
                                                     "servicemonitors", monitor)
    try:
        assert created["spec"]["endpoints"] == [{"port": "http"}]
        # The CRD's OpenAPI schema is enforced: endpoints must be a list.
        bad = dict(monitor, metadata={"name": f"{name}-bad"}, spec={"selector": {}, "endpoints": "http"})
        with pytest.raises(ApiException) as caught:
            custom.create_namespaced_custom_object("monitoring.coreos.com", "v1", "default", "servicemonitors", bad)
        assert caught.value.status == 422
    finally:
        custom.delete_namespaced_custom_object("monitoring.coreos.com", "v1", "default", "servicemonitors", name)
