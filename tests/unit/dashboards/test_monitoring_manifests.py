"""cluster_config's monitoring manifests, rendered by the role's own tasks, against the real CRDs.

render_monitoring.yml runs roles/cluster_config/tasks/_plan.yml (no cluster)
and writes the monitoring manifests _k8s.yml would apply. The ServiceMonitor is
validated against the prometheus-operator CRDs in ../shared/schemas (read in
place, never copied). The PodMonitors of the Dynamo pods and of the load
generator are the dynamo and loadgen roles' (their own tests).
The PrometheusRule CRD is not among those schemas: its spec is checked against
the rules files here and by promtool in tests/integration/dashboards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import artifacts
import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = artifacts.resolve_dir("schemas/crds/prometheus-operator")
PLAYBOOK = Path(__file__).with_name("render_monitoring.yml")


def _render(platforms: list[str], dest: Path, **extra: Any) -> dict[str, list[dict[str, Any]]]:
    out = dest / "manifests.json"
    playbook = Path(sys.executable).with_name("ansible-playbook")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [str(playbook), "-i", "localhost,", "-c", "local", str(PLAYBOOK),
         "-e", json.dumps({"render_platforms": platforms, "render_dest": str(out), **extra}),
         "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    dest = tmp_path_factory.mktemp("monitoring")
    return _render(["doks", "kind"], dest)


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    if not CRD_DIR.is_dir():
        pytest.fail(f"prometheus-operator CRDs not found at {CRD_DIR} (shared/ must sit beside the checkout)")
    out = {}
    for path in CRD_DIR.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        out[crd["spec"]["names"]["kind"]] = crd
    assert {"PodMonitor", "ServiceMonitor"} <= set(out)
    return out


def _by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def test_what_each_platform_gets(rendered) -> None:
    kinds = {p: sorted(f"{m['kind']}/{m['metadata']['name']}" for m in ms) for p, ms in rendered.items()}
    common = ["ConfigMap/gtc-demo-dashboards", "PrometheusRule/gtc-demo-rules"]
    assert kinds["kind"] == common  # no GPUs, no dcgm-exporter release on kind
    # No monitor of another role's pods: dynamo and loadgen ship their own.
    assert not [m for ms in rendered.values() for m in ms if m["kind"] == "PodMonitor"]
    assert kinds["doks"] == sorted([*common, "ServiceMonitor/gtc-demo-dcgm-exporter"])


def test_monitors_match_the_prometheus_operator_crds(rendered, crds) -> None:
    monitors = [m for m in rendered["doks"] if m["kind"] in ("PodMonitor", "ServiceMonitor")]
    assert monitors
    for m in monitors:
        crd = crds[m["kind"]]
        served = {f"{crd['spec']['group']}/{v['name']}": v for v in crd["spec"]["versions"] if v["served"]}
        assert m["apiVersion"] in served, m["apiVersion"]
        schema = served[m["apiVersion"]]["schema"]["openAPIV3Schema"]
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in jsonschema.Draft7Validator(schema).iter_errors(m)]
        assert errors == [], f"{m['kind']} {m['metadata']['name']}: {errors}"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", m["metadata"]["name"])


def test_the_crd_check_bites(rendered, crds) -> None:
    """A wrong field type in the ServiceMonitor is caught by the same validation."""
    bad = json.loads(json.dumps(_by_kind(rendered["doks"], "ServiceMonitor")[0]))
    bad["spec"]["endpoints"][0]["interval"] = "five seconds"
    bad["spec"]["endpoints"][0]["relabelings"] = [{"action": "rename"}]
    schema = crds["ServiceMonitor"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(bad))) >= 2


def test_dcgm_exporter_switch_drops_its_monitor(tmp_path) -> None:
    off = _render(["doks"], tmp_path, cluster_config_dcgm_exporter_enabled=False)
    assert not _by_kind(off["doks"], "ServiceMonitor")


def test_dashboard_configmap_carries_the_dashboards_for_grafanas_sidecar(rendered) -> None:
    (cm,) = _by_kind(rendered["doks"], "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = {p.name: p for p in (REPO / "files" / "dashboards").glob("*.json")}
    assert set(cm["data"]) == set(files)
    for name, text in cm["data"].items():
        assert isinstance(text, str)
        assert json.loads(text) == json.loads(files[name].read_text())
    # kubectl-style apply keeps a copy in an annotation, limited to 256 KiB in total.
    assert len(json.dumps(cm)) < 200 * 1024


def test_prometheus_rule_carries_the_rules_files(rendered) -> None:
    (rule,) = _by_kind(rendered["doks"], "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    # kube-prometheus-stack selects rules by its release label.
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    expected = [g for f in sorted((REPO / "files" / "prometheus" / "rules").glob("*.yml"))
                for g in yaml.safe_load(f.read_text())["groups"]]
    assert rule["spec"] == {"groups": expected}


def test_everything_lands_in_the_monitoring_namespace(rendered) -> None:
    for m in rendered["doks"]:
        assert m["metadata"]["namespace"] == "monitoring"
        assert m["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gtc-demo"
    watched = {m["metadata"]["name"]: m["spec"]["namespaceSelector"]["matchNames"]
               for m in rendered["doks"] if m["kind"] in ("PodMonitor", "ServiceMonitor")}
    assert watched == {"gtc-demo-dcgm-exporter": ["monitoring"]}
