"""The load generator's image, for real: apps/loadgen/Dockerfile built unchanged by
playbooks/images.yml in a private Docker engine (on the local stand-in of its base image), pushed
to a real registry with htpasswd auth and pulled back by digest, then run the way the loadgen role's
Deployment runs it (its uid, read-only root filesystem, capabilities, args and environment, read
from the manifest the role renders) against the local demo's Dynamo frontends.

Each packaging check below reads what the image serves, so it fails when the image lacks it: the
static files or the corpus missing from the wheel, a wrong entrypoint or port, a uid that cannot
read its files, or a dependency the lock leaves out."""
from __future__ import annotations

import base64
import json
import re
import secrets
import time
import urllib.error
import urllib.request

import pytest
import yaml
from helpers import REPO, free_ports, run_playbook
from image_support.images import images_playbook

# One worker runs them all under pytest-xdist (`make test`: -n 2 --dist loadgroup), so the module's
# engine, registry and build are made once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("loadgen_image")]

APP = REPO / "apps" / "loadgen" / "src" / "gtc_loadgen"
CONTAINER = "gtc-loadgen-image-test"
# Values for the Secrets the Deployment requires (the role generates them on a cluster).
PRESENTER_TOKEN = "image-test-presenter-token"
REQUIRED_SECRETS = {"GTC_LOADGEN_PRESENTER_TOKEN": PRESENTER_TOKEN}
# Settings kept in a ConfigMap need the in-cluster API server, which a container on this engine has
# not: left out here (the app refuses to start without it); tests/integration/loadgen/test_role_k8s.py
# runs that store against a real API server with the role's ServiceAccount.
NEEDS_A_CLUSTER = {"LOADGEN_STATE_CONFIGMAP"}
MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def test_images_playbook_builds_and_pushes_to_the_registry(built, image_registry, docker_engine):
    said = " ".join(str(t.result.get("msg", "")) for t in built.run.tasks() if t.name == "Show what was built")
    digest = re.search(re.escape(built.repository) + r"@(sha256:[0-9a-f]{64})", said)
    assert digest, said
    assert built.repository == f"{image_registry.prefix}/gtc-demo-loadgen"
    assert re.fullmatch(r"\d{8}-[0-9a-f]{7,}", built.tag), built.tag  # the checkout's YYYYMMDD-<sha>
    assert image_registry.token not in built.run.output
    # The registry holds the tag, under the digest the engine reported.
    name = built.repository.split("/", 1)[1]
    auth = base64.b64encode(f"{image_registry.token}:{image_registry.token}".encode()).decode()
    request = urllib.request.Request(f"http://{image_registry.registry.address}/v2/{name}/manifests/{built.tag}",
                                     method="HEAD", headers={"Authorization": f"Basic {auth}",
                                                             "Accept": MANIFEST_ACCEPT})
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (loopback)
        assert resp.headers["Docker-Content-Digest"] == digest.group(1)
    # Without credentials it refuses (the htpasswd auth is on).
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{image_registry.registry.address}/v2/{name}/tags/list", timeout=30)
    assert refused.value.code == 401
    # Pulled back by digest, it is the image that was built.
    built_id = docker_engine.docker("image", "inspect", "--format", "{{.Id}}", built.ref).stdout.strip()
    docker_engine.docker("image", "rm", built.ref)
    pulled = f"{built.repository}@{digest.group(1)}"
    docker_engine.docker("pull", pulled, timeout=300)
    assert docker_engine.docker("image", "inspect", "--format", "{{.Id}}", pulled).stdout.strip() == built_id
    docker_engine.docker("tag", pulled, built.ref)


def test_a_wrong_token_is_refused_clearly_and_never_shown(built, image_registry, docker_engine):
    wrong = "dop_v1_wrong_" + secrets.token_hex(16)
    run = images_playbook(docker_engine, image_registry, wrong)
    failed = run.failed_tasks()
    assert run.returncode != 0 and failed and failed[-1].name == "Check that the registry took the login", \
        run.output[-3000:]
    # The login itself failed too, ignored, its result hidden (no_log): the check says why.
    assert [t.name for t in failed[:-1]] == ["Log in to the registry"] and "censored" in failed[0].result
    msg = failed[-1].result["msg"]
    assert f"{image_registry.registry.address} refused the login" in msg and "DIGITALOCEAN_ACCESS_TOKEN" in msg
    assert "401 Unauthorized" in msg and "Nothing was built or pushed." in msg
    assert wrong not in run.output and image_registry.token not in run.output
    assert not [t for t in run.tasks() if t.action.endswith("docker_image") and not t.skipped]


@pytest.fixture(scope="module")
def deployment(built, local_demo, tmp_path_factory) -> dict:
    """The loadgen Deployment as the role renders it for DOKS (inventories/dev), pointing at the
    local demo's frontends and the image just built; its port is a free one of ours."""
    out = tmp_path_factory.mktemp("loadgen-render")
    (port,) = free_ports(1)
    registry = built.repository.rsplit("/", 1)[0]
    frontends = {fid: {"url": url, "title": fid.replace("_", " ").title()} for fid, url in local_demo.frontends.items()}
    variables = {"render_dir": str(out), "gtc_demo_image_registry": registry, "loadgen_image_tag": built.tag,
                 "loadgen_k8s_port": port,
                 "dynamo__output": {"model": local_demo.model, "rollout_id": "r1", "frontends": frontends}}
    (out / "vars.json").write_text(json.dumps(variables))
    run = run_playbook("tests/unit/loadgen/render.yml", "-e", f"@{out / 'vars.json'}", inventory="inventories/dev")
    assert run.returncode == 0, run.output[-3000:]
    return yaml.safe_load((out / "deployment.yaml").read_text())


