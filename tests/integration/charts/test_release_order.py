"""Every object cluster_config installs has its kind served by the time it is applied.

The role applies, in the order of its task file tasks/_k8s.yml: the Gateway API
CRDs the cluster lacks, then each Helm release of the platform in the order of
cluster_config_helm_releases, then the monitoring manifests (_monitoring.yml).
Helm resolves every object of a release against the API server before it
creates anything, and only a chart's crds/ folders are installed ahead of the
rest; so a release that renders a kind nobody has installed yet stops with
"no matches for kind". Here each release is rendered by its real upstream chart
(`helm template`, the role's own values), in that order, and each kind must be:

- built into Kubernetes (the client's API group and model exist),
- a CRD an earlier step installed, or one in the same release's crds/ folder,
- or on the DOKS_PROVIDES list below, with why.

Plus the start-up needs of two controllers, from their source:
- cert-manager v1.21.1 with its Gateway API integration on exits unless
  gateway.networking.k8s.io/v1 is served (pkg/controller/context.go,
  newContextClients: ServerResourcesForGroupVersion on gwapi.GroupVersion);
- external-dns v0.19.0's gateway-httproute source waits for its informers on
  gateway.networking.k8s.io/v1beta1 Gateways and HTTPRoutes
  (source/gateway.go, source/gateway_httproute.go).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

from charts_support import NO_PUBLIC_CHART, REPO, helm_template  # type: ignore[import-not-found]

import artifacts  # type: ignore[import-not-found]  # on sys.path via conftest

# Kinds DOKS itself serves beyond upstream Kubernetes that a release may use.
# Empty today: the Gateway API CRDs DOKS manages are installed by the role where
# missing (it does not rely on them), and nothing else is needed.
DOKS_PROVIDES: dict[str, set[tuple[str, str]]] = {"dev": set(), "kind": set()}

GATEWAY_GROUP = "gateway.networking.k8s.io"
# name of the step -> what the controller needs served before it starts (see the module docstring).
STARTUP_NEEDS = {
    "cert-manager": lambda values: (
        {(f"{GATEWAY_GROUP}/v1", None)}
        if (values.get("config") or {}).get("gatewayAPI", {}).get("enabled")
        or (values.get("config") or {}).get("enableGatewayAPI") else set()),
    "external-dns": lambda values: (
        {(f"{GATEWAY_GROUP}/v1beta1", "Gateway"), (f"{GATEWAY_GROUP}/v1beta1", "HTTPRoute")}
        if "gateway-httproute" in (values.get("sources") or []) else set()),
}


def builtin(api_version: str, kind: str) -> bool:
    """A kind of upstream Kubernetes: the client has the group/version's API and the kind's model."""
    group, _slash, version = api_version.rpartition("/")
    prefix = "".join(p.capitalize() for p in group.removesuffix(".k8s.io").split(".")) if group else "Core"
    cap = version[:1].upper() + version[1:]
    return hasattr(kubernetes.client, f"{prefix}{cap}Api") and hasattr(kubernetes.client, f"{cap}{kind}")


def crd_kinds(crd: dict[str, Any]) -> set[tuple[str, str]]:
    """(group/version, kind) for each served version of a CRD."""
    spec = crd["spec"]
    return {(f"{spec['group']}/{v['name']}", spec["names"]["kind"]) for v in spec["versions"] if v.get("served")}


def capabilities(served: set[tuple[str, str]]) -> set[str]:
    """The --api-versions strings Helm's .Capabilities.APIVersions.Has matches (group/version and group/version/Kind)."""
    return {gv for gv, _kind in served} | {f"{gv}/{kind}" for gv, kind in served}


def task_order() -> list[str]:
    """The install steps of tasks/_k8s.yml's block, in order: what each task imports or runs."""
    tasks = yaml.safe_load((REPO / "roles" / "cluster_config" / "tasks" / "_k8s.yml").read_text())
    block = next(t for t in tasks if "block" in t)["block"]
    return [t.get("ansible.builtin.import_tasks") or next(k for k in t if "." in k) for t in block]


