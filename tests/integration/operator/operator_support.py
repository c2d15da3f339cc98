"""Helpers for the Dynamo operator stand-in tests: rendering the role's objects, waiting, API calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from helpers import REPO
from stand_ins import raw_request

import helpers

RENDER = REPO / "tests" / "unit" / "dynamo" / "render.yml"
NAMESPACE = "gtc-demo"


def render(out: Path, **extra: Any) -> Path:
    """The dynamo role's objects and cluster_config's dynamo-platform values for the dev inventory."""
    out.mkdir(parents=True, exist_ok=True)
    playbook = Path(sys.executable).parent / "ansible-playbook"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(playbook), str(RENDER), "-i", "inventories/dev",
         "-e", json.dumps({"render_dir": str(out), "gtc_demo_kubeconfig": "/dev/null", **extra})],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
    return out


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90, interval: float = 0.5) -> Any:
    """helpers.wait_for with the description first, as these tests read."""
    return helpers.wait_for(check, timeout=timeout, interval=interval, what=what)


class Api:
    """Small dict-based helpers over the test cluster's API."""

    def __init__(self, api_client: Any) -> None:
        self.client = api_client

    def req(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return raw_request(self.client, method, path, body, **kw)

    def get(self, path: str) -> Any:
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            return self.req("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (field manager pytest)."""
        group_version = obj["apiVersion"]
        base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        plural = {"DynamoGraphDeployment": "dynamographdeployments", "ConfigMap": "configmaps",
                  "PersistentVolumeClaim": "persistentvolumeclaims", "PersistentVolume": "persistentvolumes",
                  "Namespace": "namespaces"}[obj["kind"]]
        ns = obj["metadata"].get("namespace")
        path = f"{base}/namespaces/{ns}/{plural}/{obj['metadata']['name']}" if ns else f"{base}/{plural}/{obj['metadata']['name']}"
        return self.req("PATCH", path, obj, content_type="application/apply-patch+yaml",
                        query=[("fieldManager", "pytest"), ("force", "true")])

    def graph(self, name: str) -> dict[str, Any] | None:
        return self.get(f"/apis/nvidia.com/v1beta1/namespaces/{NAMESPACE}/dynamographdeployments/{name}")

    def pods(self, graph: str) -> list[dict[str, Any]]:
        return self.req("GET", f"/api/v1/namespaces/{NAMESPACE}/pods",
                        query=[("labelSelector", f"nvidia.com/dynamo-graph-deployment-name={graph}")])["items"]

    def delete(self, path: str) -> None:
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            self.req("DELETE", path)
        except ApiException as exc:
            if exc.status != 404:
                raise
