"""Fixtures for running the Stack 2 roles against the test cluster.

- ``k8s_cluster``: the real control plane with kwok DOKS nodes and every public
  CRD installed (tests/cluster/fixture.py, shared with the other cluster tests).
- ``charts``: a folder of chart archives named like the pinned releases, built
  with the cluster's own ``helm package``. Chart repositories cannot be reached
  here, so each stand-in chart renders one ConfigMap holding the values it was
  given: the role's Helm path (pinned version, values files, upgrade,
  idempotence, check mode) is real, the upstream charts' templates are not.
- ``stack2``: runs tests/integration/k8s_roles/stack2.yml with ansible-playbook.
- ``fake_dynamo_operator``: the Dynamo operator stand-in
  (tests/stand_ins/dynamo_operator.py, following the operator's source); the
  role's wait sees what the operator reports.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from stack2_helpers import SECRET_ENV  # type: ignore[import-not-found]

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------
# Stand-in charts


def _releases() -> list[dict[str, Any]]:
    defaults = yaml.safe_load((REPO / "roles" / "cluster_config" / "defaults" / "main.yml").read_text())
    return defaults["cluster_config_helm_releases"]


STUB_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-stand-in
  labels:
    app.kubernetes.io/managed-by: {{ .Release.Service }}
data:
  chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
  values.json: {{ toJson .Values | quote }}
"""


@pytest.fixture(scope="session")
def charts(k8s_cluster, tmp_path_factory) -> Path:
    """<chart>-<version>.tgz for every pinned release, made by `helm package`."""
    out = tmp_path_factory.mktemp("charts")
    src = tmp_path_factory.mktemp("chart-src")
    for rel in _releases():
        chart_dir = src / rel["chart"]
        (chart_dir / "templates").mkdir(parents=True, exist_ok=True)
        (chart_dir / "Chart.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v2", "name": rel["chart"], "version": str(rel["version"]),
            "description": f"Stand-in for {rel['chart']} {rel['version']} (tests only)", "type": "application",
        }))
        (chart_dir / "values.yaml").write_text("{}\n")
        (chart_dir / "templates" / "values.yaml").write_text(STUB_TEMPLATE)
        subprocess.run([str(k8s_cluster.helm), "package", str(chart_dir), "-d", str(out)],
                       check=True, capture_output=True, text=True, env=k8s_cluster.env())
        expected = out / f"{rel['chart']}-{rel['version']}.tgz"
        assert expected.exists(), f"helm package did not make {expected.name}: {sorted(p.name for p in out.iterdir())}"
    return out


# --------------------------------------------------------------------------
# Running the playbook


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    recap: dict[str, int] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.recap.get("changed", -1)

    def explain(self) -> str:
        return f"rc={self.returncode} after {self.seconds:.0f}s\n{self.stdout[-6000:]}\n{self.stderr[-2000:]}"


def _parse(stdout: str) -> tuple[dict[str, int], list[str]]:
    recap: dict[str, int] = {}
    match = re.search(r"^localhost\s+:\s+(.*)$", stdout, re.MULTILINE)
    if match:
        recap = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}
    tasks = re.findall(r"^TASK \[(.*?)\]", stdout, re.MULTILINE)
    return recap, tasks


@pytest.fixture(scope="session")
def stack2(k8s_cluster, charts):
    """Run stack2.yml: ``stack2(*args, env_drop=(), **extra_vars)``."""
    playbook = Path(sys.executable).parent / "ansible-playbook"
    if not (REPO / ".collections" / "ansible_collections" / "do_solutions" / "gtc_demo").exists():
        pytest.fail("the collection link under .collections is missing: run `make setup`")

    def run(*args: str, env_drop: tuple[str, ...] = (), playbook_path: Path = HERE / "stack2.yml", **extra: Any) -> Run:
        env = k8s_cluster.env()
        env.update(SECRET_ENV)
        for name in env_drop:
            env.pop(name, None)
        env.update({"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_FORCE_COLOR": "0"})
        extra_vars = {"cluster_config_helm_chart_dir": str(charts),
                      "cluster_config_helm_binary": str(k8s_cluster.helm), **extra}
        cmd = [str(playbook), str(playbook_path), "-i", str(HERE / "inventory"),
               "-e", json.dumps(extra_vars), *args]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
        recap, tasks = _parse(proc.stdout)
        result = Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started, recap, tasks)
        for value in SECRET_ENV.values():
            assert value not in proc.stdout and value not in proc.stderr, "a secret value reached the output"
        return result

    return run


# --------------------------------------------------------------------------
# The Dynamo operator stand-in (tests/stand_ins/dynamo_operator.py)


class ReadyGenerations:
    """The generations of the demo's graph the operator stand-in reported Ready (``gen in ...``)."""

    def __init__(self, operator: Any, graph: str = "gtc-demo/gtc-demo") -> None:
        self.operator = operator
        self.graph = graph

    def __contains__(self, generation: object) -> bool:
        return bool(self.operator.logged(f"{self.graph}: state successful generation {generation} Ready=True"))

    def __repr__(self) -> str:
        return repr(self.operator.logged(f"{self.graph}: state "))


@pytest.fixture(scope="session")
def fake_dynamo_operator(k8s_cluster) -> Iterator[ReadyGenerations]:
    """The operator stand-in: queue check, pods through the real scheduler, Services, status.

    It needs what the dynamo-platform release brings: KAI's Queue CRD and the
    queue the graph names (the stand-in chart, tests/stand_ins/dynamo_platform_chart.py,
    installed by cluster_config); without them it fails the graph as the
    operator does. Yields the Ready generations (``generation in fixture``).
    """
    from stand_ins.dynamo_operator import DynamoOperator  # pylint: disable=import-outside-toplevel

    operator = DynamoOperator(k8s_cluster.api_client())
    operator.start()
    yield ReadyGenerations(operator)
    operator.stop()