def walk(plan: dict[str, Any], helm: Path, tmp: Path, platform: str) -> list[tuple[str, list[str]]]:
    """Go through the role's steps in order; return [(step, [problems])]."""
    order = task_order()
    assert order.index("_gateway_api_crds.yml") < order.index("kubernetes.core.helm") \
        < order.index("_monitoring.yml"), order
    served: set[tuple[str, str]] = set(DOKS_PROVIDES[platform])
    report: list[tuple[str, list[str]]] = []

    gateway_dir = artifacts.resolve_dir("schemas/crds/gateway-api")
    for url in plan["gateway_api_crd_urls"]:
        served |= crd_kinds(yaml.safe_load((gateway_dir / url.rsplit("/", 1)[1]).read_text()))
    report.append(("gateway-api-crds", []))

    for release in plan["releases"]:
        problems = [f"needs {gv} {kind or '(any kind)'} served before it starts"
                    for gv, kind in sorted(STARTUP_NEEDS.get(release["name"], lambda _v: set())(release["values"]),
                                           key=str)
                    if not any(s_gv == gv and (kind is None or s_kind == kind) for s_gv, s_kind in served)]
        if release["name"] in NO_PUBLIC_CHART:
            report.append((release["name"], problems))
            continue
        docs = helm_template(helm, release, tmp, capabilities(served))
        own_crds = {k for d in docs if d.kind == "CustomResourceDefinition" and d.from_crds_dir for k in crd_kinds(d.obj)}
        for doc in docs:
            key = (doc.api_version, doc.kind)
            if builtin(*key) or key in served or key in own_crds:
                continue
            problems.append(f"renders {doc.kind} ({doc.api_version}) from {doc.source}, and no earlier step installs it")
        served |= own_crds | {k for d in docs if d.kind == "CustomResourceDefinition" for k in crd_kinds(d.obj)}
        report.append((release["name"], sorted(set(problems))))

    problems = [f"applies {m['kind']} ({m['apiVersion']}) {m['metadata']['name']}, not served by then"
                for m in plan["monitoring"]
                if not (builtin(m["apiVersion"], m["kind"]) or (m["apiVersion"], m["kind"]) in served)]
    report.append(("monitoring", problems))
    return report


@pytest.mark.parametrize("inventory", ["dev", "kind"])
def test_every_kind_is_served_before_it_is_applied(plans, helm, tmp_path, inventory):
    report = walk(plans[inventory], helm, tmp_path, inventory)
    bad = [f"{step}: {p}" for step, problems in report for p in problems]
    assert not bad, "\n".join(bad)
    steps = [step for step, _found in report]
    assert steps[0] == "gateway-api-crds" and steps[-1] == "monitoring"
    assert set(steps[1:-1]) == {r["name"] for r in plans[inventory]["releases"]}


def test_the_walk_catches_a_kind_installed_too_late(plans, helm, tmp_path):
    """Guards the check: with the monitoring CRDs' release last, cert-manager's ServiceMonitor is refused."""
    plan = dict(plans["dev"])
    stack = next(r for r in plan["releases"] if r["name"] == "kube-prometheus-stack")
    plan["releases"] = [r for r in plan["releases"] if r is not stack] + [stack]
    bad = dict(walk(plan, helm, tmp_path, "dev"))
    assert any(re.search(r"ServiceMonitor \(monitoring\.coreos\.com/v1\)", p) for p in bad["cert-manager"]), bad
    assert any("ServiceMonitor" in p for p in bad["external-dns"]), bad
    # And without the Gateway API CRDs, both controllers' start-up needs are unmet.
    plan = dict(plans["dev"], gateway_api_crd_urls=[])
    bad = dict(walk(plan, helm, tmp_path, "dev"))
    assert any("gateway.networking.k8s.io/v1 " in p for p in bad["cert-manager"]), bad
    assert any("v1beta1 HTTPRoute" in p for p in bad["external-dns"]), bad


def test_builtin_tells_kubernetes_kinds_from_custom_ones():
    assert builtin("v1", "ConfigMap") and builtin("apps/v1", "DaemonSet")
    assert builtin("rbac.authorization.k8s.io/v1", "ClusterRole")
    assert builtin("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")
    assert builtin("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert not builtin("monitoring.coreos.com/v1", "ServiceMonitor")
    assert not builtin("policy/v1beta1", "PodSecurityPolicy")  # gone since Kubernetes 1.25
    assert not builtin("apps/v1", "ServiceMonitor")
