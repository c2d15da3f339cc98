"""The test cluster: a real Kubernetes control plane with kwok-simulated DOKS nodes.

One place that knows how to start, reach, shape and stop the cluster, used by
``tests/cluster/up`` and ``down`` (command line), by pytest fixtures (see
``k8s_cluster`` at the bottom) and by Molecule's ``default`` scenario.

The control plane is real: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, started by ``kwokctl create cluster --runtime binary`` with
binaries that ``tests/cluster/build`` compiled from the Go module proxy (local
paths are given for every component, so kwokctl downloads nothing). The nodes
are API objects that the kwok controller keeps Ready, so the scheduler, the
taint manager and the node lifecycle controller all act on them for real.

A second, independent cluster (the rehearsal's: see ``rehearsal_cluster``)
takes its name and folder as parameters and a loopback-only network
(``Network.loopback``): Service ClusterIPs, pod IPs and node IPs all in
127.0.0.0/8, so whatever kube-apiserver dials (webhooks, aggregated APIs)
stays on this machine.

Layout of ``$GTC_TEST_CLUSTER_DIR`` (default ``~/.cache/gtc-demo/cluster``):
``kubeconfig`` (cluster-admin, context ``kwok-<name>``), ``kwok/`` (kwokctl's
work dir: PKI, logs, pid files), ``cluster.json`` (what ``up`` made).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NODES_MANIFEST = HERE / "nodes" / "doks-nodes.yaml"

# The kwok controller manages the nodes with this label (a label, not an
# annotation: the API server's watch then reports a node gaining it as added,
# which is how a NotReady node is handed over later).
KWOK_LABEL = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "effect": "NoSchedule"}
# A node tests add themselves carries this label, so cleanup finds it.
TEST_NODE_LABEL = "gtc-demo.test/created-by"

# Instance types of the droplets DOKS pools are made of, as node labels show them.
GPU_SIZES = {
    "h100": "gpu-h100x8-640gb",
    "h200": "gpu-h200x8-1128gb",
}


def cluster_name() -> str:
    return os.environ.get("GTC_TEST_CLUSTER_NAME", "gtc-demo-test")


def cluster_dir() -> Path:
    default = Path.home() / ".cache" / "gtc-demo" / "cluster"
    return Path(os.environ.get("GTC_TEST_CLUSTER_DIR", default)).expanduser()


def shared_dir() -> Path:
    """The team's public schemas live beside the checkout, in ../shared."""
    return Path(os.environ.get("GTC_SHARED_DIR", REPO.parent / "shared")).expanduser()


def crds_dir() -> Path:
    return shared_dir() / "schemas" / "crds"


# --------------------------------------------------------------------------
# The cluster's network


