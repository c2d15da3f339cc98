"""The loadgen role: argument spec in step with defaults, Kubernetes objects that render
to valid objects, and playbooks/images.yml stopping cleanly without a Docker engine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "loadgen"
BIN = Path(sys.executable).parent


def _playbook(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_defaults_and_argument_spec_agree():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = specs["main"]["options"]
    assert set(defaults) == set(options)
    assert specs["teardown"]["options"] == options
    for name, opt in options.items():
        assert opt.get("type") and opt.get("description"), name


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("loadgen-render")
    run = _playbook("tests/unit/loadgen/render.yml", "-i", "inventories/dev", "-e", f"render_dir={out}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return {p.stem: yaml.safe_load(p.read_text()) for p in out.glob("*.yaml")}


def test_objects_are_valid_and_consistent(rendered):
    from kubernetes.client import ApiClient, V1ConfigMap, V1Deployment, V1Service

    cm, dep, svc = rendered["configmap"], rendered["deployment"], rendered["service"]
    # The Kubernetes client's models take them (types, required fields).
    api = ApiClient()
    for obj, model in ((cm, V1ConfigMap), (dep, V1Deployment), (svc, V1Service)):
        typed = api._ApiClient__deserialize(obj, model.__name__)  # the client's own model loader
        assert typed.metadata.name == "loadgen" and typed.metadata.namespace == "gtc-demo"
    assert (dep["apiVersion"], dep["kind"], svc["kind"], cm["kind"]) == ("apps/v1", "Deployment", "Service", "ConfigMap")
    # The Service selects the pods; the gateway routes to loadgen:3000; the
    # PodMonitor selects app.kubernetes.io/name=gtc-loadgen on port "http".
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    assert labels["app.kubernetes.io/name"] == "gtc-loadgen"
    assert svc["spec"]["ports"][0] == {"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["name"] == "http"
    assert re.fullmatch(r"registry\.digitalocean\.com/do-solutions-sfo3/gtc-demo-loadgen:\d{8}-[0-9a-f]{7,}",
                        container["image"]), container["image"]
    env = {e["name"]: e for e in container["env"]}
    assert env["LOADGEN_KV_URL"]["value"] == "http://gtc-demo-frontend.gtc-demo.svc.cluster.local:8000"
    assert env["LOADGEN_ROUND_ROBIN_URL"]["value"].startswith("http://gtc-demo-frontend-rr.")
    assert env["LOADGEN_MODEL"]["value"] == "nvidia/Llama-3.1-70B-Instruct-FP8"
    # The key only ever comes from a Secret, and is optional.
    ref = env["GRADIENT_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is True and "value" not in env["GRADIENT_API_KEY"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert json.loads(cm["data"]["presets.json"]) == {} and json.loads(cm["data"]["settings.json"]) == {}
    assert dep["spec"]["replicas"] == 1


def test_role_refuses_bad_values():
    # JSON results: one message per line, whatever its length.
    run = _playbook("tests/unit/loadgen/refuse.yml", "-i", "inventories/local",
                    env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    out = run.stdout
    for needle in ("loadgen_local_port must be a TCP port (1-65535), got '70000'",
                   "loadgen_kv_url must be a base URL like http://host:port (without /v1), got 'http://x:8000/v1'",
                   "loadgen_settings has a key or value the load generator does not know",
                   "loadgen_presets must map preset names",
                   "loadgen_model is empty and no dynamo__output.model was published"):
        assert needle in out, (needle, out[-3000:])
    # Five bad cases fail, the good one passes every check.
    assert len(re.findall(r"^(fatal|failed): ", out, re.M)) == 5, out[-3000:]


def test_images_playbook_stops_cleanly_without_a_docker_engine():
    run = _playbook("playbooks/images.yml", "-i", "inventories/local",
                    env={"DOCKER_HOST": "unix:///nonexistent/gtc-demo-test/docker.sock"})
    assert run.returncode == 0, run.stdout[-3000:]
    assert "No Docker engine answers at unix:///nonexistent/gtc-demo-test/docker.sock" in run.stdout
    assert re.search(r"gtc-demo-loadgen:\d{8}-[0-9a-f]{7,}", run.stdout)
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", run.stdout)
    assert "Build the load generator's image" not in run.stdout


def test_source_sync_is_idempotent_and_skips_build_leftovers(tmp_path):
    script = ROLE / "files" / "sync_tree.py"
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text("A = 1\n")
    (src / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (src / "pkg.egg-info").mkdir()
    (src / "pkg.egg-info" / "PKG-INFO").write_text("x")

    def sync(*extra):
        out = subprocess.run([sys.executable, str(script), str(src), str(dest), *extra],
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    assert sync("--check") == {"changed": True, "files": ["pkg/a.py"]} and not dest.exists()
    assert sync() == {"changed": True, "files": ["pkg/a.py"]}
    assert sync() == {"changed": False, "files": []}  # a second run changes nothing
    assert not (dest / "pkg" / "__pycache__").exists() and not (dest / "pkg.egg-info").exists()
    (src / "pkg" / "a.py").write_text("A = 2\n")
    (dest / "pkg" / "stale.py").write_text("")
    assert sync() == {"changed": True, "files": ["pkg/a.py", "pkg/stale.py (removed)"]}
    assert (dest / "pkg" / "a.py").read_text() == "A = 2\n" and not (dest / "pkg" / "stale.py").exists()
