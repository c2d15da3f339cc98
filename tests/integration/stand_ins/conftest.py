"""A rehearsal-shaped cluster with the real upstream charts installed, for the stand-in tests.

``rehearsal`` is a second test cluster (``rehearsal_cluster`` in
tests/cluster/fixture.py): its own name and folder, a loopback-only network,
the DOKS node pools, and only what DOKS itself brings (the Gateway API CRDs).
``charts`` then installs the real charts of cluster_config's Helm plan
(``tasks_from: _plan``, rendered by the role for the doks platform), in
the plan's order, each with ``helm install --wait`` from the archive, and
records how long each took. dynamo-platform is left out (no upstream archive
here; the rehearsal has its own stand-in for it).
"""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from artifacts import resolve
from helpers import REPO, VENV_BIN, cluster_support

NAME = "gtc-stand-ins"
DIRECTORY = Path(f"/tmp/{NAME}-cluster")
HOSTNAME = "gtc-demo.example.com"
# What cluster_config makes before its releases (_k8s.yml): namespaces, the
# RuntimeClass dcgm-exporter's pods name, and the DNS token Secrets.
NAMESPACES = ["gtc-demo", "dynamo-system", "monitoring", "keda", "cert-manager", "external-dns"]


@dataclass
class Charts:
    """The releases installed on the rehearsal cluster and how long each took."""

    plan: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="session")
def rehearsal() -> Iterator[Any]:
    fixture = cluster_support()
    started = time.monotonic()
    with fixture.rehearsal_cluster(NAME, DIRECTORY, crds=["gateway-api"], nodes=True) as cluster:
        cluster.start_seconds = time.monotonic() - started
        yield cluster


def helm_plan(tmp: Path) -> list[dict[str, Any]]:
    """cluster_config's Helm plan for doks, rendered by the role itself."""
    playbook = tmp / "plan.yml"
    out = tmp / "plan.json"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Work out cluster_config's Helm plan\n"
        "      ansible.builtin.include_role:\n        name: do_solutions.gtc_demo.cluster_config\n"
        "        tasks_from: _plan\n"
        "    - name: Write it\n      ansible.builtin.copy:\n"
        "        content: \"{{ cluster_config__helm_plan | to_nice_json }}\"\n"
        f"        dest: {out}\n        mode: \"0600\"\n")
    extra = {"gtc_demo_platform": "doks", "gtc_demo_hostname": HOSTNAME,
             "cluster_config_helm_chart_dir": str(resolve("charts/keda-2.18.1.tgz").parent)}
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}", "-e", json.dumps(extra)],
        cwd=REPO, env={**__import__("os").environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def _prepare(cluster: Any) -> None:
    from kubernetes import client  # pylint: disable=import-outside-toplevel
    from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

    core = cluster.core()
    for ns in NAMESPACES:
        try:
            core.create_namespace({"metadata": {"name": ns}})
        except ApiException as exc:
            if exc.status != 409:
                raise
    try:
        client.NodeV1Api(cluster.api_client()).create_runtime_class(
            {"metadata": {"name": "nvidia"}, "handler": "nvidia"})
    except ApiException as exc:
        if exc.status != 409:
            raise


@pytest.fixture(scope="session")
def charts(rehearsal: Any) -> Charts:
    """The real charts, installed once with the role's values (helm --wait)."""
    _prepare(rehearsal)
    with tempfile.TemporaryDirectory() as tmp:
        plan = [r for r in helm_plan(Path(tmp)) if r["name"] != "dynamo-platform"]
        installed = json.loads(subprocess.run(
            [str(rehearsal.helm), "list", "-A", "-o", "json"], env=rehearsal.env(), capture_output=True,
            text=True, check=True).stdout or "[]")
        have = {r["name"] for r in installed}
        result = Charts(plan)
        for release in plan:
            if release["name"] in have:
                continue
            values = Path(tmp) / f"{release['name']}.json"
            values.write_text(json.dumps(release["values"]))
            started = time.monotonic()
            proc = subprocess.run(
                [str(rehearsal.helm), "install", release["name"], release["chart_ref"], "-n", release["namespace"],
                 "-f", str(values), "--wait", "--timeout", "5m"],
                env=rehearsal.env(), capture_output=True, text=True, timeout=400, check=False)
            result.seconds[release["name"]] = round(time.monotonic() - started, 1)
            assert proc.returncode == 0, f"helm install {release['name']}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    print(f"cluster start {getattr(rehearsal, 'start_seconds', 0):.1f}s; helm install --wait: {result.seconds}")
    return result
