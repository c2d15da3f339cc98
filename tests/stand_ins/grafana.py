"""What Grafana 12 (kube-prometheus-stack 79.5.0's grafana subchart) shows a visitor who has not logged in.

No Grafana server can run here (no package serves one). The rehearsal installs
the real chart, so the objects Grafana and its dashboard sidecar would read
are in the cluster; this module applies Grafana's rules to them:

- ``grafana.ini`` comes from the ConfigMap ``<release>-grafana`` (the chart's
  ``templates/configmap.yaml``); Grafana's own defaults apply to what it leaves
  out (``conf/defaults.ini``: ``[auth.anonymous] enabled = false``,
  ``org_name = Main Org.``).
- An anonymous request is served only when ``[auth.anonymous] enabled`` is true
  and ``org_name`` names an organisation that exists; the anonymous client
  looks it up by name and refuses the request when it is missing
  (``pkg/services/anonymous/anonimpl/client.go``). The chart provisions no
  organisation, so the only one is the first, "Main Org." (id 1, created at
  first start: ``pkg/services/org/orgimpl/store.go``). Otherwise: 401.
- Dashboards reach an organisation through the sidecar's provider
  (``<release>-grafana-config-dashboards``, ``provider.yaml``: ``orgId``),
  which loads every ConfigMap or Secret (env ``RESOURCE``: configmap, secret
  or both, default both) labelled ``LABEL`` (``= LABEL_VALUE`` when set) in
  the namespaces of ``NAMESPACE`` (a comma list, ``ALL``, or by default the
  sidecar's own namespace), from the env of the container
  ``grafana-sc-dashboard`` (the chart's ``templates/_pod.tpl``; kiwigrid
  k8s-sidecar's README for the defaults). Every ``*.json`` key is one
  dashboard.
- A Viewer may read every dashboard of the organisation under the default
  permissions, so ``/api/search`` lists them all (uid and title).
"""

from __future__ import annotations

import base64
import configparser
import json
from collections.abc import Callable
from typing import Any

import yaml

# (kind, namespace or None for all) -> objects as dicts
Lister = Callable[[str, "str | None"], list[dict[str, Any]]]

FIRST_ORG = (1, "Main Org.")
SIDECAR = "grafana-sc-dashboard"


def _named(objects: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["metadata"]["name"] == name), None)


def grafana_ini(objects: Lister, namespace: str, release: str) -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_dict({"auth.anonymous": {"enabled": "false", "org_name": FIRST_ORG[1]}})  # conf/defaults.ini
    config = _named(objects("ConfigMap", namespace), f"{release}-grafana")
    if config and "grafana.ini" in (config.get("data") or {}):
        ini.read_string(config["data"]["grafana.ini"])
    return ini


def _sidecar_env(objects: Lister, namespace: str, release: str) -> dict[str, str] | None:
    deployment = _named(objects("Deployment", namespace), f"{release}-grafana")
    if deployment is None:
        return None
    for container in deployment["spec"]["template"]["spec"].get("containers", []):
        if container["name"] == SIDECAR:
            return {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "value" in e}
    return None


def _provider_orgs(objects: Lister, namespace: str, release: str) -> set[int]:
    config = _named(objects("ConfigMap", namespace), f"{release}-grafana-config-dashboards")
    if config is None:
        return set()
    providers = yaml.safe_load((config.get("data") or {}).get("provider.yaml") or "{}") or {}
    return {int(p.get("orgId", 1)) for p in providers.get("providers") or []}


def _data(obj: dict[str, Any]) -> dict[str, str]:
    if obj["kind"] == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def sidecar_dashboards(objects: Lister, namespace: str, release: str) -> list[dict[str, str]]:
    """The dashboards the sidecar loads, as {uid, title}, whatever organisation they go to."""
    env = _sidecar_env(objects, namespace, release)
    if env is None or not env.get("LABEL"):
        return []
    scopes = [n.strip() for n in env.get("NAMESPACE", namespace).split(",") if n.strip()]
    kinds = {"configmap": ["ConfigMap"], "secret": ["Secret"]}.get(env.get("RESOURCE", "both"), ["ConfigMap", "Secret"])
    found = []
    for kind in kinds:
        for scope in scopes:
            for obj in objects(kind, None if scope == "ALL" else scope):
                labels = obj["metadata"].get("labels") or {}
                if env["LABEL"] not in labels or ("LABEL_VALUE" in env and labels[env["LABEL"]] != env["LABEL_VALUE"]):
                    continue
                for key, text in _data(obj).items():
                    if key.endswith(".json"):
                        board = json.loads(text)
                        found.append({"uid": board.get("uid", ""), "title": board.get("title", "")})
    return sorted(found, key=lambda board: board["uid"])


def anonymous_search(objects: Lister, namespace: str = "monitoring",
                     release: str = "kube-prometheus-stack") -> list[dict[str, str]] | None:
    """What GET /api/search answers a visitor with no login: the dashboards, or None for 401."""
    anonymous = grafana_ini(objects, namespace, release)["auth.anonymous"]
    if anonymous.get("enabled", "false").strip().lower() != "true":
        return None
    if anonymous.get("org_name", FIRST_ORG[1]).strip() != FIRST_ORG[1]:
        return None  # no such organisation: the anonymous client refuses the request
    if FIRST_ORG[0] not in _provider_orgs(objects, namespace, release):
        return []
    return sidecar_dashboards(objects, namespace, release)


def cluster_lister(api_client: Any) -> Lister:
    """Objects from a real API server, as dicts (the shape `kubectl get -o json` gives)."""
    from kubernetes import dynamic  # pylint: disable=import-outside-toplevel

    dyn = dynamic.DynamicClient(api_client)
    versions = {"ConfigMap": "v1", "Secret": "v1", "Deployment": "apps/v1"}

    def objects(kind: str, namespace: str | None) -> list[dict[str, Any]]:
        resource = dyn.resources.get(api_version=versions[kind], kind=kind)
        items = resource.get(namespace=namespace).to_dict().get("items") or []
        return [{**item, "kind": kind} for item in items]
    return objects


def manifest_lister(documents: list[dict[str, Any]], default_namespace: str) -> Lister:
    """Objects from rendered manifests (`helm template`), for the same rules without a cluster."""
    def objects(kind: str, namespace: str | None) -> list[dict[str, Any]]:
        return [d for d in documents if d.get("kind") == kind
                and (namespace is None or d["metadata"].get("namespace", default_namespace) == namespace)]
    return objects
