"""A stand-in for NVIDIA's ``dynamo-platform`` Helm chart, version 1.6.1.

The real chart is served by NGC (``https://helm.ngc.nvidia.com/nvidia/ai-dynamo``),
which cannot be reached here, so tests install this one instead: the same
name, version, release layout and values keys, with what the real release
installs that the roles and ``tests/stand_ins/dynamo_operator.py`` rely on:

- the Dynamo CRDs the way the real release brings them: not in ``crds/``
  (the real chart has none for them) but applied by the operator's init
  container ``crd-apply`` from its image (``components/operator/templates/deployment.yaml``,
  when ``upgradeCRD`` and no namespace restriction). The Deployment here has
  that init container, and ``tests/stand_ins/dynamo_operator.py`` applies the
  pinned public CRDs (``tests/artifacts.py``: ``schemas/crds/dynamo``) when it
  sees it. (Packed into the chart they would also break Helm: its release
  Secret would pass the API server's 1 MiB limit.)
- KAI's ``Queue`` CRD in ``crds/`` as KAI's chart has it
  (``scheduling.run.ai/v2``, cluster scoped), written here from the shape of
  NVIDIA/KAI-Scheduler ``deployments/kai-scheduler/crds/scheduling.run.ai_queues.yaml``
  (branch v0.13, the kai-scheduler v0.13.x the platform chart depends on);
- KAI's default queues when the values ask for them (``templates/kai-queues.yaml``);
- the operator's configuration ConfigMap ``<release>-dynamo-operator-config``
  with the orchestrator switches the operator stand-in reads;
- Deployments for the Dynamo operator, Grove's operator and KAI's operator
  (kwok turns their pods Ready; nothing runs in them);
- the chart's own PodMonitors, with the real tri-state switch.

It refuses what it can tell the real chart refuses or ignores: the removed
values of the real ``templates/validate-values.yaml``, and, through
``values.schema.json``, unknown keys at the levels listed in ``SCHEMA`` below
(every key the real chart's and subcharts' values files have there). The real
chart has no schema, so Helm would accept an unknown key and ignore it; the
stand-in refuses it so that a value with no effect is caught (for example
``kai-scheduler.scheduler.args``, which KAI's v0.13 chart never reads).

``build_chart(out_dir, helm)`` writes the chart and ``helm package``s it into
``out_dir``; it returns the archive (``dynamo-platform-1.6.1.tgz``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "dynamo-platform"

NAME = "dynamo-platform"
VERSION = "1.6.1"


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    """An object that allows only these keys."""
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _keys(*names: str) -> dict[str, Any]:
    return {name: {} for name in names}


_BOOL = {"type": "boolean"}
_SWITCH = _closed({"install": _BOOL, "enabled": _BOOL})

# Keys per level, from the real values files (ai-dynamo/dynamo at the commit in
# README.md: deploy/helm/charts/platform/values.yaml, components/operator/values.yaml;
# NVIDIA/KAI-Scheduler v0.13: deployments/kai-scheduler/values.yaml). A level
# not listed accepts anything.
SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "dynamo-platform stand-in values",
    **_closed({
        # The platform's own keys, and its dependencies by name or alias
        # (Chart.yaml: dynamo-operator, nats, etcd, kai-scheduler, grove, snapshot).
        "global": _closed({
            "etcd": _closed({"install": _BOOL}),
            "nats": _closed({"install": _BOOL}),
            "kai-scheduler": _SWITCH,
            "volcano-scheduler": _closed({"enabled": _BOOL}),
            "grove": _SWITCH,
            "snapshot": _closed({"install": _BOOL}),
        }),
        "dynamo-operator": _closed({
            **_keys("upgradeCRD", "env", "natsAddr", "etcdAddr", "modelExpressURL", "gpuDiscovery",
                    "discoveryBackend", "controllerManager", "imagePullSecrets", "webhook", "checkpoint",
                    "planner", "kubernetesClusterDomain", "metricsService"),
            "enabled": _BOOL,
            "namespaceRestriction": {"type": "object", "properties": {"enabled": _BOOL}},
            "dynamo": _closed({
                **_keys("components", "groveTerminationDelay", "dockerRegistry", "ingress", "istio",
                        "ingressHostSuffix", "virtualServiceSupportsHTTPS", "serviceMesh", "mpiRun"),
                "metrics": _closed({
                    "prometheusEndpoint": {"type": "string"},
                    "podMonitors": _closed({
                        "enabled": {"type": ["boolean", "null"]},
                        "frontendPath": {"type": "string"},
                        "nixlTelemetry": _BOOL,
                    }),
                }),
            }),
        }),
        "grove": {"type": "object"},
        "kai-scheduler": _closed({
            **_keys("global", "operator", "podgrouper", "podgroupcontroller", "binder", "queuecontroller",
                    "admission", "nodescaleadjuster", "crdupgrader", "topologyMigration", "postCleanup"),
            "scheduler": _closed(_keys("image", "placementStrategy", "ports", "plugins", "actions")),
            "defaultQueue": _closed({
                "createDefaultQueue": _BOOL,
                "parentName": {"type": "string", "minLength": 1},
                "childName": {"type": "string", "minLength": 1},
                "parentResources": {"type": "object"},
                "childResources": {"type": "object"},
            }),
        }),
        "etcd": {"type": "object"},
        "nats": {"type": "object"},
        "snapshot": {"type": "object"},
    }),
}


def _number() -> dict[str, Any]:
    return {"type": "number"}


def queue_crd() -> dict[str, Any]:
    """KAI's Queue CRD: group, version, scope, names and the spec fields of the
    upstream file (see the module docstring); status is left open."""
    resource = {"type": "object", "properties": {"quota": _number(), "limit": _number(), "overQuotaWeight": _number()}}
    spec = {
        "type": "object",
        "properties": {
            "displayName": {"type": "string"},
            "parentQueue": {"type": "string"},
            "priority": {"type": "integer"},
            "preemptMinRuntime": {"type": "string"},
            "reclaimMinRuntime": {"type": "string"},
            "resources": {"type": "object", "properties": {"cpu": resource, "gpu": resource, "memory": resource}},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "queues.scheduling.run.ai"},
        "spec": {
            "group": "scheduling.run.ai",
            "names": {"kind": "Queue", "listKind": "QueueList", "plural": "queues", "singular": "queue"},
            "scope": "Cluster",
            "versions": [{
                "name": "v2", "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"jsonPath": ".spec.priority", "name": "Priority", "type": "string"},
                    {"jsonPath": ".spec.parentQueue", "name": "Parent", "type": "string"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                        "spec": spec,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    },
                }},
            }],
        },
    }


def write_chart(chart_dir: Path) -> Path:
    """The chart's folder (templates from tests/stand_ins/dynamo-platform, KAI's Queue CRD, schema)."""
    if chart_dir.exists():
        shutil.rmtree(chart_dir)
    shutil.copytree(SOURCE, chart_dir)
    # Kept as *.yaml.gotmpl in the repository: they are Go templates, not YAML
    # (ansible-test's yamllint would parse them); Helm wants them as *.yaml.
    for template in (chart_dir / "templates").glob("*.gotmpl"):
        template.rename(template.with_suffix(""))
    crds = chart_dir / "crds"
    crds.mkdir()
    (crds / "scheduling.run.ai_queues.yaml").write_text(yaml.safe_dump(queue_crd(), sort_keys=False))
    (chart_dir / "values.schema.json").write_text(json.dumps(SCHEMA, indent=2) + "\n")
    return chart_dir


def build_chart(out_dir: Path, helm: Path) -> Path:
    """Write the stand-in chart and ``helm package`` it into ``out_dir``; return the archive."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dynamo-platform-") as tmp:
        chart_dir = write_chart(Path(tmp) / NAME)
        proc = subprocess.run([str(helm), "package", str(chart_dir), "-d", str(out_dir)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"helm package failed: {proc.stderr.strip() or proc.stdout.strip()}")
    archive = out_dir / f"{NAME}-{VERSION}.tgz"
    if not archive.is_file():
        raise RuntimeError(f"helm package did not make {archive.name}: {sorted(p.name for p in out_dir.iterdir())}")
    return archive
