"""The loadgen role without a cluster: its specs agree with its defaults, its Kubernetes
objects render valid for the frontends dynamo publishes (in their order), its refusals
come from the spec or name the variable, and its install script changes only what differs.
Results are read from files the playbooks write and from the JSON callback."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, run_playbook

ROLE = REPO / "roles" / "loadgen"
MODEL = "nvidia/Llama-3.1-70B-Instruct-FP8"
# As dynamo publishes them on doks, reordered (round_robin first) and with a third.
FRONTENDS = {
    "round_robin": {"url": "http://gtc-demo-frontend-rr.gtc-demo.svc.cluster.local:8000", "title": "Round-robin",
                    "router_mode": "round-robin", "metrics": "http://gtc-demo-frontend-rr.gtc-demo.svc.cluster.local:8000/metrics"},
    "kv": {"url": "http://gtc-demo-frontend.gtc-demo.svc.cluster.local:8000", "title": "KV-aware",
           "router_mode": "kv", "metrics": "http://gtc-demo-frontend.gtc-demo.svc.cluster.local:8000/metrics"},
    "random": {"url": "http://gtc-demo-frontend-random.gtc-demo.svc.cluster.local:8000", "title": "Random",
               "router_mode": "random", "metrics": "http://gtc-demo-frontend-random.gtc-demo.svc.cluster.local:8000/metrics"},
}


# dynamo__output.topology's shape (roles/dynamo/README.md).
TOPOLOGY = {"replicas": 2, "tensor_parallel": 4, "engine": "tensorrt_llm", "gpu": "8 × H100", "model": MODEL}


def test_every_entry_point_has_the_defaults_as_its_options():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    entry_points = {p.stem for p in (ROLE / "tasks").glob("*.yml") if not p.stem.startswith("_")}
    assert set(specs) == entry_points == {"main", "validate", "validate_account", "outputs", "teardown"}
    for name, spec in specs.items():
        assert set(spec["options"]) == set(defaults), name
    for name, opt in specs["main"]["options"].items():
        assert opt.get("type") and opt.get("description"), name


def _render(tmp_path: Path, inventory: str, frontends: dict) -> dict:
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"dynamo__output": {"model": MODEL, "rollout_id": "r7", "frontends": frontends,
                                                    "topology": TOPOLOGY},
                                 "render_dir": str(tmp_path)}))
    run = run_playbook("tests/unit/loadgen/render.yml", "-e", f"@{extra}", inventory=inventory)
    assert run.returncode == 0, run.output[-3000:]
    out = {p.stem: yaml.safe_load(p.read_text()) for p in tmp_path.glob("*.yaml")}
    out["output"] = json.loads((tmp_path / "output.json").read_text())
    return out


@pytest.fixture(scope="module")
def doks(tmp_path_factory):
    return _render(tmp_path_factory.mktemp("doks"), "inventories/dev", FRONTENDS)


def test_objects_are_valid_and_consistent(doks):
    from kubernetes.client import ApiClient, V1Deployment, V1Service

    dep, svc, mon = doks["deployment"], doks["service"], doks["podmonitor"]
    api = ApiClient()
    for obj, model in ((dep, V1Deployment), (svc, V1Service)):
        typed = api._ApiClient__deserialize(obj, model.__name__)  # the client's own model loader
        assert typed.metadata.name == "loadgen" and typed.metadata.namespace == "gtc-demo"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0] == {"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["name"] == "http"
    # The PodMonitor of the role's own pods: beside them, selecting them, on the named port.
    assert (mon["apiVersion"], mon["kind"], mon["metadata"]["namespace"]) == ("monitoring.coreos.com/v1", "PodMonitor", "gtc-demo")
    assert mon["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert mon["spec"]["podMetricsEndpoints"][0]["port"] == "http"
    assert mon["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["template"]["metadata"]["annotations"]["gtc-demo/model-rollout"] == "r7"

    # The pod's service account may get and patch the settings' ConfigMap, and nothing else.
    sa, role, binding = doks["serviceaccount"], doks["role"], doks["rolebinding"]
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"] == "loadgen"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["loadgen-settings"],
                              "verbs": ["get", "patch"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "loadgen-settings"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "loadgen", "namespace": "gtc-demo"}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LOADGEN_STATE_CONFIGMAP"] == "gtc-demo/loadgen-settings"


def test_the_container_gets_every_frontend_in_order(doks):
    container = doks["deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert json.loads(env["LOADGEN_FRONTENDS"]["value"]) == [
        {"id": fid, "url": f["url"], "title": f["title"]} for fid, f in FRONTENDS.items()]
    assert env["LOADGEN_MODEL"]["value"] == MODEL
    assert json.loads(env["LOADGEN_PRESETS"]["value"]) == {} and json.loads(env["LOADGEN_SETTINGS"]["value"]) == {}
    assert not {"LOADGEN_KV_URL", "LOADGEN_ROUND_ROBIN_URL"} & set(env)
    # What the demo runs on, for the page's "2 × TP4 · 8 × H100 · model" line.
    assert json.loads(env["LOADGEN_TOPOLOGY"]["value"]) == TOPOLOGY
    # The key only ever comes from a Secret, and is optional.
    ref = env["GRADIENT_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is True and "value" not in env["GRADIENT_API_KEY"]
    # The presenter token too, and it is required: a pod never runs with open controls.
    assert env["GTC_LOADGEN_PRESENTER_TOKEN"] == {"name": "GTC_LOADGEN_PRESENTER_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "loadgen-presenter", "key": "token"}}}
    assert "--presenter-token" not in " ".join(container["args"])


def test_image_and_pull_secret_come_from_the_registry(doks, tmp_path):
    spec = doks["deployment"]["spec"]["template"]["spec"]
    image = spec["containers"][0]["image"]
    assert re.fullmatch(r"registry\.digitalocean\.com/do-solutions-sfo3/gtc-demo-loadgen:\d{8}-[0-9a-f]{7,}", image), image
    # DOKS's registry integration names the secret registry-<registry name>.
    assert spec["imagePullSecrets"] == [{"name": "registry-do-solutions-sfo3"}]
    out = doks["output"]
    command = out.pop("presenter_token_command")
    assert out == {"platform": "doks", "url": "http://loadgen.gtc-demo.svc.cluster.local:3000",
                   "service": {"name": "loadgen", "namespace": "gtc-demo", "port": 3000},
                   "image": {"repository": "registry.digitalocean.com/do-solutions-sfo3/gtc-demo-loadgen",
                             "tag": image.rsplit(":", 1)[1]},
                   "presenter_token_secret": {"namespace": "gtc-demo", "name": "loadgen-presenter", "key": "token"}}
    # The command that prints the token (the role prints this, never the token).
    assert re.fullmatch(r"kubectl --kubeconfig \S+( --context \S+)? -n gtc-demo get secret loadgen-presenter "
                        r"-o jsonpath='\{\.data\.token\}' \| base64 -d", command), command
    kind = _render(tmp_path, "inventories/kind", {"kv": FRONTENDS["kv"]})
    assert "imagePullSecrets" not in kind["deployment"]["spec"]["template"]["spec"]
    assert json.loads({e["name"]: e for e in kind["deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
                      ["LOADGEN_FRONTENDS"]["value"]) == [{"id": "kv", "url": FRONTENDS["kv"]["url"], "title": "KV-aware"}]


def test_local_output_has_the_same_keys():
    run = run_playbook("tests/unit/loadgen/outputs.yml", json_output=True)
    assert run.returncode == 0, run.output[-3000:]
    facts = [t.result["ansible_facts"]["loadgen__output"] for t in run.tasks()
             if "loadgen__output" in t.result.get("ansible_facts", {})]
    assert facts and facts[-1]["platform"] == "local" and facts[-1]["url"] == "http://127.0.0.1:3000"
    assert facts[-1]["service"] == {"name": "", "namespace": "", "port": 0}
    assert facts[-1]["image"]["repository"].endswith("/gtc-demo-loadgen")
    assert facts[-1]["presenter_token_secret"] is None and facts[-1]["presenter_token_command"] is None


CASES = [
    ({"name": "port", "port": 70000}, "loadgen_local_port and loadgen_k8s_port must be TCP ports (1-65535), got 70000 and 3000"),
    ({"name": "port type", "port": "three"}, "argument 'loadgen_local_port' is of type str and we were unable to convert to int"),
    ({"name": "settings key", "settings": {"colour": "red"}}, "loadgen_settings.colour. Supported parameters include"),
    ({"name": "settings type", "settings": {"concurrency": "lots"}}, "argument 'concurrency' is of type str found in 'loadgen_settings'"),
    ({"name": "routing", "settings": {"routing": "nope"}},
     "loadgen_settings.routing is 'nope', which is not a frontend: use one of gtc_demo_frontends' ids (kv, round_robin)"),
    ({"name": "presets", "presets": {"booth": {"speed": 3}}}, "loadgen_presets must map preset names"),
    ({"name": "tag", "tag": "no spaces"}, "loadgen_image_tag is not a valid image tag: no spaces"),
]


def test_role_refuses_bad_values(tmp_path):
    cases = [case for case, _needle in CASES] + [{"name": "good", "settings": {"routing": "round_robin", "rate": 2}}]
    out = tmp_path / "refusals.json"
    run = run_playbook("tests/unit/loadgen/refuse.yml", "-e", json.dumps({"cases": cases, "refusals_file": str(out)}))
    assert run.returncode == 0, run.output[-3000:]
    refusals = json.loads(out.read_text())
    for case, needle in CASES:
        assert needle in refusals[case["name"]], (case, refusals[case["name"]])
    assert refusals["good"] == ""


def test_main_refuses_to_start_without_dynamo_frontends(tmp_path):
    """Past the preflight, main stops before any change when dynamo published no frontends."""
    playbook = tmp_path / "loadgen.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n    - do_solutions.gtc_demo.loadgen\n")
    run = run_playbook(str(playbook), "-e", json.dumps({"gtc_demo_local_root": str(tmp_path / "nothing")}),
                       json_output=True)
    failed = [t for t in run.tasks() if t.failed]
    assert run.returncode != 0 and len(failed) == 1, run.output[-3000:]
    assert "dynamo__output has no frontends with URLs or no model" in failed[0].result["msg"]
    assert not any(t.changed for t in run.tasks()) and not (tmp_path / "nothing").exists()


def test_images_playbook_stops_cleanly_without_a_docker_engine():
    run = run_playbook("playbooks/images.yml", env={"DOCKER_HOST": "unix:///nonexistent/gtc-demo-test/docker.sock"},
                       json_output=True)
    assert run.returncode == 0, run.output[-3000:]
    assert run.recap["changed"] == 0 and run.recap["failed"] == 0
    said = " ".join(str(t.result.get("msg", "")) for t in run.tasks() if t.action == "ansible.builtin.debug")
    assert "No Docker engine answers at unix:///nonexistent/gtc-demo-test/docker.sock" in said
    assert re.search(r"gtc-demo-loadgen:\d{8}-[0-9a-f]{7,}", said)
    assert not [t for t in run.tasks() if t.action.endswith(("docker_image", "docker_image_build"))]


def _install_app():
    spec = importlib.util.spec_from_file_location("install_app", ROLE / "files" / "install_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_script_mirrors_the_source_and_skips_build_leftovers(tmp_path):
    install_app = _install_app()
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text("A = 1\n")
    (src / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (src / "pkg.egg-info").mkdir()
    (src / "pkg.egg-info" / "PKG-INFO").write_text("x")
    before = install_app.digest(str(src))
    assert install_app.sync(str(src), str(dest), check=True) == ["pkg/a.py"] and not dest.exists()
    assert install_app.sync(str(src), str(dest), check=False) == ["pkg/a.py"]
    assert install_app.sync(str(src), str(dest), check=False) == []  # a second run changes nothing
    assert not (dest / "pkg" / "__pycache__").exists() and not (dest / "pkg.egg-info").exists()
    (src / "pkg" / "a.py").write_text("A = 2\n")
    (dest / "pkg" / "stale.py").write_text("")
    assert install_app.sync(str(src), str(dest), check=False) == ["pkg/a.py", "pkg/stale.py (removed)"]
    assert (dest / "pkg" / "a.py").read_text() == "A = 2\n" and not (dest / "pkg" / "stale.py").exists()
    assert install_app.digest(str(src)) != before


def test_install_script_asks_the_venv_for_the_pins_without_pip(tmp_path):
    install_app = _install_app()
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    for dist in ("aiohttp-3.14.5.dist-info", "prometheus_client-0.26.0.dist-info", "uvloop-0.22.0.dist-info"):
        (site / dist).mkdir(parents=True)
    pins = ["aiohttp==3.14.5", "prometheus-client==0.26.0", "uvloop==0.23.0", "setuptools==80.9.0"]
    # Names are compared as dist-info folders spell them (prometheus-client -> prometheus_client).
    assert install_app.missing_pins(str(tmp_path), pins) == ["uvloop==0.23.0", "setuptools==80.9.0"]
    assert install_app.missing_pins(str(tmp_path / "nothing"), pins) == pins


def test_install_script_check_mode_reports_and_writes_nothing(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("A = 1\n")
    out = subprocess.run([sys.executable, str(ROLE / "files" / "install_app.py"), "--venv", str(tmp_path / "venv"),
                          "--app", str(tmp_path / "src"), "--copy", str(tmp_path / "dest"), "--pin", "aiohttp==3.14.5",
                          "--check"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["changed"] and report["files"] == ["a.py"] and len(report["digest"]) == 16
    assert report["actions"] == ["created the virtual environment", "installed aiohttp==3.14.5",
                                 "copied 1 file(s) of the app's source", "installed the app"]
    assert not (tmp_path / "venv").exists() and not (tmp_path / "dest").exists()
