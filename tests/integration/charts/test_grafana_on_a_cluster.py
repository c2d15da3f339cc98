"""Grafana's booth objects against a real kube-apiserver (the session test cluster, kwok nodes) (issue 16).

- The given admin Secret (cluster_config_grafana_admin_secret): cluster_config
  checks, before the releases, that it exists with both keys (a missing one
  would leave Grafana's pod waiting until Helm times out), names what is
  missing, and never writes the Secret's values to its output, even at -vvv
  (tasks/_grafana_admin_secret.yml).
- What the real chart renders with the role's values (dev: the switch on,
  the password generated) is accepted by the API server: a server-side dry-run
  apply of every object of the Grafana subchart and of the role's dashboards
  ConfigMap. Nothing is created.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from charts_support import helm_template  # type: ignore[import-not-found]
from helpers import REPO

pytestmark = pytest.mark.integration

NAMESPACE = "monitoring"
SECRET = "booth-grafana-admin-test"
SENTINEL = "grafana_admin_sentinel_6127"
FIELD_MANAGER = "gtc-demo-grafana-tests"
PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: do_solutions.gtc_demo.cluster_config
        tasks_from: _grafana_admin_secret
"""


@pytest.fixture(scope="module")
def cluster(k8s_cluster):
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    core = k8s_cluster.core()
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    yield k8s_cluster
    try:
        core.delete_namespaced_secret(SECRET, NAMESPACE)
    except ApiException as exc:
        if exc.status != 404:
            raise


def check_secret(cluster: Any, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "check.yml"
    playbook.write_text(PLAY)
    extra = {"gtc_demo_platform": "kind", "gtc_demo_kubeconfig": str(cluster.kubeconfig),
             "gtc_demo_kube_context": cluster.context, "ansible_python_interpreter": sys.executable,
             "cluster_config_grafana_admin_secret": SECRET, "cluster_config_grafana_admin_user_key": "user",
             "cluster_config_grafana_admin_password_key": "password"}
    env = {**cluster.env(), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local", "-vvv",
         str(playbook), "-e", json.dumps(extra)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def put_secret(cluster: Any, data: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    cluster.core().patch_namespaced_secret(SECRET, NAMESPACE, body, field_manager=FIELD_MANAGER, force=True,
                                           _content_type="application/apply-patch+yaml")


def test_a_given_admin_secret_must_hold_both_keys_and_stays_out_of_the_output(cluster, tmp_path):
    put_secret(cluster, {"user": f"{SENTINEL}_user"})
    missing = check_secret(cluster, tmp_path)
    out = missing.stdout + missing.stderr
    assert missing.returncode != 0, out[-3000:]
    assert f"no Secret {NAMESPACE}/{SECRET} with the keys user and password" in " ".join(out.split())
    put_secret(cluster, {"user": f"{SENTINEL}_user", "password": f"{SENTINEL}_password"})
    complete = check_secret(cluster, tmp_path)
    assert complete.returncode == 0, (complete.stdout + complete.stderr)[-3000:]
    encoded = [base64.b64encode(f"{SENTINEL}_{key}".encode()).decode() for key in ("user", "password")]
    for run in (missing, complete):
        text = run.stdout + run.stderr
        assert SENTINEL not in text and not [e for e in encoded if e in text]


def test_the_rendered_grafana_objects_are_accepted_by_the_api_server(cluster, plans, helm, tmp_path):
    from kubernetes.dynamic import DynamicClient  # pylint: disable=import-outside-toplevel

    dynamic = DynamicClient(cluster.api_client())
    plan = plans["dev"]
    release = next(r for r in plan["releases"] if r["name"] == "kube-prometheus-stack")
    docs = [d.obj for d in helm_template(helm, release, tmp_path)
            if d.source.startswith("kube-prometheus-stack/charts/grafana/templates/") and "/tests/" not in d.source]
    dashboards = [m for m in plan["monitoring"] if m["kind"] == "ConfigMap"]
    kinds = {o["kind"] for o in docs}
    assert {"Deployment", "ConfigMap", "Secret", "Service"} <= kinds and dashboards
    for obj in docs + dashboards:
        resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        dynamic.server_side_apply(resource, body=obj, namespace=obj["metadata"].get("namespace", NAMESPACE)
                                  if resource.namespaced else None,
                                  field_manager=FIELD_MANAGER, dry_run="All")
    # A dry run creates nothing.
    names = {s.metadata.name for s in cluster.core().list_namespaced_secret(NAMESPACE).items}
    assert "kube-prometheus-stack-grafana" not in names
