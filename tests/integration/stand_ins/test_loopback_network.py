"""The rehearsal cluster dials nothing outside 127.0.0.0/8, with the real charts installed.

kube-apiserver dials a service webhook or an aggregated API at its Service's
ClusterIP (no endpoint routing: Endpoints and EndpointSlices refuse loopback
addresses, k8s pkg/apis/core/validation ValidateEndpointIP), so every
ClusterIP, pod IP and node IP must be loopback.
"""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def _loopback(ip: str | None) -> bool:
    return ip is not None and ipaddress.ip_address(ip) in LOOPBACK


def test_every_service_pod_and_node_ip_is_loopback(rehearsal: Any, charts: Any) -> None:
    core = rehearsal.core()
    services = core.list_service_for_all_namespaces().items
    pods = core.list_pod_for_all_namespaces().items
    nodes = core.list_node().items
    # The real charts made their Services and pods (many of each), and they run.
    assert {r["name"] for r in charts.plan} >= {"cert-manager", "kube-prometheus-stack", "keda", "external-dns"}
    assert len(services) > 15 and len(pods) > 10
    assert all(p.status.phase in ("Running", "Succeeded") for p in pods), \
        [(p.metadata.name, p.status.phase) for p in pods if p.status.phase not in ("Running", "Succeeded")]

    not_loopback = [(s.metadata.namespace, s.metadata.name, ip) for s in services
                    for ip in (s.spec.cluster_ips or [s.spec.cluster_ip]) if ip != "None" and not _loopback(ip)]
    assert not not_loopback, f"Services outside 127/8: {not_loopback}"
    bad_pods = [(p.metadata.namespace, p.metadata.name, p.status.pod_ip) for p in pods
                if not _loopback(p.status.pod_ip)]
    assert not bad_pods, f"pods outside 127/8: {bad_pods}"
    bad_nodes = [(n.metadata.name, a.address) for n in nodes for a in n.status.addresses or []
                 if a.type == "InternalIP" and not _loopback(a.address)]
    assert not bad_nodes, f"nodes outside 127/8: {bad_nodes}"
    # The same, as the fixture reports it for a rehearsal's final check.
    assert rehearsal.non_loopback_addresses() == []
    # Each node got its own pod range from the controller manager, inside the cluster's.
    network = rehearsal.network
    assert all(n.spec.pod_cidr and ipaddress.ip_network(n.spec.pod_cidr).subnet_of(
        ipaddress.ip_network(network.pod_cidr)) for n in nodes)


def test_what_the_api_server_dials_is_loopback(rehearsal: Any, charts: Any) -> None:
    """Every webhook and APIService of the charts names a Service whose ClusterIP is loopback."""
    from kubernetes import client

    api = rehearsal.api_client()
    core = rehearsal.core()
    adm = client.AdmissionregistrationV1Api(api)
    targets = []
    for config in adm.list_validating_webhook_configuration().items + adm.list_mutating_webhook_configuration().items:
        for hook in config.webhooks:
            assert hook.client_config.url is None, f"{config.metadata.name} calls a URL"
            targets.append((config.metadata.name, hook.client_config.service))
    for svc in client.ApiregistrationV1Api(api).list_api_service().items:
        if svc.spec.service:
            targets.append((svc.metadata.name, svc.spec.service))
    names = {name for name, _address in targets}
    # cert-manager's (failurePolicy Fail), prometheus-operator's, KEDA's and KEDA's metrics APIService.
    assert {"cert-manager-webhook", "kube-prometheus-stack-admission", "keda-admission",
            "v1beta1.external.metrics.k8s.io"} <= names
    for name, ref in targets:
        service = core.read_namespaced_service(ref.name, ref.namespace)
        assert _loopback(service.spec.cluster_ip), (name, ref.namespace, ref.name, service.spec.cluster_ip)


