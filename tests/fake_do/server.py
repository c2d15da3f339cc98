"""A small stateful stand-in for the parts of the DigitalOcean API the collection uses.

It keeps VPCs, DOKS clusters with node pools, the registry integration and
NFS shares in memory, provisions them after a configurable delay, and can
inject faults (429 with Retry-After, 5xx). The tests put Stoplight Prism in
front of it, so every request and response is checked against DigitalOcean's
published OpenAPI spec; this file only has to be right about behaviour.

Test control lives under /_fake/ (never proxied through Prism):
  GET  /_fake/state     everything the fake holds
  GET  /_fake/log       every /v2 request seen: method, path, status, fault
  POST /_fake/reset     forget everything (body: optional config)
  POST /_fake/config    {"token": ..., "provision_seconds": ..., "node_seconds": ..., "delete_seconds": ...}
  POST /_fake/faults    {"faults": [{"status": 429, "times": 2, "retry_after": 1, "method": "GET", "path": "regex"}]}
  POST /_fake/images    {"registry": ..., "repository": ..., "tag": ...}: an image pushed to the Container Registry
  POST /_fake/config    {"domains": [...]} (or reset with it): the DNS zones the account serves

With ``cluster_backend=KubeBackend(...)`` (tests/fake_do/kube_backend.py) the
clusters are real: the kubeconfig call answers with a kubeconfig for a real
API server, and the node pools' nodes exist there as kwok Nodes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlparse

VERSIONS = [
    {"slug": "1.33.1-do.0", "kubernetes_version": "1.33.1", "supported_features": ["cluster-autoscaler"]},
    {"slug": "1.32.5-do.0", "kubernetes_version": "1.32.5", "supported_features": ["cluster-autoscaler"]},
]
REGIONS = ["ams3", "atl1", "blr1", "fra1", "lon1", "nyc1", "nyc2", "nyc3", "ric1", "sfo2", "sfo3", "sgp1", "syd1", "tor1"]
SIZES = ["s-2vcpu-4gb", "s-4vcpu-8gb", "gpu-h100x1-80gb", "gpu-h100x8-640gb", "gpu-h200x8-1128gb-contracted"]


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, status: int, ident: str, message: str):
        super().__init__(message)
        self.status = status
        self.ident = ident
        self.message = message


class FakeDigitalOcean:
    """The state and the rules; the HTTP handler below only routes to it."""

    def __init__(self, token: str = "fake-token", cluster_backend: Any = None) -> None:
        self.lock = threading.RLock()
        self.config: dict[str, Any] = {}
        # Optional: a real API server the clusters' kubeconfigs and nodes live on (tests/fake_do/kube_backend.py).
        self.cluster_backend = cluster_backend
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()
        self.reset({"token": token})

    def start_ticker(self, interval: float = 0.25) -> None:
        """With a cluster backend, time passes without requests too: nodes boot while nobody asks the API."""
        if self.cluster_backend is None or self._ticker is not None:
            return

        def tick() -> None:
            while not self._stopping.wait(interval):
                with self.lock:
                    self._tick()

        self._ticker = threading.Thread(target=tick, name="fake-do-ticker", daemon=True)
        self._ticker.start()

    def stop_ticker(self) -> None:
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    # --- control ------------------------------------------------------------
    def reset(self, config: dict[str, Any] | None = None) -> None:
        with self.lock:
            token = self.config.get("token", "fake-token")
            self.config = {"token": token, "provision_seconds": 0.5, "node_seconds": 0.5, "delete_seconds": 0.3}
            self.config.update(config or {})
            self.vpcs: dict[str, dict[str, Any]] = {}
            self.clusters: dict[str, dict[str, Any]] = {}
            self.shares: dict[str, dict[str, Any]] = {}
            self.registry: set[str] = set()
            # Container Registry content: (registry name, repository name) -> {tag: tag record}.
            # Images are pushed by playbooks/images.yml, not by site.yml: teardown leaves them,
            # and they do not count in is_empty().
            self.images: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
            # DNS zones of the account (the user's, like the images: teardown leaves them).
            self.domains: set[str] = set(self.config.get("domains") or [])
            self.faults: list[dict[str, Any]] = []
            self.log: list[dict[str, Any]] = []
            if self.cluster_backend is not None:
                self.cluster_backend.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self._tick()
            return {
                "vpcs": [self._vpc_view(v) for v in self.vpcs.values()],
                "clusters": [self._cluster_view(c) for c in self.clusters.values()],
                "shares": [self._share_view(s) for s in self.shares.values()],
                "registry": sorted(self.registry),
                "images": sorted("{0}/{1}:{2}".format(r, repo, t) for (r, repo), tags in self.images.items()
                                 for t in tags),
            }

    def is_empty(self) -> bool:
        state = self.snapshot()
        return not (state["vpcs"] or state["clusters"] or state["shares"] or state["registry"])

    # --- time ---------------------------------------------------------------
    def _tick(self) -> None:
        """Finish deletions whose time has come."""
        t = time.monotonic()
        for cid in [c for c, v in self.clusters.items() if v.get("gone_at") and v["gone_at"] <= t]:
            del self.clusters[cid]
            self.registry.discard(cid)
        for sid in [s for s, v in self.shares.items() if v.get("gone_at") and v["gone_at"] <= t]:
            del self.shares[sid]
        for cluster in self.clusters.values():
            for pid in [p for p, v in cluster["pools"].items() if v.get("gone_at") and v["gone_at"] <= t]:
                del cluster["pools"][pid]
            for pool in cluster["pools"].values():
                pool["nodes"] = [n for n in pool["nodes"] if not (n.get("gone_at") and n["gone_at"] <= t)]
        if self.cluster_backend is not None:
            self.cluster_backend.sync(self.clusters, t)

    def _later(self, key: str) -> float:
        return time.monotonic() + float(self.config[key])

    # --- views (what the API returns) ----------------------------------------
    @staticmethod
    def _vpc_view(v: dict[str, Any]) -> dict[str, Any]:
        return {k: v[k] for k in ("id", "urn", "name", "description", "region", "ip_range", "default", "created_at")}

    def _node_view(self, n: dict[str, Any]) -> dict[str, Any]:
        if n.get("gone_at"):
            state = "deleting"
        elif n["ready_at"] <= time.monotonic():
            state = "running"
        else:
            state = "provisioning"
        return {"id": n["id"], "name": n["name"], "status": {"state": state}, "droplet_id": n["droplet_id"],
                "created_at": n["created_at"], "updated_at": n["created_at"]}

    def _pool_view(self, cluster: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": p["id"], "name": p["name"], "size": p["size"], "count": p["count"],
            "tags": list(p["tags"]) + ["k8s", "k8s:" + cluster["id"], "k8s:worker"],
            "labels": dict(p["labels"]) if p["labels"] else None,
            "taints": list(p["taints"]), "auto_scale": p["auto_scale"],
            "min_nodes": p["min_nodes"], "max_nodes": p["max_nodes"],
            "nodes": [self._node_view(n) for n in p["nodes"]],
        }

    def _cluster_view(self, c: dict[str, Any]) -> dict[str, Any]:
        t = time.monotonic()
        if c.get("gone_at"):
            state = "deleting"
        elif c["ready_at"] <= t:
            state = "running"
        else:
            state = "provisioning"
        return {
            "id": c["id"], "name": c["name"], "region": c["region"], "version": c["version"],
            "cluster_subnet": "10.244.0.0/16", "service_subnet": "10.245.0.0/16",
            "vpc_uuid": c["vpc_uuid"], "ipv4": "203.0.113.10",
            "endpoint": self._endpoint(c),
            "tags": list(c["tags"]) + ["k8s", "k8s:" + c["id"]],
            "node_pools": [self._pool_view(c, p) for p in c["pools"].values()],
            "maintenance_policy": dict(c["maintenance_policy"], duration="4h0m0s"),
            "auto_upgrade": c["auto_upgrade"], "surge_upgrade": c["surge_upgrade"], "ha": c["ha"],
            "status": {"state": state, "message": state},
            "created_at": c["created_at"], "updated_at": c["updated_at"],
            "registry_enabled": c["id"] in self.registry,
        }

    def _endpoint(self, c: dict[str, Any]) -> str:
        if self.cluster_backend is not None:
            return self.cluster_backend.server_url
        return "https://{0}.k8s.ondigitalocean.com".format(c["id"])

    def _share_view(self, s: dict[str, Any]) -> dict[str, Any]:
        if s.get("gone_at"):
            status = "DELETED" if s["gone_at"] <= time.monotonic() else "ACTIVE"
        else:
            status = "ACTIVE" if s["ready_at"] <= time.monotonic() else "CREATING"
        view = {"id": s["id"], "name": s["name"], "size_gib": s["size_gib"], "region": s["region"],
                "status": status, "created_at": s["created_at"], "vpc_ids": list(s["vpc_ids"]),
                "performance_tier": s["performance_tier"]}
        if status == "ACTIVE":
            # DigitalOcean fills host and mount_path in once the share is up.
            view["host"] = s["host"]
            view["mount_path"] = s["mount_path"]
        return view

    # --- VPCs ---------------------------------------------------------------
    def list_vpcs(self, query: dict[str, str]) -> tuple[int, Any]:
        items = [self._vpc_view(v) for v in self.vpcs.values()]
        return 200, self._page(items, "vpcs", query)

    def _page(self, items: list[Any], key: str, query: dict[str, str]) -> dict[str, Any]:
        per_page = int(query.get("per_page", 20))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        links: dict[str, Any] = {}
        if page * per_page < len(items):
            links["pages"] = {"next": "https://api.digitalocean.com/v2/{0}?page={1}&per_page={2}".format(
                key, page + 1, per_page)}
        total: Any = len(items)
        if self.config.get("break_contract"):
            # Only for the harness's self-test: a wrong type Prism must catch.
            total = str(total)
        return {key: chunk, "links": links, "meta": {"total": total}}

    def create_vpc(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body["name"]
        if any(v["name"] == name for v in self.vpcs.values()):
            raise ApiError(422, "unprocessable_entity", "A VPC named {0} already exists".format(name))
        if body["region"] not in REGIONS:
            raise ApiError(422, "unprocessable_entity", "Unknown region {0}".format(body["region"]))
        vid = str(uuid.uuid4())
        vpc = {"id": vid, "urn": "do:vpc:" + vid, "name": name, "description": body.get("description", ""),
               "region": body["region"], "ip_range": body.get("ip_range", "10.200.0.0/20"),
               "default": False, "created_at": now_iso()}
        self.vpcs[vid] = vpc
        return 201, {"vpc": self._vpc_view(vpc)}

    def _vpc(self, vid: str) -> dict[str, Any]:
        if vid not in self.vpcs:
            raise ApiError(404, "not_found", "The resource you requested could not be found.")
        return self.vpcs[vid]

    def get_vpc(self, vid: str) -> tuple[int, Any]:
        return 200, {"vpc": self._vpc_view(self._vpc(vid))}

    def patch_vpc(self, vid: str, body: dict[str, Any]) -> tuple[int, Any]:
        vpc = self._vpc(vid)
        for key in ("name", "description"):
            if key in body:
                vpc[key] = body[key]
        return 200, {"vpc": self._vpc_view(vpc)}

    def delete_vpc(self, vid: str) -> tuple[int, Any]:
        self._vpc(vid)
        members = [c["name"] for c in self.clusters.values() if c["vpc_uuid"] == vid]
        members += [s["name"] for s in self.shares.values() if vid in s["vpc_ids"]]
        if members:
            raise ApiError(403, "forbidden", "Cannot delete a VPC with members: " + ", ".join(members))
        del self.vpcs[vid]
        return 204, None

    # --- Kubernetes ---------------------------------------------------------
    def options(self) -> tuple[int, Any]:
        return 200, {"options": {
            "regions": [{"name": r, "slug": r} for r in REGIONS],
            "versions": VERSIONS,
            "sizes": [{"name": s, "slug": s} for s in SIZES],
        }}

    def _new_pool(self, spec: dict[str, Any]) -> dict[str, Any]:
        if spec["size"] not in SIZES:
            raise ApiError(422, "unprocessable_entity", "Unknown node size {0}".format(spec["size"]))
        pool = {"id": str(uuid.uuid4()), "name": spec["name"], "size": spec["size"], "count": 0,
                "tags": list(spec.get("tags") or []), "labels": dict(spec.get("labels") or {}),
                "taints": list(spec.get("taints") or []), "auto_scale": bool(spec.get("auto_scale", False)),
                "min_nodes": int(spec.get("min_nodes", 0)), "max_nodes": int(spec.get("max_nodes", 0)),
                "nodes": []}
        self._resize(pool, int(spec["count"]))
        return pool

    def _resize(self, pool: dict[str, Any], count: int) -> None:
        live = [n for n in pool["nodes"] if not n.get("gone_at")]
        for node in live[count:]:
            node["gone_at"] = self._later("delete_seconds")
        for i in range(len(live), count):
            pool["nodes"].append({"id": str(uuid.uuid4()), "name": "{0}-{1}".format(pool["name"], uuid.uuid4().hex[:5]),
                                  "droplet_id": str(100000 + i + len(pool["nodes"])), "created_at": now_iso(),
                                  "ready_at": self._later("node_seconds")})
        pool["count"] = count

    def _cluster(self, cid: str) -> dict[str, Any]:
        cluster = self.clusters.get(cid)
        if cluster is None:
            raise ApiError(404, "not_found", "The resource you requested could not be found.")
        return cluster

    def list_clusters(self, query: dict[str, str]) -> tuple[int, Any]:
        items = [self._cluster_view(c) for c in self.clusters.values()]
        return 200, self._page(items, "kubernetes_clusters", query)

    def create_cluster(self, body: dict[str, Any]) -> tuple[int, Any]:
        if any(c["name"] == body["name"] for c in self.clusters.values()):
            raise ApiError(422, "unprocessable_entity", "a cluster with this name already exists")
        if body["version"] not in [v["slug"] for v in VERSIONS]:
            raise ApiError(422, "unprocessable_entity", "invalid version slug {0}".format(body["version"]))
        vpc_uuid = body.get("vpc_uuid")
        if vpc_uuid:
            vpc = self.vpcs.get(vpc_uuid)
            if vpc is None or vpc["region"] != body["region"]:
                raise ApiError(422, "unprocessable_entity", "vpc_uuid must be a VPC in region " + body["region"])
        if not body["node_pools"]:
            raise ApiError(422, "unprocessable_entity", "at least one node pool is required")
        cid = str(uuid.uuid4())
        pools = [self._new_pool(p) for p in body["node_pools"]]
        cluster = {
            "id": cid, "name": body["name"], "region": body["region"], "version": body["version"],
            "vpc_uuid": vpc_uuid or "", "tags": list(body.get("tags") or []),
            "pools": {p["id"]: p for p in pools},
            "maintenance_policy": {"start_time": (body.get("maintenance_policy") or {}).get("start_time", "00:00"),
                                   "day": (body.get("maintenance_policy") or {}).get("day", "any")},
            "auto_upgrade": bool(body.get("auto_upgrade", False)), "surge_upgrade": bool(body.get("surge_upgrade", False)),
            "ha": bool(body.get("ha", False)), "created_at": now_iso(), "updated_at": now_iso(),
            "ready_at": self._later("provision_seconds"),
        }
        self.clusters[cid] = cluster
        return 201, {"kubernetes_cluster": self._cluster_view(cluster)}

    def get_cluster(self, cid: str) -> tuple[int, Any]:
        return 200, {"kubernetes_cluster": self._cluster_view(self._cluster(cid))}

    def update_cluster(self, cid: str, body: dict[str, Any]) -> tuple[int, Any]:
        cluster = self._cluster(cid)
        if cluster["ha"] and body.get("ha") is False:
            raise ApiError(422, "unprocessable_entity", "high availability cannot be turned off")
        cluster["name"] = body["name"]
        for key in ("tags", "auto_upgrade", "surge_upgrade", "ha"):
            if key in body:
                cluster[key] = body[key]
        if body.get("maintenance_policy"):
            cluster["maintenance_policy"].update({k: v for k, v in body["maintenance_policy"].items()
                                                  if k in ("day", "start_time")})
        cluster["updated_at"] = now_iso()
        return 202, {"kubernetes_cluster": self._cluster_view(cluster)}

    def delete_cluster(self, cid: str) -> tuple[int, Any]:
        cluster = self._cluster(cid)
        cluster.setdefault("gone_at", self._later("delete_seconds"))
        return 204, None

    def kubeconfig(self, cid: str, query: dict[str, str]) -> tuple[int, Any]:
        cluster = self._cluster(cid)
        # kubernetes_expiry_seconds in DigitalOcean's spec: an integer >= 0; 0 or absent means 7 days.
        expiry = int(query.get("expiry_seconds") or 0)
        if expiry < 0:
            raise ApiError(400, "bad_request", "expiry_seconds must be 0 or more")
        if self.cluster_backend is not None:
            return 200, ("application/yaml", self.cluster_backend.kubeconfig(self._cluster_view(cluster), expiry))
        name = "do-{0}-{1}".format(cluster["region"], cluster["name"])
        # A fresh credential on every call, as DigitalOcean does (7-day tokens). Without a backend
        # there is no API server: the server is a loopback port nothing listens on, so a client that
        # tries it is refused here instead of dialing out.
        text = (
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
            "    certificate-authority-data: ZmFrZS1jYQ==\n"
            "    server: https://127.0.0.1:1\n  name: {name}\n"
            "contexts:\n- context:\n    cluster: {name}\n    user: {name}-admin\n  name: {name}\n"
            "current-context: {name}\npreferences: {{}}\n"
            "users:\n- name: {name}-admin\n  user:\n    token: kubeconfig-{tok}\n"
        ).format(name=name, tok=uuid.uuid4().hex)
        return 200, ("application/yaml", text)

    def list_pools(self, cid: str) -> tuple[int, Any]:
        cluster = self._cluster(cid)
        return 200, {"node_pools": [self._pool_view(cluster, p) for p in cluster["pools"].values()]}

    def add_pool(self, cid: str, body: dict[str, Any]) -> tuple[int, Any]:
        cluster = self._cluster(cid)
        if any(p["name"] == body["name"] for p in cluster["pools"].values()):
            raise ApiError(422, "unprocessable_entity", "node pool name must be unique")
        pool = self._new_pool(body)
        cluster["pools"][pool["id"]] = pool
        return 201, {"node_pool": self._pool_view(cluster, pool)}

    def _pool(self, cid: str, pid: str) -> tuple[dict[str, Any], dict[str, Any]]:
        cluster = self._cluster(cid)
        pool = cluster["pools"].get(pid)
        if pool is None:
            raise ApiError(404, "not_found", "The resource you requested could not be found.")
        return cluster, pool

    def get_pool(self, cid: str, pid: str) -> tuple[int, Any]:
        cluster, pool = self._pool(cid, pid)
        return 200, {"node_pool": self._pool_view(cluster, pool)}

    def update_pool(self, cid: str, pid: str, body: dict[str, Any]) -> tuple[int, Any]:
        cluster, pool = self._pool(cid, pid)
        pool["name"] = body["name"]
        for key in ("tags", "taints", "auto_scale", "min_nodes", "max_nodes"):
            if key in body and body[key] is not None:
                pool[key] = body[key]
        if "labels" in body:
            pool["labels"] = dict(body["labels"] or {})
        self._resize(pool, int(body["count"]))
        return 202, {"node_pool": self._pool_view(cluster, pool)}

    def delete_pool(self, cid: str, pid: str) -> tuple[int, Any]:
        cluster, pool = self._pool(cid, pid)
        if len([p for p in cluster["pools"].values() if not p.get("gone_at")]) == 1:
            raise ApiError(422, "unprocessable_entity", "a cluster needs at least one node pool")
        pool.setdefault("gone_at", self._later("delete_seconds"))
        for node in pool["nodes"]:
            node.setdefault("gone_at", pool["gone_at"])
        return 204, None

    def registry_add(self, body: dict[str, Any]) -> tuple[int, Any]:
        for cid in body.get("cluster_uuids") or []:
            self._cluster(cid)
            self.registry.add(cid)
        return 204, None

    def registry_remove(self, body: dict[str, Any]) -> tuple[int, Any]:
        for cid in body.get("cluster_uuids") or []:
            self.registry.discard(cid)
        return 204, None

    # --- DNS ------------------------------------------------------------------
    def get_domain(self, name: str) -> tuple[int, Any]:
        # domains_get: {"domain": {name, ttl, zone_file}} or 404.
        name = unquote(name).lower()
        if name not in self.domains:
            raise ApiError(404, "not_found", "The resource you were accessing could not be found.")
        zone = ("$ORIGIN {0}.\n$TTL 1800\n{0}. IN SOA ns1.digitalocean.com. hostmaster.{0}. 1 10800 3600 604800 1800\n"
                "{0}. 1800 IN NS ns1.digitalocean.com.\n").format(name)
        return 200, {"domain": {"name": name, "ttl": 1800, "zone_file": zone}}

    # --- Container Registry ---------------------------------------------------
    def push_image(self, registry: str, repository: str, tag: str) -> dict[str, Any]:
        """What `docker push registry.digitalocean.com/<registry>/<repository>:<tag>` leaves (test control)."""
        with self.lock:
            digest = "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, f"{registry}/{repository}:{tag}").hex * 2
            record = {"registry_name": registry, "repository": repository, "tag": tag,
                      "manifest_digest": digest, "compressed_size_bytes": 52428800, "size_bytes": 157286400,
                      "updated_at": now_iso()}
            self.images.setdefault((registry, repository), {})[tag] = record
            return record

    def list_repository_tags(self, registry: str, repository: str, query: dict[str, str]) -> tuple[int, Any]:
        # registries_list_repositoryTags (and the deprecated registry_list_repositoryTags): a '/' in the
        # repository name arrives URL-encoded (%2F); an unknown registry or repository is a 404.
        repository = unquote(repository)
        if not any(r == registry for r, _repo in self.images):
            raise ApiError(404, "not_found", "registry {0} not found".format(registry))
        tags = self.images.get((registry, repository))
        if tags is None:
            raise ApiError(404, "not_found", "repository {0} not found".format(repository))
        items = sorted(tags.values(), key=lambda t: t["updated_at"], reverse=True)
        return 200, self._page(items, "tags", query)

    # --- NFS ----------------------------------------------------------------
    def list_shares(self, query: dict[str, str]) -> tuple[int, Any]:
        region = query.get("region")
        items = [self._share_view(s) for s in self.shares.values() if not region or s["region"] == region]
        return 200, {"shares": items}

    def create_share(self, body: dict[str, Any]) -> tuple[int, Any]:
        if int(body["size_gib"]) < 50:
            raise ApiError(422, "unprocessable_entity", "size_gib must be at least 50")
        for vid in body["vpc_ids"]:
            vpc = self.vpcs.get(vid)
            if vpc is None or vpc["region"] != body["region"]:
                raise ApiError(422, "unprocessable_entity", "vpc {0} is not a VPC in {1}".format(vid, body["region"]))
        if any(s["name"] == body["name"] and s["region"] == body["region"] for s in self.shares.values()):
            raise ApiError(422, "unprocessable_entity", "a share with this name already exists")
        sid = str(uuid.uuid4())
        host = "10.120.0.{0}".format(10 + len(self.shares))
        share = {"id": sid, "name": body["name"], "size_gib": int(body["size_gib"]), "region": body["region"],
                 "vpc_ids": list(body["vpc_ids"]), "performance_tier": body.get("performance_tier") or "standard",
                 "created_at": now_iso(), "host": host, "mount_path": "/4711/" + sid,
                 "ready_at": self._later("provision_seconds")}
        self.shares[sid] = share
        return 201, {"share": self._share_view(share)}

    def _share(self, sid: str) -> dict[str, Any]:
        share = self.shares.get(sid)
        if share is None:
            raise ApiError(404, "not_found", "The resource you requested could not be found.")
        return share

    def get_share(self, sid: str) -> tuple[int, Any]:
        return 200, {"share": self._share_view(self._share(sid))}

    def delete_share(self, sid: str) -> tuple[int, Any]:
        share = self._share(sid)
        share.setdefault("gone_at", self._later("delete_seconds"))
        return 204, None

    def share_action(self, sid: str, body: dict[str, Any]) -> tuple[int, Any]:
        share = self._share(sid)
        if body["type"] != "resize":
            raise ApiError(422, "unprocessable_entity", "the fake only knows the resize action")
        size = int((body.get("params") or {}).get("size_gib", 0))
        if size < share["size_gib"]:
            raise ApiError(422, "unprocessable_entity", "a share can only grow")
        share["size_gib"] = size
        return 201, {"action": {"id": str(uuid.uuid4()), "region_slug": share["region"], "resource_id": sid,
                                "resource_type": "SHARE", "started_at": now_iso(), "status": "IN_PROGRESS",
                                "type": "resize"}}

    # --- routing ------------------------------------------------------------
    def routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]], bool]]:
        """(method, path regex, handler, wants body)."""
        u = "([0-9a-f-]{36})"
        table = [
            ("GET", r"/v2/vpcs", self.list_vpcs, "query"),
            ("POST", r"/v2/vpcs", self.create_vpc, "body"),
            ("GET", r"/v2/vpcs/" + u, self.get_vpc, None),
            ("PATCH", r"/v2/vpcs/" + u, self.patch_vpc, "body"),
            ("DELETE", r"/v2/vpcs/" + u, self.delete_vpc, None),
            ("GET", r"/v2/kubernetes/options", self.options, None),
            ("GET", r"/v2/kubernetes/clusters", self.list_clusters, "query"),
            ("POST", r"/v2/kubernetes/clusters", self.create_cluster, "body"),
            ("GET", r"/v2/kubernetes/clusters/" + u, self.get_cluster, None),
            ("PUT", r"/v2/kubernetes/clusters/" + u, self.update_cluster, "body"),
            ("DELETE", r"/v2/kubernetes/clusters/" + u, self.delete_cluster, None),
            ("GET", r"/v2/kubernetes/clusters/" + u + "/kubeconfig", self.kubeconfig, "query"),
            ("GET", r"/v2/kubernetes/clusters/" + u + "/node_pools", self.list_pools, None),
            ("POST", r"/v2/kubernetes/clusters/" + u + "/node_pools", self.add_pool, "body"),
            ("GET", r"/v2/kubernetes/clusters/" + u + "/node_pools/" + u, self.get_pool, None),
            ("PUT", r"/v2/kubernetes/clusters/" + u + "/node_pools/" + u, self.update_pool, "body"),
            ("DELETE", r"/v2/kubernetes/clusters/" + u + "/node_pools/" + u, self.delete_pool, None),
            ("POST", r"/v2/kubernetes/registry", self.registry_add, "body"),
            ("DELETE", r"/v2/kubernetes/registry", self.registry_remove, "body"),
            ("GET", r"/v2/domains/([^/]+)", self.get_domain, None),
            ("GET", r"/v2/registries/([a-z0-9-]{1,63})/repositories/([^/]+)/tags", self.list_repository_tags, "query"),
            ("GET", r"/v2/registry/([a-z0-9-]{1,63})/repositories/([^/]+)/tags", self.list_repository_tags, "query"),
            ("GET", r"/v2/nfs", self.list_shares, "query"),
            ("POST", r"/v2/nfs", self.create_share, "body"),
            ("GET", r"/v2/nfs/" + u, self.get_share, None),
            ("DELETE", r"/v2/nfs/" + u, self.delete_share, None),
            ("POST", r"/v2/nfs/" + u + "/actions", self.share_action, "body"),
        ]
        return [(m, re.compile("^" + p + "$"), h, w) for m, p, h, w in table]

    def take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        for fault in self.faults:
            if fault.get("times", 1) <= 0:
                continue
            if fault.get("method") and fault["method"] != method:
                continue
            if fault.get("path") and not re.search(fault["path"], path):
                continue
            fault["times"] = fault.get("times", 1) - 1
            return fault
        return None


def make_handler(fake: FakeDigitalOcean, routes: list[Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
            return

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = b""
            ctype = "application/json"
            if isinstance(payload, tuple):
                ctype, text = payload
                body = text.encode()
            elif payload is not None:
                body = json.dumps(payload).encode()
            self.send_response(status)
            # DigitalOcean sends its rate-limit headers on every answer.
            self.send_header("ratelimit-limit", "5000")
            self.send_header("ratelimit-remaining", "4999")
            self.send_header("ratelimit-reset", str(int(time.time()) + 60))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if body:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else {}

        def _control(self, method: str, path: str) -> None:
            if method == "GET" and path == "/_fake/state":
                return self._send(200, fake.snapshot())
            if method == "GET" and path == "/_fake/log":
                with fake.lock:
                    return self._send(200, list(fake.log))
            if method == "POST" and path == "/_fake/reset":
                fake.reset(self._body())
                return self._send(200, {"ok": True})
            if method == "POST" and path == "/_fake/config":
                with fake.lock:
                    body = self._body()
                    fake.config.update(body)
                    fake.domains.update(body.get("domains") or [])
                return self._send(200, fake.config)
            if method == "POST" and path == "/_fake/images":
                body = self._body()
                return self._send(200, fake.push_image(body["registry"], body["repository"], body["tag"]))
            if method == "POST" and path == "/_fake/faults":
                with fake.lock:
                    fake.faults = list(self._body().get("faults") or [])
                return self._send(200, {"ok": True})
            return self._send(404, {"id": "not_found", "message": "no such control endpoint"})

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            path = url.path.rstrip("/") or "/"
            if path.startswith("/_fake/"):
                return self._control(method, path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            with fake.lock:
                entry: dict[str, Any] = {"method": method, "path": path, "fault": False}
                fake.log.append(entry)
                body = None
                if method in ("POST", "PUT", "PATCH", "DELETE"):
                    try:
                        body = self._body()
                    except ValueError:
                        entry["status"] = 400
                        return self._send(400, {"id": "bad_request", "message": "body is not JSON"})
                expected = "Bearer " + str(fake.config["token"])
                if self.headers.get("Authorization") != expected:
                    entry["status"] = 401
                    return self._send(401, {"id": "Unauthorized", "message": "Unable to authenticate you"})
                fault = fake.take_fault(method, path)
                if fault:
                    entry.update(status=fault["status"], fault=True)
                    headers = {}
                    if fault.get("retry_after") is not None:
                        headers["Retry-After"] = str(fault["retry_after"])
                    ident = "too_many_requests" if fault["status"] == 429 else "server_error"
                    return self._send(fault["status"], {"id": ident, "message": "injected fault"}, headers)
                fake._tick()
                for r_method, pattern, handler, wants in routes:
                    match = pattern.match(path)
                    if not match or r_method != method:
                        continue
                    args: list[Any] = list(match.groups())
                    if wants == "query":
                        args.append(query)
                    elif wants == "body":
                        args.append(body or {})
                    try:
                        status, payload = handler(*args)
                    except ApiError as exc:
                        status, payload = exc.status, {"id": exc.ident, "message": exc.message}
                    except (KeyError, TypeError, ValueError) as exc:
                        status, payload = 422, {"id": "unprocessable_entity", "message": "bad request: {0}".format(exc)}
                    entry["status"] = status
                    return self._send(status, payload)
                entry["status"] = 404
                return self._send(404, {"id": "not_found", "message": "the fake does not serve " + path})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._handle("PUT")

        def do_PATCH(self) -> None:  # noqa: N802
            self._handle("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

    return Handler


class FakeServer:
    """The fake on 127.0.0.1 in a background thread."""

    def __init__(self, token: str = "fake-token", port: int = 0, cluster_backend: Any = None) -> None:
        self.fake = FakeDigitalOcean(token, cluster_backend=cluster_backend)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(self.fake, self.fake.routes()))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:{0}".format(self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fake-do", daemon=True)

    def start(self) -> "FakeServer":
        self.thread.start()
        self.fake.start_ticker()
        return self

    def stop(self) -> None:
        self.fake.stop_ticker()
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="fake-token")
    args = parser.parse_args()
    server = FakeServer(args.token, args.port)
    print(server.url, flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
