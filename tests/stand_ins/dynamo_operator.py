"""The Dynamo operator (dynamo-platform 1.6.1) for DynamoGraphDeployments, as far as the demo's graph goes.

kwok runs no containers, so the operator the dynamo-platform chart deploys
never runs in the test cluster; this class does its work for the graphs there,
against the real API server, following the operator's source: ai-dynamo/dynamo
``deploy/operator/`` (see README.md for the commit; ``internal/...`` below is
under that folder). What it does, and the file each rule comes from:

Its CRDs
    The operator's Deployment runs the init container ``crd-apply``, which
    applies the Dynamo CRDs from the operator image before the manager starts
    (``deploy/helm/charts/platform/components/operator/templates/deployment.yaml``;
    the chart ships no crds/ for them). When a Deployment
    ``*-dynamo-operator-controller-manager`` with that init container appears,
    the stand-in creates or updates the CRDs from the pinned public files
    (``tests/artifacts.py``: ``schemas/crds/dynamo``), once per Deployment
    generation.
Selecting the workload provider
    Grove unless the graph's annotation ``nvidia.com/enable-grove`` is
    ``"false"`` (or Grove is off in the operator's configuration); the choice
    is written to the annotation ``nvidia.com/workload-provider`` once and
    kept after that (``internal/controller/dgd_workload_provider.go``
    ensureWorkloadProvider, providerFromCurrentIntent). The finalizer
    ``nvidia.com/finalizer`` is added, and removed when the graph is deleted
    (``internal/controller_common/finalizer.go``).
The KAI queue (Grove with KAI on)
    From the graph's metadata annotation ``nvidia.com/kai-scheduler-queue``,
    else ``dynamo`` (``internal/consts/consts.go``, ``internal/dynamo/grove.go``
    resolveKaiSchedulerQueueName). The ``scheduling.run.ai/v2`` Queue must
    exist (grove.go ensureQueueExists); if not, the reconcile fails: state
    ``failed`` and ``Ready=False`` with the error as message
    (``internal/controller/dgd_grove_program.go`` Reconcile,
    ``internal/controller/dgd_workload_program.go`` Fail) and nothing is made.
    The pods get the label ``kai.scheduler/queue`` with that queue, over any
    value the graph gave (grove.go injectKaiSchedulerIfEnabled).
Pods
    Labels as ``internal/dynamo/graph.go`` generateLabels builds them
    (selector, graph, component, component type, Dynamo namespace,
    ``nvidia.com/metrics-enabled`` unless ``nvidia.com/enable-metrics: "false"``
    (setMetricsLabels), then ``spec.labels``, then the podTemplate's labels, then
    the system labels again). The main container is the podTemplate's ``main``
    over the operator's base container: frontend port ``http`` 8000
    (``internal/dynamo/component_frontend.go``), worker ports ``system`` 9090
    and ``nixl`` 19090 and DYN_SYSTEM_* (``internal/dynamo/component_worker.go``);
    the rest of the pod spec (GPU limits, node selector, tolerations, volumes,
    runtime class) is the podTemplate's. ``sharedMemorySize`` is a memory
    ``emptyDir`` at ``/dev/shm`` (consts.go DefaultSharedMemorySize 8Gi).
    With Grove the real operator makes a PodCliqueSet and Grove makes the pods
    (named ``<graph>-0-<component>-<suffix>``); this stand-in makes those pods
    itself, owned by the graph. With Grove off it makes one Deployment per
    component (the real operator goes through a DynamoComponentDeployment,
    skipped here) and kube-controller-manager makes the pods.
    The real operator sets ``schedulerName: kai-scheduler`` with KAI on. No KAI
    scheduler runs in the test cluster, so the pods keep the default
    scheduler (the real kube-scheduler places them by their GPU requests,
    node selector and tolerations) and carry the annotation
    ``gtc-demo.test/scheduler-name: kai-scheduler`` instead; pass
    ``scheduler_name="kai-scheduler"`` to set it for real.
Services
    One per component, ``<graph>-<component>`` (lower case, dots to dashes),
    selecting component type, Dynamo namespace and component; port ``http``
    8000 to target ``http`` for a frontend, ``system`` 9090 otherwise
    (``internal/dynamo/graph.go`` GenerateComponentService,
    ``internal/controller/dgd_grove_stable_resources_reconciler.go``).
Status
    ``state`` successful once every component has its replicas Running and
    Ready (kwok marks them so), else pending; ``components`` per component;
    ``observedGeneration``; condition ``Ready`` True ``all_resources_are_ready``
    or False ``some_resources_are_not_ready`` with the generation
    (``internal/controller/dgd_workload_result.go`` checkResourcesReadiness,
    ``dgd_workload_program.go`` applyReconcileResult, readyCondition).
A new generation
    Pods of an older pod template are deleted and new ones made (a Recreate;
    Grove replaces pods the same way for a changed clique template); the
    graph is pending until they are Ready. Deployments are updated in place.
Deletion
    Everything made carries a controller owner reference to the graph, so
    kube-controller-manager's garbage collector removes it once the graph is
    gone; the stand-in removes its finalizer first.

What it does not do: planners, EPP, multinode, checkpoints, scaling adapters,
discovery RBAC, webhooks (defaulting and validation), DynamoComponentDeployments.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Optional

import yaml

from . import StandIn, now_rfc3339, raw_request, same_conditions, set_condition

API = "/apis/nvidia.com/v1beta1"
# internal/consts/consts.go
ANN_KAI_QUEUE = "nvidia.com/kai-scheduler-queue"
LABEL_KAI_QUEUE = "kai.scheduler/queue"
DEFAULT_KAI_QUEUE = "dynamo"
KAI_SCHEDULER_NAME = "kai-scheduler"
QUEUE_PATH = "/apis/scheduling.run.ai/v2/queues"
ANN_ENABLE_GROVE = "nvidia.com/enable-grove"
ANN_WORKLOAD_PROVIDER = "nvidia.com/workload-provider"
ANN_ENABLE_METRICS = "nvidia.com/enable-metrics"
LABEL_METRICS_ENABLED = "nvidia.com/metrics-enabled"
LABEL_SELECTOR = "nvidia.com/selector"
LABEL_GRAPH = "nvidia.com/dynamo-graph-deployment-name"
LABEL_COMPONENT = "nvidia.com/dynamo-component"
LABEL_NAMESPACE = "nvidia.com/dynamo-namespace"
LABEL_TYPE = "nvidia.com/dynamo-component-type"
FINALIZER = "nvidia.com/finalizer"  # internal/controller_common/finalizer.go
FRONTEND_PORT = ("http", 8000)
SYSTEM_PORT = ("system", 9090)
NIXL_PORT = ("nixl", 19090)
DEFAULT_SHARED_MEMORY = "8Gi"
# The stand-in's own marks.
LABEL_TEMPLATE_HASH = "gtc-demo.test/template-hash"
ANN_SCHEDULER_NAME = "gtc-demo.test/scheduler-name"
LABEL_STAND_IN = "gtc-demo.test/stand-in"

REASON_READY = "all_resources_are_ready"
REASON_NOT_READY = "some_resources_are_not_ready"
REASON_FAILED = "failed_to_reconcile_the_resources"
REASON_PROVIDER_UNAVAILABLE = "selected_workload_provider_unavailable"


# --------------------------------------------------------------------------
# Pure rules (no cluster): tests use them too


def resolve_kai_queue(annotations: Optional[dict[str, str]]) -> str:
    """grove.go resolveKaiSchedulerQueueName: the annotation, trimmed, else "dynamo"."""
    value = (annotations or {}).get(ANN_KAI_QUEUE)
    if value is not None and value.strip():
        return value.strip()
    return DEFAULT_KAI_QUEUE


def provider_from_intent(annotations: Optional[dict[str, str]], grove_enabled: bool) -> str:
    """dgd_workload_provider.go providerFromCurrentIntent."""
    if grove_enabled and (annotations or {}).get(ANN_ENABLE_GROVE, "").lower() != "false":
        return "grove"
    return "component"


def dynamo_namespace(dgd: dict[str, Any]) -> str:
    """api/v1beta1 ComputeDynamoNamespace: <k8s namespace>-<graph name, dots to dashes>."""
    meta = dgd["metadata"]
    return f"{meta['namespace']}-{meta['name'].replace('.', '-')}"


def resource_name(dgd: dict[str, Any], component: str) -> str:
    """graph.go GetDCDResourceName and NormalizeKubeResourceName."""
    return f"{dgd['metadata']['name']}-{component.lower()}".replace(".", "-").lower()


def components(dgd: dict[str, Any]) -> list[dict[str, Any]]:
    return list((dgd.get("spec") or {}).get("components") or [])


def pod_labels(dgd: dict[str, Any], component: dict[str, Any], queue: Optional[str] = None) -> dict[str, str]:
    """graph.go generateLabels (and grove.go's queue label when ``queue`` is given)."""
    name = component["name"]
    system = {LABEL_SELECTOR: resource_name(dgd, name), LABEL_GRAPH: dgd["metadata"]["name"], LABEL_COMPONENT: name}
    if component.get("type"):
        system[LABEL_TYPE] = component["type"]
    system[LABEL_NAMESPACE] = dynamo_namespace(dgd)
    labels = dict(system)
    if (dgd["metadata"].get("annotations") or {}).get(ANN_ENABLE_METRICS) != "false":
        labels[LABEL_METRICS_ENABLED] = "true"
    labels.update((dgd.get("spec") or {}).get("labels") or {})
    labels.update(((component.get("podTemplate") or {}).get("metadata") or {}).get("labels") or {})
    labels.update(system)
    if queue is not None:
        labels[LABEL_KAI_QUEUE] = queue
    return labels


def _merge_env(base: list[dict[str, Any]], user: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = {e["name"] for e in user}
    return [e for e in base if e["name"] not in names] + list(user)


def base_container(dgd: dict[str, Any], component: dict[str, Any]) -> dict[str, Any]:
    """The operator's main container before the podTemplate's (component_frontend.go, component_worker.go)."""
    env = [{"name": "DYN_NAMESPACE", "value": dynamo_namespace(dgd)},
           {"name": "DYN_COMPONENT", "value": component["name"]}]
    if component.get("type") == "frontend":
        return {"name": "main", "command": ["python3"], "args": ["-m", "dynamo.frontend"],
                "ports": [{"name": FRONTEND_PORT[0], "containerPort": FRONTEND_PORT[1], "protocol": "TCP"}],
                "env": env + [{"name": "DYNAMO_PORT", "value": str(FRONTEND_PORT[1])},
                              {"name": "DYN_HTTP_PORT", "value": str(FRONTEND_PORT[1])}]}
    return {"name": "main",
            "ports": [{"name": SYSTEM_PORT[0], "containerPort": SYSTEM_PORT[1], "protocol": "TCP"},
                      {"name": NIXL_PORT[0], "containerPort": NIXL_PORT[1], "protocol": "TCP"}],
            "env": env + [{"name": "DYN_SYSTEM_ENABLED", "value": "true"},
                          {"name": "DYN_SYSTEM_PORT", "value": str(SYSTEM_PORT[1])}]}


def pod_spec(dgd: dict[str, Any], component: dict[str, Any], scheduler_name: Optional[str] = None) -> dict[str, Any]:
    """The pod spec of a component: its podTemplate's spec with the operator's main container under it."""
    spec = copy.deepcopy(((component.get("podTemplate") or {}).get("spec")) or {})
    containers = spec.get("containers") or []
    user_main = next((c for c in containers if c.get("name") == "main"), None)
    main = base_container(dgd, component)
    if user_main is not None:
        for key, value in user_main.items():
            if key == "env":
                main["env"] = _merge_env(main.get("env", []), value)
            elif key == "ports" and not value:
                continue
            else:
                main[key] = copy.deepcopy(value)
    main.setdefault("image", "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.6.1")
    # Shared memory for every component (consts.go KubeValueNameSharedMemory, DefaultSharedMemorySize).
    size = component.get("sharedMemorySize") or DEFAULT_SHARED_MEMORY
    spec["volumes"] = list(spec.get("volumes") or []) + [
        {"name": "shared-memory", "emptyDir": {"medium": "Memory", "sizeLimit": size}}]
    main["volumeMounts"] = list(main.get("volumeMounts") or []) + [{"name": "shared-memory", "mountPath": "/dev/shm"}]
    spec["containers"] = [main] + [c for c in containers if c.get("name") != "main"]
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    return spec


def template_hash(dgd: dict[str, Any], component: dict[str, Any], queue: Optional[str]) -> str:
    """What decides whether a pod is current: its component's spec and the graph's labels and queue."""
    source = {"component": component, "labels": (dgd.get("spec") or {}).get("labels"), "queue": queue,
              "metrics": (dgd["metadata"].get("annotations") or {}).get(ANN_ENABLE_METRICS)}
    return hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:10]


def service_for(dgd: dict[str, Any], component: dict[str, Any]) -> dict[str, Any]:
    """graph.go GenerateComponentService."""
    if component.get("type") == "frontend":
        port = {"name": "http", "port": FRONTEND_PORT[1], "targetPort": FRONTEND_PORT[0], "protocol": "TCP"}
    else:
        port = {"name": SYSTEM_PORT[0], "port": SYSTEM_PORT[1], "targetPort": SYSTEM_PORT[0], "protocol": "TCP"}
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": resource_name(dgd, component["name"]), "namespace": dgd["metadata"]["namespace"],
                     "labels": {LABEL_GRAPH: dgd["metadata"]["name"], LABEL_COMPONENT: component["name"],
                                LABEL_STAND_IN: "dynamo-operator"},
                     "ownerReferences": [owner_reference(dgd)]},
        "spec": {"selector": {LABEL_TYPE: component.get("type", ""), LABEL_NAMESPACE: dynamo_namespace(dgd),
                              LABEL_COMPONENT: component["name"]},
                 "ports": [port]},
    }