@dataclass(frozen=True)
class Network:
    """Address ranges of a cluster; ``None`` keeps the component's default.

    The default test cluster keeps the defaults (kube-apiserver's Service
    range 10.0.0.0/24, kwok's pod range 10.0.0.0/24): nothing there calls
    a webhook or an aggregated API. ``Network.loopback`` puts all three in
    127.0.0.0/8 for a cluster that runs real charts, whose webhooks and
    APIServices make kube-apiserver dial Service ClusterIPs.
    """

    service_cidr: str | None = None   # kube-apiserver and controller-manager --service-cluster-ip-range
    pod_cidr: str | None = None       # controller-manager --cluster-cidr (a /24 per node) and kwok --cidr
    node_ip: str | None = None        # kwok --node-ip: the InternalIP of a node that has none
    node_cidr_mask: int = 24

    @classmethod
    def loopback(cls, name: str) -> "Network":
        """Loopback ranges for the cluster ``name``, distinct per name.

        Services in 127.<n>.0.0/16, pods in 127.<n+1>.0.0/17 (one /24 per
        node, as DOKS gives each node a podCIDR), the node IP 127.<n+1>.255.254.
        ``n`` comes from the name, so two clusters (the lead's rehearsal and
        a helper's) do not hand out the same addresses to stand-ins that
        listen on them. 127.0.0.0/16 (everyone's 127.0.0.1) is never used.
        """
        n = 10 + 2 * (int(hashlib.sha256(name.encode()).hexdigest(), 16) % 100)
        return cls(service_cidr=f"127.{n}.0.0/16", pod_cidr=f"127.{n + 1}.0.0/17",
                   node_ip=f"127.{n + 1}.255.254")

    def is_loopback(self) -> bool:
        ranges = [self.service_cidr, self.pod_cidr, f"{self.node_ip}/32" if self.node_ip else None]
        return all(r is not None and ipaddress.ip_network(r).subnet_of(LOOPBACK) for r in ranges)

    def component_args(self) -> dict[str, list[tuple[str, str]]]:
        """Extra flags per control plane component that set these ranges."""
        args: dict[str, list[tuple[str, str]]] = {}
        if self.service_cidr:
            # kube-apiserver allocates ClusterIPs from it; the controller
            # manager keeps node pod ranges clear of it.
            args.setdefault("kube-apiserver", []).append(("service-cluster-ip-range", self.service_cidr))
            args.setdefault("kube-controller-manager", []).append(("service-cluster-ip-range", self.service_cidr))
        if self.pod_cidr:
            # The node IPAM controller gives each node spec.podCIDR(s) from
            # the cluster range; kwok takes pod IPs from the node's podCIDRs
            # and falls back to --cidr (kwok v0.8.0
            # pkg/kwok/controllers/pod_controller.go, funcPodIPWith).
            args.setdefault("kube-controller-manager", []).extend([
                ("allocate-node-cidrs", "true"), ("cluster-cidr", self.pod_cidr),
                ("node-cidr-mask-size", str(self.node_cidr_mask))])
            args.setdefault("kwok-controller", []).append(("cidr", self.pod_cidr))
        if self.node_ip:
            # kwok's node-initialize stage adds this InternalIP to a node that
            # has none (kwok v0.8.0 kustomize/stage/node/fast/node-initialize.yaml);
            # hostNetwork pods take the node's IP.
            args.setdefault("kwok-controller", []).append(("node-ip", self.node_ip))
        return args


LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def build_binaries() -> Path:
    """Build (or find cached) binaries; return their folder."""
    started = time.monotonic()
    out = subprocess.run([str(HERE / "build")], check=True, stdout=subprocess.PIPE, text=True)
    path = Path(out.stdout.strip().splitlines()[-1])
    log(f"binaries in {path} ({time.monotonic() - started:.1f}s)")
    return path


# --------------------------------------------------------------------------
# Node manifests


def doks_node(
    name: str,
    pool: str,
    *,
    gpus: int = 8,
    gpu_model: str = "h100",
    managed: bool = True,
    extra_labels: dict[str, str] | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    """A Node object shaped like a DOKS node of ``pool``.

    ``gpus`` > 0 makes a GPU node (labels, capacity, allocatable and the
    ``nvidia.com/gpu:NoSchedule`` taint as DOKS sets them); 0 a CPU node.
    ``managed=False`` leaves out the kwok annotation: the node then stays
    NotReady (as a droplet still booting) until ``make_node_ready``.
    """
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "doks.digitalocean.com/managed": "true",
        "doks.digitalocean.com/node-id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
        "doks.digitalocean.com/node-pool": pool,
        "doks.digitalocean.com/node-pool-id": str(uuid.uuid5(uuid.NAMESPACE_DNS, pool)),
        "doks.digitalocean.com/version": "1.36.3-do.0",
        "failure-domain.beta.kubernetes.io/region": "nyc2",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "region": "nyc2",
        "topology.kubernetes.io/region": "nyc2",
        "type": "kwok",
    }
    if gpus > 0:
        size = GPU_SIZES.get(gpu_model, f"gpu-{gpu_model}x{gpus}")
        labels.update({
            "doks.digitalocean.com/gpu-brand": "nvidia",
            "doks.digitalocean.com/gpu-model": gpu_model,
        })
        capacity = {"cpu": "160", "memory": "1968Gi", "pods": "110",
                    "ephemeral-storage": "720Gi", GPU_RESOURCE: str(gpus)}
        allocatable = {"cpu": "159", "memory": "1920Gi", "pods": "110",
                       "ephemeral-storage": "700Gi", GPU_RESOURCE: str(gpus)}
        taints = [dict(GPU_TAINT)]
    else:
        size = "s-4vcpu-8gb"
        capacity = {"cpu": "4", "memory": "8148Mi", "pods": "110", "ephemeral-storage": "163901Mi"}
        allocatable = {"cpu": "3900m", "memory": "6692Mi", "pods": "110", "ephemeral-storage": "151051Mi"}
        taints = []
    labels["beta.kubernetes.io/instance-type"] = size
    labels["node.kubernetes.io/instance-type"] = size
    labels.update(extra_labels or {})
    annotations = {"node.alpha.kubernetes.io/ttl": "0"}
    status: dict[str, Any] = {"capacity": capacity, "allocatable": allocatable}
    if managed:
        labels[KWOK_LABEL] = "fake"
    else:
        # What the node lifecycle controller and `kubectl get nodes` show for
        # a node whose kubelet has registered but is not ready yet.
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status["conditions"] = [{
            "type": "Ready", "status": "False", "reason": "KubeletNotReady",
            "message": "container runtime network not ready: NetworkReady=false (simulated boot)",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }]
    spec: dict[str, Any] = {"providerID": f"digitalocean://{uuid.uuid5(uuid.NAMESPACE_URL, name).int % 10**9}"}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": spec,
        "status": status,
    }