def test_components_run_with_the_loopback_flags(rehearsal: Any) -> None:
    """Each flag reached its own component (kwokctl 0.8.0's --extra-args gave kube-apiserver's
    --service-cluster-ip-range to the controller manager, and the Service range stayed 10.0.0.0/24)."""
    network = rehearsal.network
    wanted = {
        "kube-apiserver": [f"--service-cluster-ip-range={network.service_cidr}", "--bind-address=127.0.0.1"],
        "kube-controller-manager": [f"--cluster-cidr={network.pod_cidr}", "--allocate-node-cidrs=true",
                                    f"--service-cluster-ip-range={network.service_cidr}"],
        "kwok-controller": [f"--cidr={network.pod_cidr}", f"--node-ip={network.node_ip}"],
    }
    found: dict[str, list[str]] = {}
    marker = str(rehearsal.dir / "kwok")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or marker not in argv[0].decode(errors="replace"):
            continue
        found[Path(argv[0].decode()).name] = [a.decode() for a in argv[1:]]
    for component, flags in wanted.items():
        assert component in found, f"{component} is not running: {sorted(found)}"
        missing = [f for f in flags if f not in found[component]]
        assert not missing, f"{component} lacks {missing}"
    kubernetes = rehearsal.core().read_namespaced_service("kubernetes", "default")
    assert ipaddress.ip_address(kubernetes.spec.cluster_ip) in ipaddress.ip_network(network.service_cidr)


def test_default_cluster_network_is_unchanged() -> None:
    """The default test cluster keeps the components' defaults: no network flags at all."""
    from helpers import cluster_support

    fixture = cluster_support()
    assert fixture.Network().component_args() == {}
    loop = fixture.Network.loopback("gtc-stand-ins")
    assert loop.is_loopback() and not fixture.Network().is_loopback()
    # The lead's rehearsal and these tests can run side by side without sharing addresses.
    assert fixture.Network.loopback("gtc-rehearsal").service_cidr != loop.service_cidr
    assert json.loads(json.dumps(vars(loop))) == vars(loop)  # what cluster.json records


def test_webhooks_that_ignore_failures_do_not_block(rehearsal: Any, charts: Any) -> None:
    """prometheus-operator's admission webhook (kube-prometheus-stack, ``patch.enabled``: failurePolicy
    Ignore) and KEDA's (``webhooks.failurePolicy: Ignore``) have no server here: what they would
    validate is still admitted, as on a cluster whose webhook pods are down. KEDA's metrics APIService
    stays unavailable (no EndpointSlice can hold a loopback address), and discovery goes on without it."""
    from kubernetes import client

    api = rehearsal.api_client()
    adm = client.AdmissionregistrationV1Api(api)
    policies = {h.name: h.failure_policy for c in adm.list_validating_webhook_configuration().items
                for h in c.webhooks if c.metadata.name in ("kube-prometheus-stack-admission", "keda-admission")}
    assert policies and set(policies.values()) == {"Ignore"}, policies
    custom = client.CustomObjectsApi(api)
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "probe"},
            "spec": {"groups": [{"name": "probe", "rules": [{"record": "probe:up", "expr": "up"}]}]}}
    custom.create_namespaced_custom_object("monitoring.coreos.com", "v1", "monitoring", "prometheusrules", rule,
                                           dry_run="All")
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "probe"},
              "spec": {"scaleTargetRef": {"name": "none"}, "triggers": [{"type": "prometheus", "metadata": {
                  "serverAddress": "http://prometheus:9090", "query": "up", "threshold": "1"}}]}}
    custom.create_namespaced_custom_object("keda.sh", "v1alpha1", "keda", "scaledobjects", scaled, dry_run="All")
    metrics = client.ApiregistrationV1Api(api).read_api_service("v1beta1.external.metrics.k8s.io")
    available = next(c for c in metrics.status.conditions if c.type == "Available")
    assert (available.status, available.reason) == ("False", "MissingEndpoints")
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"cert-manager.io", "monitoring.coreos.com", "keda.sh", "gateway.networking.k8s.io"} <= groups
