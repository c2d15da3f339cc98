"""The fake DigitalOcean's cluster made real: the test control plane stands in for every DOKS cluster.

``FakeDigitalOcean(token, cluster_backend=KubeBackend.from_kubeconfig(path, context))``
(or ``FakeServer(token, cluster_backend=...)``) changes two things:

- ``GET /v2/kubernetes/clusters/{id}/kubeconfig`` answers with a kubeconfig
  for the test control plane, shaped like the one DOKS hands out: the API
  server, its CA as ``certificate-authority-data`` and a user holding a
  bearer token that expires. DigitalOcean's spec
  (DigitalOcean-public.v2.bundled.yaml, ``kubernetes_get_kubeconfig`` and the
  parameter ``kubernetes_expiry_seconds``) says the token lives
  ``expiry_seconds`` (0 or absent: 7 days). The token here is a real one:
  a TokenRequest for a ServiceAccount bound to ``cluster-admin`` (a DOKS
  kubeconfig's user is an admin of its cluster).
- The nodes of every node pool exist as Node objects in the test cluster
  (kwok keeps them), shaped like DOKS nodes of that pool: the labels DOKS
  sets (``tests/cluster/fixture.py``'s ``doks_node``) plus the pool's own
  labels and taints, and the GPUs of the pool's Droplet size
  (``gpu-h100x8-640gb`` -> 8 ``nvidia.com/gpu``, model ``h100``). A node of
  the API that is still ``provisioning`` is a NotReady Node with no
  allocatable GPU (a droplet booting); once the API reports it ``running``
  its kubelet turns Ready and, ``gpu_plugin_seconds`` later, the NVIDIA
  device plugin advertises the GPUs, which is what ``wait_for_gpu_nodes``
  waits for on DOKS. Deleting a node (a pool shrinking, a pool or the
  cluster deleted) deletes its Node.

Every cluster of the fake shares the one control plane, so tests should make
one cluster at a time (as the demo does).
"""
from __future__ import annotations

import base64
import re
import threading
import time
from pathlib import Path
from typing import Any

from helpers import cluster_support

# The label the test cluster's helpers use for nodes a test made (delete_test_nodes finds them).
OWNER = "fake-do"
SA_NAMESPACE = "kube-system"
SEVEN_DAYS = 7 * 24 * 3600
# The API server refuses a TokenRequest shorter than 10 minutes
# (kubernetes pkg/apis/authentication/validation: "may not specify a duration less than 10 minutes").
MIN_TOKEN_SECONDS = 600
# gpu-h100x8-640gb, gpu-h200x8-1128gb-contracted, gpu-mi300x1-192gb: model and count.
GPU_SLUG = re.compile(r"^gpu-([a-z0-9]+?)x([0-9]+)-")


def gpus_of(size: str) -> tuple[str, int]:
    """(gpu model, count) of a Droplet size slug; ("", 0) for a CPU size."""
    match = GPU_SLUG.match(size)
    if not match:
        return "", 0
    return match.group(1), int(match.group(2))