def docker_run_args(deployment: dict) -> tuple[list[str], int]:
    """`docker run` options for the Deployment's container, and the port it listens on."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    args = ["--user", f"{security['runAsUser']}:{security['runAsGroup']}", "--network", "host"]
    assert security["runAsNonRoot"] and security["runAsUser"] != 0
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for cap in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    for item in container.get("env", []):
        if item["name"] in NEEDS_A_CLUSTER:
            continue
        if "value" in item:
            args += ["--env", f"{item['name']}={item['value']}"]
        elif item["valueFrom"]["secretKeyRef"].get("optional") is True:
            continue  # a Secret the role makes only when the key is set, and not set here
        else:  # a Secret the pod cannot start without: what the role would have put in it
            assert item["name"] in REQUIRED_SECRETS, item
            args += ["--env", f"{item['name']}={REQUIRED_SECRETS[item['name']]}"]
    assert "command" not in container  # the image's ENTRYPOINT runs, with the Deployment's args
    cargs = list(container["args"])
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "http"]
    assert cargs[cargs.index("--port") + 1] == str(port)
    # The pod listens on all its interfaces for the Service; the host's network is shared here,
    # so it listens on loopback only (the one change to the Deployment's args).
    assert cargs[cargs.index("--host") + 1] == "0.0.0.0"
    cargs[cargs.index("--host") + 1] = "127.0.0.1"
    return [*args, container["image"], *cargs], port


@pytest.fixture(scope="module")
def container(deployment, docker_engine) -> str:
    args, port = docker_run_args(deployment)
    docker_engine.docker("run", "--detach", "--name", CONTAINER, *args)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5):  # noqa: S310 (loopback)
                    break
            except OSError:
                state = docker_engine.docker("inspect", "--format", "{{.State.Status}}", CONTAINER).stdout.strip()
                if state != b"running" or time.monotonic() > deadline:
                    logs = docker_engine.docker("logs", CONTAINER, check=False)
                    pytest.fail(f"the container did not answer on /healthz ({state!r}):\n"
                                f"{(logs.stdout + logs.stderr).decode(errors='replace')[-4000:]}")
                time.sleep(0.5)
        yield base
    finally:
        docker_engine.docker("rm", "--force", CONTAINER, check=False)


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (loopback)
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def test_the_image_is_shaped_like_the_service_expects(built, docker_engine):
    config = json.loads(docker_engine.docker("image", "inspect", "--format", "{{json .Config}}", built.ref).stdout)
    defaults = yaml.safe_load((REPO / "roles" / "loadgen" / "defaults" / "main.yml").read_text())
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["gtc-loadgen"]
    assert list(config["ExposedPorts"]) == [f"{defaults['loadgen_k8s_port']}/tcp"]
    assert config["Cmd"][config["Cmd"].index("--port") + 1] == str(defaults["loadgen_k8s_port"])


def test_the_container_serves_the_page_static_files_and_metrics(container, deployment):
    status, kind, body = get(container + "/healthz")
    health = json.loads(body)
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert status == 200 and health["status"] == "ok" and health["model"] == env["LOADGEN_MODEL"]
    status, kind, page = get(container + "/")
    assert status == 200 and kind.startswith("text/html") and b"<canvas" in page
    # Every file the page loads from /static/ is served, byte for byte the checkout's.
    assets = set(re.findall(rb'(?:src|href)="/static/([^"?]+)', page))
    assert b"app.js" in assets, assets
    for asset in assets:
        status, _kind, body = get(container + "/static/" + asset.decode())
        assert status == 200 and body == (APP / "static" / asset.decode()).read_bytes(), asset
    status, kind, metrics = get(container + "/metrics")
    assert status == 200 and kind.startswith("text/plain") and b"# TYPE loadgen_" in metrics


def test_one_conversation_against_the_local_frontends(container, local_demo):
    def api(path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(container + path, json.dumps(body).encode() if body is not None else None,
                                         {"content-type": "application/json",
                                          "authorization": f"Bearer {PRESENTER_TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (loopback)
            return json.load(resp)

    state = api("/api/state")
    assert [f["id"] for f in state["frontends"]] == list(local_demo.frontends)
    api("/api/settings", {"routing": "kv", "concurrency": 1, "rate": 0, "turns_min": 2, "turns_max": 2,
                          "think_min_s": 0.1, "think_max_s": 0.2, "max_tokens": 16, "auto": False, "running": True})
    deadline = time.monotonic() + 120
    done: list[dict] = []
    while not done:
        assert time.monotonic() < deadline, api("/api/state")["stats"]["last_errors"][-3:]
        time.sleep(1)
        done = [c for c in api("/api/conversations")["conversations"] if c["status"] == "done"]
    api("/api/settings", {"running": False})
    detail = api(f"/api/conversations/{done[0]['id']}")
    assert len(detail["turns"]) == 2 and all(t["ok"] and t["answer"].strip() for t in detail["turns"])
    # Its document comes from the corpus the image ships (the titles of the checkout's corpus).
    titles = {re.search(r"^# (.+)$", p.read_text(), re.M).group(1).strip() for p in (APP / "corpus").glob("*.md")}
    assert detail["title"] in titles, (detail["title"], sorted(titles)[:3])
    metrics = get(container + "/metrics")[2].decode()
    assert re.search(r'loadgen_requests_total\{outcome="ok",routing="kv"\} [1-9]', metrics), metrics[-2000:]