def default_nodes() -> list[dict[str, Any]]:
    import yaml  # pylint: disable=import-outside-toplevel

    return yaml.safe_load(NODES_MANIFEST.read_text())["items"]


# --------------------------------------------------------------------------
# The cluster


PROMETHEUS_RULE_STAND_IN: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "prometheusrules.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {"kind": "PrometheusRule", "listKind": "PrometheusRuleList", "plural": "prometheusrules",
                  "singular": "prometheusrule"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }}}],
    },
}


class Cluster:
    """A running test cluster and helpers to shape it."""

    def __init__(self, directory: Path, bin_dir: Path, name: str, network: Network | None = None) -> None:
        self.dir = directory
        self.bin_dir = bin_dir
        self.name = name
        self.network = network or Network()
        self.kubeconfig = directory / "kubeconfig"
        self.context = f"kwok-{name}"
        self._api: Any = None

    # -- reaching it -------------------------------------------------------

    @property
    def helm(self) -> Path:
        return self.bin_dir / "helm"

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (ansible-playbook, helm) aimed at this cluster."""
        env = dict(os.environ)
        env.update({
            "KUBECONFIG": str(self.kubeconfig),
            "K8S_AUTH_KUBECONFIG": str(self.kubeconfig),
            "K8S_AUTH_CONTEXT": self.context,
            "GTC_TEST_CLUSTER_DIR": str(self.dir),
            "GTC_TEST_CLUSTER_BIN": str(self.bin_dir),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        })
        return env

    def api_client(self) -> Any:
        if self._api is None:
            from kubernetes import config  # pylint: disable=import-outside-toplevel

            self._api = config.new_client_from_config(config_file=str(self.kubeconfig), context=self.context)
        return self._api

    def core(self) -> Any:
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        return client.CoreV1Api(self.api_client())

    def server(self) -> str:
        return self.api_client().configuration.host

    def non_loopback_addresses(self) -> list[tuple[str, str, str]]:
        """(kind, namespace/name, address) of every Service ClusterIP, pod IP and node InternalIP
        outside 127.0.0.0/8: what kube-apiserver could be made to dial off this machine. Empty
        on a ``Network.loopback`` cluster; a rehearsal asserts it after its run."""
        core = self.core()
        found: list[tuple[str, str, str]] = []
        for svc in core.list_service_for_all_namespaces().items:
            for ip in svc.spec.cluster_ips or [svc.spec.cluster_ip]:
                if ip and ip != "None" and ipaddress.ip_address(ip) not in LOOPBACK:
                    found.append(("Service", f"{svc.metadata.namespace}/{svc.metadata.name}", ip))
        for pod in core.list_pod_for_all_namespaces().items:
            ips = [p.ip for p in (pod.status.pod_ips or [])] or [pod.status.pod_ip]
            for ip in ips:
                if ip and ipaddress.ip_address(ip) not in LOOPBACK:
                    found.append(("Pod", f"{pod.metadata.namespace}/{pod.metadata.name}", ip))
        for node in core.list_node().items:
            for address in node.status.addresses or []:
                if address.type == "InternalIP" and ipaddress.ip_address(address.address) not in LOOPBACK:
                    found.append(("Node", node.metadata.name, address.address))
        return found

    # -- nodes -------------------------------------------------------------

    def create_node(self, node: dict[str, Any]) -> None:
        """Create a Node, status included, or bring an existing one in line.

        Nodes are the one kind whose status may be set on create. An existing
        node (the cluster is reused) is patched, not recreated: recreating
        would make kwok and the scheduler forget and relearn it.
        """
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        core = self.core()
        name = node["metadata"]["name"]
        try:
            core.create_node(node)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        core.patch_node(name, {"metadata": {"labels": node["metadata"].get("labels", {}),
                                            "annotations": node["metadata"].get("annotations", {})},
                               "spec": node.get("spec", {})})
        core.patch_node_status(name, {"status": {k: v for k, v in node["status"].items() if k != "conditions"}})

    def _wait_gone(self, name: str, timeout: float = 30) -> None:
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.core().read_node(name)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            time.sleep(0.2)
        raise TimeoutError(f"node {name} still exists after {timeout}s")

    def add_test_node(self, name: str, pool: str, *, owner: str = "pytest", **kwargs: Any) -> dict[str, Any]:
        """Create a DOKS-like node labelled as made by a test (see ``delete_test_nodes``)."""
        labels = dict(kwargs.pop("extra_labels", None) or {})
        labels[TEST_NODE_LABEL] = owner
        node = doks_node(name, pool, extra_labels=labels, **kwargs)
        self.create_node(node)
        return node

    def add_test_node_later(self, delay: float, name: str, pool: str, **kwargs: Any) -> threading.Timer:
        """Create a node after ``delay`` seconds, in a background thread: a node arriving late."""
        timer = threading.Timer(delay, self.add_test_node, args=(name, pool), kwargs=kwargs)
        timer.daemon = True
        timer.start()
        return timer

    def make_node_ready(self, name: str) -> None:
        """Hand a NotReady node to kwok, which then reports it Ready: a droplet finishing its boot."""
        self.core().patch_node(name, {"metadata": {"labels": {KWOK_LABEL: "fake"}}})

    def make_node_ready_later(self, delay: float, name: str) -> threading.Timer:
        timer = threading.Timer(delay, self.make_node_ready, args=(name,))
        timer.daemon = True
        timer.start()
        return timer

    def cordon(self, name: str, unschedulable: bool = True) -> None:
        self.core().patch_node(name, {"spec": {"unschedulable": unschedulable}})

    def delete_test_nodes(self, owner: str | None = None) -> None:
        selector = TEST_NODE_LABEL if owner is None else f"{TEST_NODE_LABEL}={owner}"
        for node in self.core().list_node(label_selector=selector).items:
            self.core().delete_node(node.metadata.name)

    def wait_nodes_ready(self, names: Iterable[str], timeout: float = 60) -> None:
        pending = set(names)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for node in self.core().list_node().items:
                conditions = {c.type: c.status for c in (node.status.conditions or [])}
                if node.metadata.name in pending and conditions.get("Ready") == "True":
                    pending.discard(node.metadata.name)
            if pending:
                time.sleep(0.5)
        if pending:
            raise TimeoutError(f"nodes not Ready after {timeout}s: {sorted(pending)}")

    def apply_default_nodes(self) -> list[str]:
        names = []
        for node in default_nodes():
            self.create_node(node)
            names.append(node["metadata"]["name"])
        self.wait_nodes_ready(names)
        return names

    # -- CRDs --------------------------------------------------------------

    def apply_crds(self, groups: Iterable[str] | None = None, timeout: float = 120) -> list[str]:
        """Server-side apply the CRDs under ../shared/schemas/crds (all, or the given sub-folders).

        Server-side apply because the biggest (Dynamo's) are far over the
        256 KiB a client-side apply's last-applied annotation may hold.
        Returns the CRD names, once each is Established.
        """
        import yaml  # pylint: disable=import-outside-toplevel

        root = crds_dir()
        if not root.is_dir():
            raise FileNotFoundError(f"no CRDs at {root} (set GTC_SHARED_DIR to the shared/ folder)")
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        if groups is not None:
            wanted = set(groups)
            unknown = wanted - {p.name for p in folders}
            if unknown:
                raise ValueError(f"unknown CRD folders {sorted(unknown)}; have {[p.name for p in folders]}")
            folders = [p for p in folders if p.name in wanted]
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        ext = client.ApiextensionsV1Api(self.api_client())
        names = []
        for folder in folders:
            for path in sorted(folder.glob("*.yaml")):
                loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on 6 MB
                for doc in yaml.load_all(path.read_text(), Loader=loader):  # noqa: S506 (a safe loader)
                    if not doc or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    name = doc["metadata"]["name"]
                    # No model objects: the raw answer is enough, and parsing
                    # a 1.6 MB schema into models is slow.
                    ext.patch_custom_resource_definition(
                        name, doc, field_manager="gtc-demo-tests", force=True,
                        _content_type="application/apply-patch+yaml", _preload_content=False)
                    names.append(name)
        if any(p.name == "prometheus-operator" for p in folders):
            # ../shared holds no PrometheusRule definition; in a real cluster
            # kube-prometheus-stack brings it. A stand-in that accepts any spec
            # lets the roles apply their recording rules here (promtool and a
            # real Prometheus check the rules themselves).
            ext.patch_custom_resource_definition(
                PROMETHEUS_RULE_STAND_IN["metadata"]["name"], PROMETHEUS_RULE_STAND_IN,
                field_manager="gtc-demo-tests", force=True, _content_type="application/apply-patch+yaml")
            names.append(PROMETHEUS_RULE_STAND_IN["metadata"]["name"])
        self._wait_established(names, timeout)
        return names

    def _wait_established(self, names: list[str], timeout: float) -> None:
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        ext = client.ApiextensionsV1Api(self.api_client())
        pending = set(names)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                raw = ext.read_custom_resource_definition(name, _preload_content=False)
                conditions = json.loads(raw.data).get("status", {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    pending.discard(name)
            if pending:
                time.sleep(0.5)
        if pending:
            raise TimeoutError(f"CRDs not Established after {timeout}s: {sorted(pending)}")


# --------------------------------------------------------------------------
# Starting and stopping


def _kwok_env(directory: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(directory / "kwok")
    return env


def _kwokctl(bin_dir: Path, directory: Path, *args: str, check: bool = True,
             timeout: float = 300, name: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "kwokctl"), "--name", name or cluster_name(), *args],
        env=_kwok_env(directory), check=check, text=True, timeout=timeout,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def _state_file(directory: Path) -> Path:
    return directory / "cluster.json"


def _healthy(directory: Path, name: str | None = None) -> bool:
    """True when the kubeconfig in ``directory`` reaches a live API server."""
    kubeconfig = directory / "kubeconfig"
    if not kubeconfig.exists():
        return False
    try:
        from kubernetes import client, config  # pylint: disable=import-outside-toplevel

        api = config.new_client_from_config(config_file=str(kubeconfig), context=f"kwok-{name or cluster_name()}")
        api.configuration.retries = 0
        client.VersionApi(api).get_code(_request_timeout=3)
        return True
    except Exception:  # pylint: disable=broad-except
        return False


def _wait_api(cluster: Cluster, timeout: float = 180) -> None:
    """Wait until the API answers and the controller manager has made the default service account."""
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            cluster.core().read_namespaced_service_account("default", "default", _request_timeout=5)
            return
        except ApiException as exc:
            last = exc
        except Exception as exc:  # pylint: disable=broad-except  # connection refused while starting
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"the API server was not usable after {timeout}s: {last}")


def up(*, crds: Iterable[str] | None = None, nodes: bool = True, name: str | None = None,
       directory: Path | str | None = None, network: Network | None = None) -> Cluster:
    """Start the cluster if it is not running, create the DOKS nodes; return it.

    Idempotent: a healthy running cluster is reused (its nodes re-applied).
    ``crds``: CRD folder names under ../shared/schemas/crds to apply
    (``["all"]`` for every folder; ``None`` for none, as a fresh DOKS cluster).
    ``name``/``directory`` default to $GTC_TEST_CLUSTER_NAME/$GTC_TEST_CLUSTER_DIR;
    ``network`` (e.g. ``Network.loopback(name)``) to the components' defaults.
    A reused cluster keeps the network it was started with (cluster.json);
    asking for another one is an error, not a silent mismatch.
    """
    name = name or cluster_name()
    directory = Path(directory).expanduser() if directory else cluster_dir()
    directory.mkdir(parents=True, exist_ok=True)
    network = network or Network()
    bin_dir = build_binaries()
    cluster = Cluster(directory, bin_dir, name, network)
    started = time.monotonic()
    if _healthy(directory, name):
        log(f"reusing the running cluster in {directory}")
        running = _read_network(directory)
        if running is not None and running != network:
            raise RuntimeError(f"the cluster in {directory} runs with {running}, not {network}: "
                               "bring it down first (tests/cluster/down)")
    else:
        # Leftovers of a crashed run (stale pid files, a dead etcd) go first.
        _stop(bin_dir, directory, name)
        log(f"starting the control plane ({cluster.name}) in {directory}")
        args = [
            "create", "cluster", "--runtime", "binary",
            "--kubeconfig", str(cluster.kubeconfig),
            "--etcd-binary", str(bin_dir / "etcd"),
            "--kube-apiserver-binary", str(bin_dir / "kube-apiserver"),
            "--kube-controller-manager-binary", str(bin_dir / "kube-controller-manager"),
            "--kube-scheduler-binary", str(bin_dir / "kube-scheduler"),
            "--kwok-controller-binary", str(bin_dir / "kwok"),
            "--kube-authorization", "--quiet-pull", "--wait", "3m",
        ]
        component_args: dict[str, list[tuple[str, str]]] = {
            # kwok manages only the nodes labelled for it (see KWOK_LABEL).
            "kwok-controller": [("manage-all-nodes", "false"),
                                ("manage-nodes-with-label-selector", f"{KWOK_LABEL}=fake")],
            # Loopback only: nothing of the test cluster listens on other addresses.
            "kube-apiserver": [("bind-address", "127.0.0.1")],
            "kube-controller-manager": [("bind-address", "127.0.0.1")],
            "kube-scheduler": [("bind-address", "127.0.0.1")],
        }
        for component, extra in network.component_args().items():
            component_args.setdefault(component, []).extend(extra)
        patches = _write_component_patches(directory, component_args)
        for attempt in range(1, 4):
            result = _kwokctl(bin_dir, directory, "--config", str(patches), *args, check=False, name=name)
            if result.returncode != 0:
                log(result.stdout)
                _stop(bin_dir, directory, name)
                raise RuntimeError(f"kwokctl create cluster failed ({result.returncode}); output above")
            _wait_api(cluster)
            if _kwok_works(cluster):
                break
            # kwokctl picks free ports when it creates the cluster; another cluster
            # starting at the same time can take one before a component binds it
            # (seen: kwok-controller exiting on "bind: address already in use").
            kwok_log = directory / "kwok" / "clusters" / name / "logs" / "kwok-controller.log"
            errors = [ln for ln in (kwok_log.read_text(errors="replace").splitlines() if kwok_log.exists() else [])
                      if '"level":"ERROR"' in ln]
            log(f"kwok-controller does not run (attempt {attempt}): {errors[-1][-300:] if errors else 'no error logged'}"
                "; starting again")
            _stop(bin_dir, directory, name)
        else:
            raise RuntimeError(f"the cluster in {directory} came up without a working kwok-controller three times")
    _wait_api(cluster)
    log(f"API ready at {cluster.server()} after {time.monotonic() - started:.1f}s")
    if nodes:
        names = cluster.apply_default_nodes()
        log(f"{len(names)} DOKS nodes Ready after {time.monotonic() - started:.1f}s")
    if crds:
        wanted = None if "all" in crds else list(crds)
        applied = cluster.apply_crds(wanted)
        log(f"{len(applied)} CRDs Established after {time.monotonic() - started:.1f}s")
    _state_file(directory).write_text(json.dumps({
        "name": cluster.name, "kubeconfig": str(cluster.kubeconfig), "context": cluster.context,
        "server": cluster.server(), "bin_dir": str(bin_dir),
        "network": dict(vars(network)),
    }, indent=2) + "\n")
    return cluster


def _kwok_works(cluster: Cluster, timeout: float = 30) -> bool:
    """Whether kwok-controller manages nodes: a probe node labelled for it turns Ready (then goes)."""
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    name = "kwok-probe"
    probe = doks_node(name, "kwok-probe", gpus=0, extra_labels={TEST_NODE_LABEL: "fixture"})
    try:
        cluster.create_node(probe)
        cluster.wait_nodes_ready([name], timeout=timeout)
        return True
    except TimeoutError:
        return False
    finally:
        with contextlib.suppress(ApiException):
            cluster.core().delete_node(name)
        with contextlib.suppress(TimeoutError, ApiException):
            cluster._wait_gone(name)  # pylint: disable=protected-access


def _write_component_patches(directory: Path, component_args: dict[str, list[tuple[str, str]]]) -> Path:
    """A kwokctl configuration with one patch (extra flags) per component.

    Not ``--extra-args``: kwokctl v0.8.0 files a second component's later
    flags under the wrong component when the first has several (it keys its
    index by the flag's position; pkg/kwokctl/cmd/create/cluster/cluster.go,
    mutationComponentPatches), and applies only the first patch it finds for
    a component (pkg/kwokctl/runtime/util.go, ApplyComponentPatches).
    """
    import yaml  # pylint: disable=import-outside-toplevel

    path = directory / "kwokctl-patches.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "componentsPatches": [
            {"name": component, "extraArgs": [{"key": k, "value": v} for k, v in extra]}
            for component, extra in component_args.items()
        ],
    }, sort_keys=False))
    return path


def _read_network(directory: Path) -> Network | None:
    state = _state_file(directory)
    if not state.exists():
        return None
    return Network(**json.loads(state.read_text()).get("network", {}))


def _our_pids(directory: Path) -> list[int]:
    """Processes whose command line points into our cluster folder (only ours)."""
    marker = str(directory / "kwok")
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(proc.name))
    return pids


def _stop(bin_dir: Path | None, directory: Path, name: str | None = None) -> None:
    if bin_dir is not None and (bin_dir / "kwokctl").exists() and (directory / "kwok").exists():
        with contextlib.suppress(subprocess.TimeoutExpired):
            _kwokctl(bin_dir, directory, "delete", "cluster", check=False, timeout=120, name=name)
    # Whatever kwokctl left (a crashed create leaves no record of some pids).
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _our_pids(directory)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)
    left = _our_pids(directory)
    if left:
        raise RuntimeError(f"processes still running after down: {left}")


def down(name: str | None = None, directory: Path | str | None = None) -> None:
    """Stop every process of the cluster and remove its folder's state."""
    directory = Path(directory).expanduser() if directory else cluster_dir()
    bin_dir = None
    state = _state_file(directory)
    if state.exists():
        info = json.loads(state.read_text())
        bin_dir = Path(info["bin_dir"])
        name = name or info.get("name")
    else:
        with contextlib.suppress(subprocess.CalledProcessError):
            bin_dir = build_binaries()
    _stop(bin_dir, directory, name)
    for name in ("kubeconfig", "cluster.json"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    log(f"stopped; no process left under {directory}")


# --------------------------------------------------------------------------
# pytest


_SESSION: dict[str, Any] = {"cluster": None, "users": 0, "started_here": False}


@contextlib.contextmanager
def session_cluster() -> Iterator[Cluster]:
    """Shared by every fixture that wants the cluster in one pytest process.

    Starts the cluster once, however many conftests use ``k8s_cluster``, and
    stops it after the last user, unless it was already running before the
    session (GTC_TEST_CLUSTER_KEEP=1 also keeps it, to look around after).
    """
    if _SESSION["cluster"] is None:
        _SESSION["started_here"] = not _healthy(cluster_dir())
        if not crds_dir().is_dir():
            log(f"no CRDs at {crds_dir()} (set GTC_SHARED_DIR): the cluster starts without them")
        _SESSION["cluster"] = up(crds=["all"] if crds_dir().is_dir() else None)
    _SESSION["users"] += 1
    try:
        yield _SESSION["cluster"]
    finally:
        _SESSION["users"] -= 1
        if _SESSION["users"] == 0:
            keep = os.environ.get("GTC_TEST_CLUSTER_KEEP") == "1"
            if _SESSION["started_here"] and not keep:
                down()
            _SESSION["cluster"] = None


@contextlib.contextmanager
def rehearsal_cluster(name: str = "gtc-rehearsal", directory: Path | str | None = None, *,
                      crds: Iterable[str] | None = None, nodes: bool = False,
                      keep: bool | None = None) -> Iterator[Cluster]:
    """A second, independent cluster shaped like a fresh DOKS one, for the rehearsal.

    Its own name and folder (default ``/tmp/<name>-cluster``), so it never
    touches the default test cluster; a loopback-only network
    (``Network.loopback(name)``); no CRDs of ours (a fresh DOKS cluster has
    none: the charts bring theirs); no nodes unless ``nodes`` (the fake
    cloud creates them as pools come up). Stopped at the end unless it was
    already running, or ``keep`` (default: $GTC_TEST_CLUSTER_KEEP=1).
    """
    directory = Path(directory).expanduser() if directory else Path(f"/tmp/{name}-cluster")
    started_here = not _healthy(directory, name)
    cluster = up(crds=crds, nodes=nodes, name=name, directory=directory, network=Network.loopback(name))
    try:
        yield cluster
    finally:
        if keep is None:
            keep = os.environ.get("GTC_TEST_CLUSTER_KEEP") == "1"
        if started_here and not keep:
            down(name, directory)


try:
    import pytest
except ImportError:  # the command line does not need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def k8s_cluster() -> Iterator[Cluster]:
        """The running test cluster (started on first use, stopped at the end)."""
        with session_cluster() as cluster:
            yield cluster


# --------------------------------------------------------------------------
# Command line (tests/cluster/up, tests/cluster/down)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests/cluster/fixture.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the cluster (idempotent) and create the DOKS nodes")
    p_up.add_argument("--crds", nargs="*", metavar="FOLDER",
                      help="apply CRDs from ../shared/schemas/crds: folder names, or none for all")
    p_up.add_argument("--no-nodes", action="store_true", help="do not create the DOKS nodes")
    p_up.add_argument("--loopback", action="store_true",
                      help="Service, pod and node IPs in 127.0.0.0/8 (Network.loopback): for real charts' webhooks")
    sub.add_parser("down", help="stop the cluster; no process is left")
    sub.add_parser("status", help="exit 0 if the cluster answers")
    p_crds = sub.add_parser("crds", help="apply CRDs to the running cluster")
    p_crds.add_argument("folders", nargs="*", help="folder names under ../shared/schemas/crds (default all)")
    sub.add_parser("env", help="print shell exports for KUBECONFIG and PATH")
    p_node = sub.add_parser("add-node", help="add a DOKS-like node (e.g. a pool scaling up)")
    p_node.add_argument("name")
    p_node.add_argument("--pool", required=True, help="the doks.digitalocean.com/node-pool label")
    p_node.add_argument("--gpus", type=int, default=8, help="nvidia.com/gpu per node; 0 for a CPU node")
    p_node.add_argument("--gpu-model", default="h100", choices=sorted(GPU_SIZES))
    p_node.add_argument("--not-ready", action="store_true", help="stay NotReady until `ready-node`")
    p_ready = sub.add_parser("ready-node", help="let a --not-ready node finish booting (turn Ready)")
    p_ready.add_argument("name")
    sub.add_parser("build", help="build the binaries only; print their folder")
    args = parser.parse_args(argv)

    if args.command == "up":
        crds = None if args.crds is None else (args.crds or ["all"])
        cluster = up(crds=crds, nodes=not args.no_nodes,
                     network=Network.loopback(cluster_name()) if args.loopback else None)
        print(cluster.kubeconfig)
    elif args.command == "down":
        down()
    elif args.command == "status":
        healthy = _healthy(cluster_dir())
        print("up" if healthy else "down")
        return 0 if healthy else 1
    elif args.command in ("crds", "env", "add-node", "ready-node"):
        state = _state_file(cluster_dir())
        if not state.exists():
            log("the cluster is not up: run tests/cluster/up first")
            return 1
        info = json.loads(state.read_text())
        cluster = Cluster(cluster_dir(), Path(info["bin_dir"]), info["name"])
        if args.command == "crds":
            for name in cluster.apply_crds(args.folders or None):
                print(name)
        elif args.command == "add-node":
            cluster.add_test_node(args.name, args.pool, owner="cli", gpus=args.gpus, gpu_model=args.gpu_model,
                                  managed=not args.not_ready)
            print(args.name)
        elif args.command == "ready-node":
            cluster.make_node_ready(args.name)
            cluster.wait_nodes_ready([args.name])
            print(args.name)
        else:
            print(f"export KUBECONFIG={cluster.kubeconfig}")
            print(f"export K8S_AUTH_KUBECONFIG={cluster.kubeconfig}")
            print(f"export PATH={cluster.bin_dir}:$PATH")
    elif args.command == "build":
        print(build_binaries())
    return 0


if __name__ == "__main__":
    sys.exit(main())