def owner_reference(dgd: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment", "name": dgd["metadata"]["name"],
            "uid": dgd["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def parse_operator_config(text: str) -> dict[str, bool]:
    """The orchestrator switches of the operator's config.yaml (components/operator/templates/operator-config.yaml)."""
    doc = yaml.safe_load(text) or {}
    orchestrators = doc.get("orchestrators") or {}
    return {"grove": bool((orchestrators.get("grove") or {}).get("enabled")),
            "kai_scheduler": bool((orchestrators.get("kaiScheduler") or {}).get("enabled"))}


def dynamo_crds() -> list[dict[str, Any]]:
    """The pinned public Dynamo CRDs (what the operator image's crd-apply holds)."""
    import sys  # pylint: disable=import-outside-toplevel
    from pathlib import Path  # pylint: disable=import-outside-toplevel

    tests = str(Path(__file__).resolve().parents[1])
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import artifacts  # pylint: disable=import-outside-toplevel

    folder = artifacts.resolve_dir("schemas/crds/dynamo")
    crds = [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))]
    if not crds:
        raise FileNotFoundError(f"no Dynamo CRDs in {folder}")
    return crds


# --------------------------------------------------------------------------
# The controller


class DynamoOperator(StandIn):
    """``DynamoOperator(api_client).start()`` ... ``.stop()``; ``.log`` lists what it did.

    ``grove`` / ``kai_scheduler``: the operator's orchestrator switches; by
    default read from the ``*-dynamo-operator-config`` ConfigMap the
    dynamo-platform chart installs (both on when none is found).
    ``namespace``: watch one namespace (default all). ``scheduler_name``: set
    on the pods (default: leave the cluster's default scheduler; see above).
    """

    name = "dynamo-operator"
    interval = 1.0  # seconds between passes: each pass lists what it watches

    def __init__(self, api_client: Any, *, grove: Optional[bool] = None, kai_scheduler: Optional[bool] = None,
                 namespace: Optional[str] = None, scheduler_name: Optional[str] = None) -> None:
        super().__init__(api_client)
        self.grove = grove
        self.kai_scheduler = kai_scheduler
        self.namespace = namespace
        self.scheduler_name = scheduler_name
        self._config_seen: Optional[tuple[bool, bool, str]] = None
        self._crds_applied: set[tuple[str, Any]] = set()

    def loops(self):
        return [self.apply_crds, self.reconcile_all]

    # -- crd-apply ---------------------------------------------------------------

    def apply_crds(self) -> None:
        deployments = self._req("GET", "/apis/apps/v1/deployments").get("items", [])
        for dep in deployments:
            meta = dep["metadata"]
            if not meta["name"].endswith("-dynamo-operator-controller-manager"):
                continue
            init = (dep["spec"]["template"]["spec"].get("initContainers") or [])
            if not any(c.get("name") == "crd-apply" for c in init):
                continue
            key = (meta["uid"], meta.get("generation"))
            if key in self._crds_applied:
                continue
            applied = [self._apply_crd(crd) for crd in dynamo_crds()]
            self._crds_applied.add(key)
            self.record(f"crd-apply for {meta['namespace']}/{meta['name']}: "
                        + ", ".join(f"{name} {what}" for name, what in applied))

    def _apply_crd(self, crd: dict[str, Any]) -> tuple[str, str]:
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        name = crd["metadata"]["name"]
        have = self._get_or_none(f"{path}/{name}")
        if have is None:
            self._req("POST", path, crd)
            return name, "created"
        if have["spec"] == crd["spec"]:
            return name, "unchanged"
        body = {**crd, "metadata": {**crd["metadata"], "resourceVersion": have["metadata"]["resourceVersion"]}}
        self._req("PUT", f"{path}/{name}", body)
        return name, "updated"

    # -- API helpers -----------------------------------------------------------

    def _req(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
             query: Optional[list[tuple[str, str]]] = None) -> Any:
        return raw_request(self.api_client, method, path, body, content_type=content_type, query=query)

    def _get_or_none(self, path: str) -> Optional[dict[str, Any]]:
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            return self._req("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _switches(self) -> tuple[bool, bool]:
        grove, kai, source = self.grove, self.kai_scheduler, "constructor"
        if grove is None or kai is None:
            found = None
            for cm in self._req("GET", "/api/v1/configmaps").get("items", []):
                if cm["metadata"]["name"].endswith("-dynamo-operator-config") and "config.yaml" in (cm.get("data") or {}):
                    found = cm
                    break
            parsed = parse_operator_config(found["data"]["config.yaml"]) if found else {"grove": True, "kai_scheduler": True}
            source = f"ConfigMap {found['metadata']['namespace']}/{found['metadata']['name']}" if found else "defaults"
            grove = parsed["grove"] if grove is None else grove
            kai = parsed["kai_scheduler"] if kai is None else kai
        if self._config_seen != (grove, kai, source):
            self._config_seen = (grove, kai, source)
            self.record(f"orchestrators from {source}: grove={grove} kaiScheduler={kai}")
        return grove, kai

    def _graphs_path(self, namespace: Optional[str] = None) -> str:
        ns = namespace or self.namespace
        return f"{API}/namespaces/{ns}/dynamographdeployments" if ns else f"{API}/dynamographdeployments"

    # -- the loop --------------------------------------------------------------

    def reconcile_all(self) -> None:
        graphs = self._req("GET", self._graphs_path()).get("items", [])
        if not graphs:
            return
        grove, kai = self._switches()
        for dgd in graphs:
            self.reconcile(dgd, grove, kai)

    def reconcile(self, dgd: dict[str, Any], grove: bool, kai: bool) -> None:
        meta = dgd["metadata"]
        ref = f"{meta['namespace']}/{meta['name']}"
        path = f"{self._graphs_path(meta['namespace'])}/{meta['name']}"
        if meta.get("deletionTimestamp"):
            if FINALIZER in (meta.get("finalizers") or []):
                finalizers = [f for f in meta["finalizers"] if f != FINALIZER]
                self._req("PATCH", path, {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}},
                          content_type="application/merge-patch+json")
                self.record(f"{ref}: deleted; finalizer removed (the garbage collector removes what it owned)")
            return

        annotations = meta.get("annotations") or {}
        provider = annotations.get(ANN_WORKLOAD_PROVIDER) or provider_from_intent(annotations, grove)
        patch: dict[str, Any] = {}
        if annotations.get(ANN_WORKLOAD_PROVIDER) != provider:
            patch.setdefault("annotations", {})[ANN_WORKLOAD_PROVIDER] = provider
        if FINALIZER not in (meta.get("finalizers") or []):
            patch["finalizers"] = list(meta.get("finalizers") or []) + [FINALIZER]
        if patch:
            patch["resourceVersion"] = meta["resourceVersion"]
            dgd = self._req("PATCH", path, {"metadata": patch}, content_type="application/merge-patch+json")
            meta = dgd["metadata"]
            self.record(f"{ref}: workload provider {provider}, finalizer {FINALIZER}")

        generation = meta.get("generation", 1)
        if provider == "grove" and not grove:
            self._fail(dgd, REASON_PROVIDER_UNAVAILABLE,
                       'selected workload provider "grove" is unavailable because Grove is disabled')
            return

        queue: Optional[str] = None
        if provider == "grove" and kai:
            queue = resolve_kai_queue(meta.get("annotations"))
            if self._get_or_none(f"{QUEUE_PATH}/{queue}") is None:
                self._fail(dgd, REASON_FAILED, (
                    "failed to reconcile Grove workloads: failed to determine kai-scheduler queue: kai-scheduler queue "
                    f"validation failed: queue '{queue}' not found in cluster. Ensure the queue exists before using "
                    "kai-scheduler"))
                return

        statuses: dict[str, dict[str, Any]] = {}
        not_ready: list[str] = []
        for component in components(dgd):
            self._ensure_service(dgd, component)
            if provider == "grove":
                status, reason = self._reconcile_pods(dgd, component, queue, kai)
            else:
                status, reason = self._reconcile_deployment(dgd, component)
            statuses[component["name"]] = status
            if reason:
                not_ready.append(f"{status['componentNames'][0]}: {reason}")
        ready = not not_ready
        condition = {"type": "Ready", "status": "True" if ready else "False", "observedGeneration": generation,
                     "reason": REASON_READY if ready else REASON_NOT_READY,
                     "message": "All resources are ready" if ready else "Resources not ready: " + "; ".join(sorted(not_ready)),
                     "lastTransitionTime": now_rfc3339()}
        self._write_status(dgd, {"state": "successful" if ready else "pending", "components": statuses,
                                 "observedGeneration": generation}, condition)

    # -- parts -------------------------------------------------------------------

    def _fail(self, dgd: dict[str, Any], reason: str, message: str) -> None:
        """dgd_workload_program.go Fail: state failed, Ready False for the generation (observedGeneration untouched)."""
        condition = {"type": "Ready", "status": "False", "observedGeneration": dgd["metadata"].get("generation", 1),
                     "reason": reason, "message": message, "lastTransitionTime": now_rfc3339()}
        status = {k: v for k, v in (dgd.get("status") or {}).items() if k not in ("conditions", "state")}
        self._write_status(dgd, {**status, "state": "failed"}, condition)

    def _write_status(self, dgd: dict[str, Any], fields: dict[str, Any], condition: dict[str, Any]) -> None:
        meta = dgd["metadata"]
        old = dgd.get("status") or {}
        conditions = set_condition(old.get("conditions") or [], condition)
        new = {**fields, "conditions": conditions}
        unchanged = same_conditions(old.get("conditions"), conditions) and all(
            old.get(k) == v for k, v in fields.items())
        if unchanged:
            return
        self._req("PATCH", f"{self._graphs_path(meta['namespace'])}/{meta['name']}/status", {"status": new},
                  content_type="application/merge-patch+json")
        self.record(f"{meta['namespace']}/{meta['name']}: state {new['state']} generation {meta.get('generation')}"
                    f" Ready={condition['status']} ({condition['reason']}: {condition['message']})")

    def _ensure_service(self, dgd: dict[str, Any], component: dict[str, Any]) -> None:
        want = service_for(dgd, component)
        ns, name = want["metadata"]["namespace"], want["metadata"]["name"]
        have = self._get_or_none(f"/api/v1/namespaces/{ns}/services/{name}")
        if have is None:
            self._req("POST", f"/api/v1/namespaces/{ns}/services", want)
            self.record(f"created Service {ns}/{name} port {want['spec']['ports'][0]['port']}")
        elif have["spec"].get("selector") != want["spec"]["selector"] or [
                (p.get("name"), p.get("port"), p.get("targetPort")) for p in have["spec"].get("ports", [])] != [
                (p["name"], p["port"], p["targetPort"]) for p in want["spec"]["ports"]]:
            self._req("PATCH", f"/api/v1/namespaces/{ns}/services/{name}",
                      {"spec": {"selector": want["spec"]["selector"], "ports": want["spec"]["ports"]}},
                      content_type="application/merge-patch+json")
            self.record(f"updated Service {ns}/{name}")

    def _pod_metadata(self, dgd: dict[str, Any], component: dict[str, Any], queue: Optional[str], kai: bool,
                      digest: str) -> dict[str, Any]:
        labels = pod_labels(dgd, component, queue)
        labels[LABEL_TEMPLATE_HASH] = digest
        labels[LABEL_STAND_IN] = "dynamo-operator"
        annotations = dict(((component.get("podTemplate") or {}).get("metadata") or {}).get("annotations") or {})
        if kai and not self.scheduler_name:
            annotations[ANN_SCHEDULER_NAME] = KAI_SCHEDULER_NAME
        return {"labels": labels, "annotations": annotations}

    def _reconcile_pods(self, dgd: dict[str, Any], component: dict[str, Any], queue: Optional[str],
                        kai: bool) -> tuple[dict[str, Any], str]:
        """Grove's pods of one clique: Recreate on a new template, then top up to the replicas."""
        ns, graph, name = dgd["metadata"]["namespace"], dgd["metadata"]["name"], component["name"]
        replicas = int(component.get("replicas", 1))
        digest = template_hash(dgd, component, queue)
        clique = f"{graph}-0-{name.lower()}"
        selector = f"{LABEL_GRAPH}={graph},{LABEL_COMPONENT}={name}"
        pods = self._req("GET", f"/api/v1/namespaces/{ns}/pods", query=[("labelSelector", selector)]).get("items", [])
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        old = [p for p in live if p["metadata"]["labels"].get(LABEL_TEMPLATE_HASH) != digest]
        for pod in old:
            self._req("DELETE", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}")
            self.record(f"deleted Pod {ns}/{pod['metadata']['name']} (older template)")
        current = [p for p in live if p not in old]
        extra = current[replicas:]
        for pod in extra:
            self._req("DELETE", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}")
            self.record(f"deleted Pod {ns}/{pod['metadata']['name']} (scale down)")
        current = current[:replicas]
        terminating = [p for p in pods if p["metadata"].get("deletionTimestamp")]
        # A replacement waits for the old pods to go (their GPUs are needed).
        if not old and not terminating:
            scheduler = self.scheduler_name if (kai and self.scheduler_name) else None
            taken = {p["metadata"]["name"] for p in pods}
            slots = (f"{clique}-{hashlib.sha256(f'{digest}/{i}'.encode()).hexdigest()[:5]}" for i in range(4 * replicas))
            names = [n for n in slots if n not in taken][:replicas - len(current)]
            for pod_name in names:
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": pod_name, "namespace": ns,
                                    "ownerReferences": [owner_reference(dgd)],
                                    **self._pod_metadata(dgd, component, queue, kai, digest)},
                       "spec": pod_spec(dgd, component, scheduler)}
                created = self._req("POST", f"/api/v1/namespaces/{ns}/pods", pod)
                current.append(created)
                self.record(f"created Pod {ns}/{created['metadata']['name']} for {graph}/{name}"
                            + (f" (queue {queue})" if queue else ""))
        ready = sum(1 for p in current if pod_ready(p))
        scheduled = sum(1 for p in current if (p.get("spec") or {}).get("nodeName"))
        status = {"componentKind": "PodClique", "componentNames": [clique], "replicas": replicas,
                  "updatedReplicas": len(current), "readyReplicas": ready, "availableReplicas": ready,
                  "scheduledReplicas": scheduled}
        reason = "" if ready == replicas and not old and not terminating else f"{ready}/{replicas} ready"
        return status, reason

    def _reconcile_deployment(self, dgd: dict[str, Any], component: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Grove off: a Deployment per component; kube-controller-manager makes and rolls its pods."""
        ns, name = dgd["metadata"]["namespace"], resource_name(dgd, component["name"])
        replicas = int(component.get("replicas", 1))
        digest = template_hash(dgd, component, None)
        labels = pod_labels(dgd, component)
        template = {"metadata": {**self._pod_metadata(dgd, component, None, False, digest)},
                    "spec": pod_spec(dgd, component)}
        want = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "labels": {LABEL_GRAPH: dgd["metadata"]["name"],
                                                                       LABEL_COMPONENT: component["name"],
                                                                       LABEL_STAND_IN: "dynamo-operator"},
                             "ownerReferences": [owner_reference(dgd)]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {LABEL_SELECTOR: labels[LABEL_SELECTOR]}},
                         "template": template}}
        path = f"/apis/apps/v1/namespaces/{ns}/deployments"
        have = self._get_or_none(f"{path}/{name}")
        if have is None:
            have = self._req("POST", path, want)
            self.record(f"created Deployment {ns}/{name}")
        elif (have["spec"]["template"]["metadata"].get("labels") or {}).get(LABEL_TEMPLATE_HASH) != digest or \
                have["spec"].get("replicas") != replicas:
            have = self._req("PUT", f"{path}/{name}", {**want, "metadata": {**want["metadata"],
                                                                            "resourceVersion": have["metadata"]["resourceVersion"]}})
            self.record(f"updated Deployment {ns}/{name}")
        status = have.get("status") or {}
        current = have["metadata"].get("generation") == status.get("observedGeneration")
        ready = int(status.get("readyReplicas") or 0)
        updated = int(status.get("updatedReplicas") or 0)
        out = {"componentKind": "Deployment", "componentNames": [name], "replicas": replicas,
               "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": int(status.get("availableReplicas") or 0)}
        ok = current and ready == replicas and updated == replicas and int(status.get("replicas") or 0) == replicas
        return out, "" if ok else f"{ready}/{replicas} ready"