class KubeBackend:
    """Mirrors the fake's DOKS clusters onto a real API server."""

    def __init__(self, cluster: Any, server_url: str | None = None, ca_data: str | None = None, *,
                 gpu_plugin_seconds: float = 1.0) -> None:
        """``cluster``: the test cluster (tests/cluster/fixture.py's ``Cluster``), or a kubernetes ApiClient
        with ``server_url`` and ``ca_data`` (base64 PEM) given."""
        if server_url is None or ca_data is None:
            found = self.from_kubeconfig(cluster.kubeconfig, cluster.context)
            server_url = server_url or found.server_url
            ca_data = ca_data or found.ca_data
        self.api = cluster.api_client() if hasattr(cluster, "api_client") else cluster
        self.server_url = server_url
        self.ca_data = ca_data  # base64 PEM, as in a kubeconfig's certificate-authority-data
        self.gpu_plugin_seconds = gpu_plugin_seconds
        self.fixture = cluster_support()
        # node name -> {"phase": "booting" | "ready" | "gpus", "since": monotonic, "cluster": id}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.accounts: set[str] = set()  # cluster ids with an admin ServiceAccount
        self._lock = threading.RLock()

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None, **kwargs: Any) -> "KubeBackend":
        """The backend for the cluster an admin kubeconfig (the test cluster's) reaches."""
        import yaml  # pylint: disable=import-outside-toplevel
        from kubernetes import config  # pylint: disable=import-outside-toplevel

        api = config.new_client_from_config(config_file=str(path), context=context)
        doc = yaml.safe_load(Path(path).read_text())
        name = context or doc.get("current-context")
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        ca = cluster.get("certificate-authority-data")
        if not ca:
            ca_path = Path(cluster["certificate-authority"])
            if not ca_path.is_absolute():
                ca_path = Path(path).parent / ca_path
            ca = base64.b64encode(ca_path.read_bytes()).decode()
        return cls(api, cluster["server"], ca, **kwargs)  # type: ignore[arg-type]

    # -- the kubeconfig --------------------------------------------------

    def _core(self) -> Any:
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        return client.CoreV1Api(self.api)

    def _admin_account(self, cluster_id: str) -> str:
        """A ServiceAccount bound to cluster-admin for this DOKS cluster (made once)."""
        from kubernetes import client  # pylint: disable=import-outside-toplevel
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        name = "doks-admin-" + cluster_id[:8]
        labels = {self.fixture.TEST_NODE_LABEL: OWNER}
        try:
            self._core().create_namespaced_service_account(
                SA_NAMESPACE, {"metadata": {"name": name, "labels": labels}})
        except ApiException as exc:
            if exc.status != 409:
                raise
        binding = {"metadata": {"name": name, "labels": labels},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": SA_NAMESPACE}]}
        try:
            client.RbacAuthorizationV1Api(self.api).create_cluster_role_binding(binding)
        except ApiException as exc:
            if exc.status != 409:
                raise
        self.accounts.add(cluster_id)
        return name

    def token(self, cluster_id: str, expiry_seconds: int) -> tuple[str, int]:
        """A fresh bearer token and the lifetime the API server granted."""
        seconds = expiry_seconds or SEVEN_DAYS
        seconds = max(seconds, MIN_TOKEN_SECONDS)
        account = self._admin_account(cluster_id)
        answer = self._core().create_namespaced_service_account_token(
            account, SA_NAMESPACE, {"spec": {"expirationSeconds": seconds}})
        granted = int((answer.spec.expiration_seconds if answer.spec else None) or seconds)
        return answer.status.token, granted

    def kubeconfig(self, cluster: dict[str, Any], expiry_seconds: int = 0) -> str:
        """DOKS's kubeconfig shape (names do-<region>-<cluster>, user <name>-admin) for the test cluster."""
        import yaml  # pylint: disable=import-outside-toplevel

        token, _granted = self.token(cluster["id"], expiry_seconds)
        name = "do-{0}-{1}".format(cluster["region"], cluster["name"])
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"cluster": {"certificate-authority-data": self.ca_data, "server": self.server_url},
                          "name": name}],
            "contexts": [{"context": {"cluster": name, "user": name + "-admin"}, "name": name}],
            "current-context": name,
            "preferences": {},
            "users": [{"name": name + "-admin", "user": {"token": token}}],
        }
        return yaml.safe_dump(doc, sort_keys=False)

    # -- nodes -----------------------------------------------------------

    def _node(self, cluster: dict[str, Any], pool: dict[str, Any], node: dict[str, Any], ready: bool,
              gpus_on: bool) -> dict[str, Any]:
        model, count = gpus_of(pool["size"])
        extra = {
            # What DOKS puts on a node of this pool and cluster.
            "doks.digitalocean.com/node-id": node["id"],
            "doks.digitalocean.com/node-pool-id": pool["id"],
            "doks.digitalocean.com/version": cluster["version"],
            "failure-domain.beta.kubernetes.io/region": cluster["region"],
            "region": cluster["region"],
            "topology.kubernetes.io/region": cluster["region"],
            "beta.kubernetes.io/instance-type": pool["size"],
            "node.kubernetes.io/instance-type": pool["size"],
            self.fixture.TEST_NODE_LABEL: OWNER,
        }
        extra.update({str(k): str(v) for k, v in (pool.get("labels") or {}).items()})
        manifest = self.fixture.doks_node(node["name"], pool["name"], gpus=count, gpu_model=model or "h100",
                                          managed=ready, extra_labels=extra)
        spec = manifest["spec"]
        taints = list(spec.get("taints") or [])
        for taint in pool.get("taints") or []:
            entry = {"key": taint["key"], "effect": taint["effect"]}
            if taint.get("value"):
                entry["value"] = taint["value"]
            if entry not in taints:
                taints.append(entry)
        if taints:
            spec["taints"] = taints
        spec["providerID"] = "digitalocean://" + str(node["droplet_id"])
        if count and not gpus_on:
            # The device plugin has not registered yet: no nvidia.com/gpu at all.
            for key in ("capacity", "allocatable"):
                manifest["status"][key].pop(self.fixture.GPU_RESOURCE, None)
        return manifest

    def sync(self, clusters: dict[str, dict[str, Any]], now: float | None = None) -> None:
        """Bring the Node objects in line with the fake's node pools (called on every tick)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            wanted: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
            for cluster in clusters.values():
                if cluster.get("gone_at"):
                    continue
                for pool in cluster["pools"].values():
                    for node in pool["nodes"]:
                        if not node.get("gone_at"):
                            wanted[node["name"]] = (cluster, pool, node)
            for name in [n for n in self.nodes if n not in wanted]:
                self._try(self._delete, name)
            live = {cid for cid, c in clusters.items() if not c.get("gone_at")}
            for cid in [c for c in self.accounts if c not in live]:
                self._try(self._forget_cluster, cid)
            for name, (cluster, pool, node) in wanted.items():
                self._try(self._advance, name, cluster, pool, node, now)

    def _try(self, func: Any, *args: Any) -> None:
        try:
            func(*args)
        except Exception as exc:  # pylint: disable=broad-except  # kept for the test to see, not raised in a request
            self.errors.append("{0}{1}: {2}".format(func.__name__, args[:1], exc))

    def _create(self, manifest: dict[str, Any]) -> None:
        """Create a Node, status included (nodes are the one kind whose status may be set on create)."""
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            self._core().create_node(manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # Left over from an earlier fake in the same cluster: start it over.
            self._core().delete_node(manifest["metadata"]["name"])
            self._core().create_node(manifest)

    def _advance(self, name: str, cluster: dict[str, Any], pool: dict[str, Any], node: dict[str, Any],
                 now: float) -> None:
        seen = self.nodes.get(name)
        running = node["ready_at"] <= now
        has_gpus = gpus_of(pool["size"])[1] > 0
        shape = (tuple(sorted((pool.get("labels") or {}).items())),
                 tuple(sorted((t["key"], t.get("value") or "", t["effect"]) for t in pool.get("taints") or [])))
        if seen is None:
            self._create(self._node(cluster, pool, node, ready=running, gpus_on=False))
            seen = self.nodes[name] = {"phase": "ready" if running else "booting", "since": now,
                                       "cluster": cluster["id"], "shape": shape}
        if seen["phase"] == "booting" and running:
            # The kubelet reports Ready: hand the node to kwok (tests/cluster/fixture.py's make_node_ready).
            self._core().patch_node(name, {"metadata": {"labels": {self.fixture.KWOK_LABEL: "fake"}}})
            seen.update(phase="ready", since=now)
        if seen["phase"] == "ready" and now - seen["since"] >= (self.gpu_plugin_seconds if has_gpus else 0):
            if has_gpus:
                status = self._node(cluster, pool, node, ready=True, gpus_on=True)["status"]
                self._core().patch_node_status(name, {"status": {"capacity": status["capacity"],
                                                                 "allocatable": status["allocatable"]}})
            seen.update(phase="gpus", since=now)
        if seen["shape"] != shape:
            # An updated pool's labels and taints reach its nodes (DOKS applies them to running nodes).
            manifest = self._node(cluster, pool, node, ready=seen["phase"] != "booting",
                                  gpus_on=seen["phase"] == "gpus")
            old = {k: None for k in dict(seen["shape"][0])}
            labels = dict(old, **manifest["metadata"]["labels"])
            self._core().patch_node(name, {"metadata": {"labels": labels},
                                           "spec": {"taints": manifest["spec"].get("taints") or []}})
            seen["shape"] = shape

    def _delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            self._core().delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        self.nodes.pop(name, None)

    def _forget_cluster(self, cluster_id: str) -> None:
        """A deleted cluster's credentials stop working: its ServiceAccount goes (bound tokens die with it)."""
        from kubernetes import client  # pylint: disable=import-outside-toplevel
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        name = "doks-admin-" + cluster_id[:8]
        for call in (lambda: client.RbacAuthorizationV1Api(self.api).delete_cluster_role_binding(name),
                     lambda: self._core().delete_namespaced_service_account(name, SA_NAMESPACE)):
            try:
                call()
            except ApiException as exc:
                if exc.status != 404:
                    raise
        self.accounts.discard(cluster_id)

    def clear(self) -> None:
        """Forget every cluster: delete every Node, ServiceAccount and binding the backend made."""
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        selector = "{0}={1}".format(self.fixture.TEST_NODE_LABEL, OWNER)
        with self._lock:
            for node in self._core().list_node(label_selector=selector).items:
                self._try(self._delete, node.metadata.name)
            self.nodes.clear()
            self.accounts.clear()
            self.errors = []
            rbac = client.RbacAuthorizationV1Api(self.api)
            for item in rbac.list_cluster_role_binding(label_selector=selector).items:
                rbac.delete_cluster_role_binding(item.metadata.name)
            for item in self._core().list_namespaced_service_account(SA_NAMESPACE, label_selector=selector).items:
                self._core().delete_namespaced_service_account(item.metadata.name, SA_NAMESPACE)

    def node_objects(self) -> list[Any]:
        """The Node objects the backend made, for assertions."""
        selector = "{0}={1}".format(self.fixture.TEST_NODE_LABEL, OWNER)
        return self._core().list_node(label_selector=selector).items
