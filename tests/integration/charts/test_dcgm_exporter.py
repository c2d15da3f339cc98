"""dcgm-exporter, rendered by its real chart with the role's values (issue 12, defect 11).

It reads the GPUs through the NVIDIA container runtime, so its pods need the
RuntimeClass the GPU workloads use; it runs on the tainted GPU nodes only; the
GPUs are scraped once (the role's ServiceMonitor, not the chart's); and
cluster_config_dcgm_exporter_enabled=false drops both the release and that
ServiceMonitor, for a cluster that already runs an exporter.
"""

from __future__ import annotations

import json

from charts_support import helm_template, render_plan  # type: ignore[import-not-found]


def test_the_daemonset_runs_under_the_nvidia_runtime_on_gpu_nodes(plans, helm, tmp_path):
    plan = plans["dev"]
    release = next(r for r in plan["releases"] if r["name"] == "dcgm-exporter")
    docs = helm_template(helm, release, tmp_path)
    (daemonset,) = [d.obj for d in docs if d.kind == "DaemonSet"]
    pod = daemonset["spec"]["template"]["spec"]
    assert pod.get("runtimeClassName") == "nvidia", pod.get("runtimeClassName")
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"doks.digitalocean.com/gpu-brand": "nvidia"}
    # Scraped once: the chart's own ServiceMonitor is off, the role's selects the chart's Service.
    assert not [d for d in docs if d.kind == "ServiceMonitor"]
    (ours,) = [m for m in plan["monitoring"] if m["kind"] == "ServiceMonitor"]
    (service,) = [d.obj for d in docs if d.kind == "Service"]
    assert ours["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert ours["spec"]["namespaceSelector"]["matchNames"] == [release["namespace"]]
    assert ours["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_the_switch_drops_the_release_and_its_scrape(helm, tmp_path):
    out = tmp_path / "plan.json"
    proc = render_plan("inventories/dev", out, {"cluster_config_dcgm_exporter_enabled": False}, helm_dir=helm.parent)
    assert proc.returncode == 0, proc.stdout[-3000:]
    plan = json.loads(out.read_text())
    assert "dcgm-exporter" not in {r["name"] for r in plan["releases"]}
    assert not [m for m in plan["monitoring"] if m["kind"] == "ServiceMonitor"]
    assert {r["name"] for r in plan["releases"]} == {
        "kube-prometheus-stack", "cert-manager", "external-dns", "keda", "dynamo-platform"}
