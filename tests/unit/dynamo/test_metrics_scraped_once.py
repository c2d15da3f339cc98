"""4. Metrics scraped twice: each Dynamo pod of the demo's graph is a target of
exactly one PodMonitor endpoint, and a frontend's series get `routing: <id>` of
the gtc_demo_frontends entry whose component the pod is (by its label, never by
position), also with the frontends reordered and a third one added.

The PodMonitors counted are the ones a run would make: the dynamo-platform
release's (the chart stand-in rendered with cluster_config's values, with
monitoring.coreos.com/v1 served as kube-prometheus-stack makes it; the real
chart's components/operator/templates/prometheus.yaml), cluster_config's
(its monitoring tasks, rendered by tests/unit/dashboards/render_monitoring.yml)
and the dynamo role's own (templates/k8s/podmonitor-*.yaml.j2).
The pods are the ones the operator makes from the rendered graph (labels and
ports as tests/stand_ins/dynamo_operator.py builds them from the operator's
source). kube-prometheus-stack's Prometheus selects every PodMonitor
(podMonitorSelectorNilUsesHelmValues: false), so every match is a scrape.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO, cluster_support
from stand_ins.dynamo_operator import pod_labels, pod_spec
from stand_ins.dynamo_platform_chart import build_chart

COMPONENT_LABEL = "nvidia.com/dynamo-component"


def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _namespace_matches(monitor: dict[str, Any], namespace: str) -> bool:
    sel = monitor["spec"].get("namespaceSelector")
    if not sel:  # no namespaceSelector: the PodMonitor's own namespace only
        return monitor["metadata"].get("namespace") == namespace
    if sel.get("any"):
        return True
    return namespace in (sel.get("matchNames") or [])


def targets(monitors: list[dict[str, Any]], pod: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(monitor name, endpoint) for every PodMonitor endpoint that scrapes this pod.

    prometheus-operator keeps a target only for a container port named as the
    endpoint's ``port`` (its generated keep rule on the container port name).
    """
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports") or [] if "name" in p}
    out = []
    for monitor in monitors:
        if not (_namespace_matches(monitor, pod["metadata"]["namespace"])
                and _selector_matches(monitor["spec"]["selector"], pod["metadata"]["labels"])):
            continue
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            if endpoint.get("port") in ports:
                out.append((monitor["metadata"]["name"], endpoint))
    return out


@pytest.fixture(scope="module")
def helm() -> Path:
    return cluster_support().build_binaries() / "helm"


@pytest.fixture(scope="module")
def platform_monitors(rendered, helm, tmp_path_factory) -> list[dict[str, Any]]:
    """The PodMonitors of the dynamo-platform release and of cluster_config."""
    out = tmp_path_factory.mktemp("scrape")
    archive = build_chart(out / "charts", helm)
    values = out / "values.yaml"
    values.write_text(rendered["dev"].text("values-dynamo-platform.yaml"))
    chart = subprocess.run(
        [str(helm), "template", "dynamo-platform", str(archive), "-n", "dynamo-system", "-f", str(values),
         "--kube-version", "1.36.3", "--api-versions", "monitoring.coreos.com/v1"],
        capture_output=True, text=True, check=False)
    assert chart.returncode == 0, chart.stderr
    docs = [d for d in yaml.safe_load_all(chart.stdout) if d]
    playbook = Path(sys.executable).with_name("ansible-playbook")
    dest = out / "manifests.json"
    ours = subprocess.run(
        [str(playbook), "-i", "localhost,", "-c", "local", str(REPO / "tests" / "unit" / "dashboards" / "render_monitoring.yml"),
         "-e", json.dumps({"render_platforms": ["doks"], "render_dest": str(dest)}),
         "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True, text=True, timeout=300, check=False)
    assert ours.returncode == 0, ours.stdout[-3000:]
    docs += json.loads(dest.read_text())["doks"]
    return [d for d in docs if d.get("kind") == "PodMonitor"]


@pytest.fixture(scope="module")
def monitors(rendered, platform_monitors) -> list[dict[str, Any]]:
    return platform_monitors + rendered["dev"].podmonitors()


def _meta_label(name: str) -> str:
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)


def relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str]:
    """Prometheus's `replace` relabelling (the default action) over a target's labels.

    The regex is anchored at both ends, the source values are joined with `;`,
    and the replacement's $1 is the first group (prometheus/model/relabel).
    """
    out = dict(labels)
    for rule in rules:
        assert rule.get("action", "replace") == "replace", rule
        value = ";".join(out.get(name, "") for name in rule["sourceLabels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if match:
            groups = match.groups()
            out[rule["targetLabel"]] = re.sub(r"\$\{?(\d+)\}?", lambda m: groups[int(m.group(1)) - 1] or "",
                                              rule.get("replacement", "$1"))
    return out


def _pods(rendered, scenario: str = "dev") -> list[dict[str, Any]]:
    graph = rendered[scenario].graph
    graph["metadata"].setdefault("uid", "0")
    pods = []
    for component in graph["spec"]["components"]:
        pods.append({"metadata": {"name": component["name"], "namespace": graph["metadata"]["namespace"],
                                  "labels": pod_labels(graph, component, "default-queue")},
                     "spec": pod_spec(graph, component)})
    return pods


def test_each_dynamo_pod_is_scraped_once(rendered, monitors):
    pods = _pods(rendered)
    assert {p["metadata"]["labels"]["nvidia.com/dynamo-component-type"] for p in pods} == {"frontend", "worker"}
    counts = {p["metadata"]["name"]: [name for name, _endpoint in targets(monitors, p)] for p in pods}
    assert all(len(found) == 1 for found in counts.values()), (
        f"PodMonitor endpoints scraping each pod: {counts} (more than one doubles every series)")


@pytest.mark.parametrize("scenario", ["dev", "dev_reordered"])
def test_every_frontend_series_carries_its_routing_id(rendered, platform_monitors, scenario):
    r = rendered[scenario]
    expected = {f["component"]: f["id"] for f in r.vars["frontends"]}
    seen = {}
    for pod in _pods(rendered, scenario):
        labels = pod["metadata"]["labels"]
        scrapes = targets(platform_monitors + r.podmonitors(), pod)
        assert len(scrapes) == 1, (pod["metadata"]["name"], [name for name, _endpoint in scrapes])
        name, endpoint = scrapes[0]
        series = relabel(endpoint.get("relabelings") or [], {_meta_label(k): v for k, v in labels.items()})
        if labels["nvidia.com/dynamo-component-type"] != "frontend":
            assert "routing" not in series, f"worker {pod['metadata']['name']} got a routing label from {name}"
            continue
        assert series.get("routing"), (
            f"PodMonitor {name} scrapes {pod['metadata']['name']} without a routing label: "
            "its series are the routing=\"\" line on every `by (routing)` panel")
        seen[labels[COMPONENT_LABEL]] = series["routing"]
        assert series["dynamo_graph"] == r.vars["dynamo_k8s_name"]
    assert seen == expected
