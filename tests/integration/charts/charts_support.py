"""Helpers for the chart tests: cluster_config's releases, rendered by the real upstream charts.

``plans`` runs render_plan.yml per inventory: the role's own validate.yml and
_plan.yml, so each release's values are the role's templates rendered by
Ansible exactly as _k8s.yml passes them to Helm. ``helm`` is the test cluster's
pinned Helm (tests/cluster/build). ``chart_archive`` finds the upstream
archive of a release through tests/artifacts.py (GTC_SHARED_DIR, ../shared,
else a pinned download). No cluster is started: everything here is
``helm template`` and file reading.

dynamo-platform (NGC) has no upstream archive here; it is the last release,
and the tests say where they leave it out.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helpers import REPO

sys.path.insert(0, str(REPO / "tests"))
import artifacts  # noqa: E402  pylint: disable=wrong-import-position

HERE = Path(__file__).resolve().parent
PLAYBOOK = HERE / "render_plan.yml"
# What the preflight checks need set; none of these values is real.
FAKE_SECRETS = {"HF_TOKEN": "hf_fake", "SPACES_ACCESS_KEY_ID": "id_fake", "SPACES_SECRET_ACCESS_KEY": "secret_fake",
                "DIGITALOCEAN_ACCESS_TOKEN": "dop_fake"}
INVENTORIES = {"dev": "inventories/dev", "kind": "inventories/kind"}
# Releases whose chart is not among the public archives (see the module docstring).
NO_PUBLIC_CHART = {"dynamo-platform"}
# The Kubernetes version DOKS runs for the demo (roles/infra: infra_kubernetes_version).
KUBE_VERSION = "1.33.0"


def render_plan(inventory: str, out: Path, extra: dict[str, Any] | None = None,
                env: dict[str, str] | None = None, helm_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run render_plan.yml; the plan lands in ``out`` (JSON)."""
    full_env = {k: v for k, v in os.environ.items() if k not in FAKE_SECRETS and k != "DIGITALOCEAN_TOKEN"}
    full_env.update(FAKE_SECRETS if env is None else env)
    full_env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    if helm_dir is not None:
        full_env["PATH"] = f"{helm_dir}{os.pathsep}{full_env.get('PATH', '')}"
    extra_vars = {"render_dest": str(out), **(extra or {})}
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(PLAYBOOK), "-i", inventory,
         "-e", json.dumps(extra_vars)],
        cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600, check=False)


def chart_archive(release: dict[str, Any]) -> Path:
    return artifacts.resolve(f"charts/{release['chart']}-{release['version']}.tgz")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML as Kubernetes reads it: a bare `=` (YAML 1.1's value tag, in some CRDs' enums) is a string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@dataclass
class Doc:
    """One object a chart renders, and the file of the chart it comes from."""

    source: str
    obj: dict[str, Any]

    @property
    def api_version(self) -> str:
        return self.obj["apiVersion"]

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def from_crds_dir(self) -> bool:
        """Helm installs a chart's (or subchart's) crds/ folder before anything else in the release."""
        return "/crds/" in f"/{self.source}" and "/templates/" not in f"/{self.source}"


def helm_template(helm: Path, release: dict[str, Any], values_dir: Path,
                  api_versions: set[str] = frozenset()) -> list[Doc]:
    """`helm template` of the real chart with the role's values, CRDs included.

    ``api_versions`` are the group/versions (and group/version/Kind) the
    cluster serves beyond the built-in ones at the time this release is
    installed, so charts that look at .Capabilities render as they would there.
    """
    values = values_dir / f"values-{release['name']}.json"
    values.write_text(json.dumps(release["values"]))
    cmd = [str(helm), "template", release["name"], str(chart_archive(release)), "--namespace", release["namespace"],
           "-f", str(values), "--include-crds", "--kube-version", KUBE_VERSION]
    for api in sorted(api_versions):
        cmd += ["--api-versions", api]
    env = {"HOME": str(values_dir), "PATH": os.environ.get("PATH", ""),
           "HELM_CACHE_HOME": str(values_dir / "cache"), "HELM_CONFIG_HOME": str(values_dir / "config"),
           "HELM_DATA_HOME": str(values_dir / "data")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=env)
    assert proc.returncode == 0, f"helm template {release['name']} failed:\n{proc.stderr[-3000:]}"
    docs = []
    source = ""
    for chunk in proc.stdout.split("\n---\n"):
        # Helm heads each file with "# Source: <path>"; a file of several
        # documents goes on under the same source.
        source = next((ln.split(":", 1)[1].strip() for ln in chunk.splitlines() if ln.startswith("# Source:")), source)
        obj = yaml.load(chunk, Loader=_Loader)  # noqa: S506 - a safe loader
        if isinstance(obj, dict) and obj.get("kind"):
            docs.append(Doc(source, obj))
    return docs


def chart_values(archive: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any] | None]:
    """(values.yaml, {subchart name or alias: its values.yaml}, values.schema.json or None) of a chart archive."""
    values: dict[str, Any] = {}
    schema = None
    subcharts: dict[str, dict[str, Any]] = {}
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        top = names[0].split("/", 1)[0]

        def read(name: str) -> Any:
            handle = tar.extractfile(name)
            assert handle is not None
            return handle.read()

        values = yaml.safe_load(read(f"{top}/values.yaml")) or {}
        if f"{top}/values.schema.json" in names:
            schema = json.loads(read(f"{top}/values.schema.json"))
        meta = yaml.safe_load(read(f"{top}/Chart.yaml"))
        aliases = {d["name"]: d.get("alias", d["name"]) for d in meta.get("dependencies") or []}
        for name in names:
            parts = name.split("/")
            if len(parts) == 4 and parts[1] == "charts" and parts[3] == "values.yaml":
                subcharts[aliases.get(parts[2], parts[2])] = yaml.safe_load(read(name)) or {}
            elif len(parts) == 3 and parts[1] == "charts" and parts[2].endswith(".tgz"):
                # A dependency kept as an archive (as a chart repository may publish it).
                with tarfile.open(fileobj=io.BytesIO(read(name))) as sub:
                    sub_top = sub.getnames()[0].split("/", 1)[0]
                    handle = sub.extractfile(f"{sub_top}/values.yaml")
                    assert handle is not None
                    subcharts[aliases.get(sub_top, sub_top)] = yaml.safe_load(handle.read()) or {}
    return values, subcharts, schema
