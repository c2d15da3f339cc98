"""validate_inference through the API server's service proxy: the kubeconfig read in
Python (plugins/module_utils/kubeconfig.py), the proxy URL, the bearer token and the
API server's CA, and clear errors for kubeconfigs it cannot use.

The API server is a scripted HTTPS server on 127.0.0.1 (tests/unit/plugins/
openai_fake_server.py) that answers under the service proxy's path, so the
module's whole HTTP path runs for real; the module runs as a playbook runs it
(ansible ad hoc, JSON callback).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO

sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins"))
sys.path.insert(0, str(REPO / ".collections"))
from openai_fake_server import MODEL, FakeOpenAI, dynamo_routes, self_signed_tls  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.do_solutions.gtc_demo.plugins.module_utils import kubeconfig  # noqa: E402  pylint: disable=wrong-import-position

PROXY = "/api/v1/namespaces/gtc-demo/services/http:gtc-demo-frontend:8000/proxy"
TOKEN = "kubeconfig-token-" + "y" * 24


def run_module(**args: Any) -> dict[str, Any]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    env.pop("K8S_AUTH_KUBECONFIG", None)
    env.pop("K8S_AUTH_CONTEXT", None)
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", "-m", "do_solutions.gtc_demo.validate_inference",
         "-a", json.dumps(args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(f"no JSON result:\n{proc.stdout}\n{proc.stderr}") from exc
    result["_stdout"] = proc.stdout
    return result


def write_kubeconfig(path: Path, server: str, ca: Path | None = None, user: dict | None = None,
                     contexts: dict[str, str] | None = None, current: str = "do-test", insecure: bool = False) -> Path:
    cluster: dict[str, Any] = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    contexts = contexts or {"do-test": "do-test-admin"}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "do-test", "cluster": cluster}],
        "contexts": [{"name": name, "context": {"cluster": "do-test", "user": u}} for name, u in contexts.items()],
        "users": [{"name": "do-test-admin", "user": user if user is not None else {"token": TOKEN}},
                  {"name": "other", "user": {"token": "other-token"}}],
    }))
    return path


@pytest.fixture
def api_server(tmp_path):
    context, cert = self_signed_tls(tmp_path)
    fake = FakeOpenAI(tls=context)
    for (method, route), replies in dynamo_routes(FakeOpenAI()).routes.items():
        fake.on(method, PROXY + route, *replies)
    fake.start()
    yield fake, cert
    fake.stop()


SERVICE = {"namespace": "gtc-demo", "name": "gtc-demo-frontend", "port": 8000}


def test_service_proxy_with_the_kubeconfigs_token_and_ca(api_server, tmp_path):
    fake, cert = api_server
    config = write_kubeconfig(tmp_path / "kubeconfig", fake.url, ca=cert)
    result = run_module(service=SERVICE, kubeconfig=str(config), model=MODEL)
    assert not result.get("failed"), result.get("msg")
    assert result["url"] == fake.url + PROXY and result["context"] == "do-test"
    assert result["changed"] is False and result["answer"].strip()
    assert [s.path for s in fake.seen] == [PROXY + "/v1/models", PROXY + "/v1/chat/completions",
                                           PROXY + "/v1/chat/completions"]
    assert {s.headers["Authorization"] for s in fake.seen} == {f"Bearer {TOKEN}"}
    assert TOKEN not in result["_stdout"]


def test_the_named_context_picks_its_user(api_server, tmp_path):
    fake, cert = api_server
    config = write_kubeconfig(tmp_path / "kubeconfig", fake.url, ca=cert,
                              contexts={"do-test": "do-test-admin", "second": "other"})
    result = run_module(service=SERVICE, kubeconfig=str(config), context="second", model=MODEL, checks=["models"])
    assert not result.get("failed"), result.get("msg")
    assert result["context"] == "second"
    assert fake.seen[0].headers["Authorization"] == "Bearer other-token"


def test_without_the_ca_the_certificate_is_refused_and_insecure_skips_it(api_server, tmp_path):
    fake, _cert = api_server
    config = write_kubeconfig(tmp_path / "kubeconfig", fake.url)
    refused = run_module(service=SERVICE, kubeconfig=str(config), model=MODEL, retries=0)
    assert refused.get("failed") is True and not fake.seen
    insecure = write_kubeconfig(tmp_path / "insecure", fake.url, insecure=True)
    result = run_module(service=SERVICE, kubeconfig=str(insecure), model=MODEL, checks=["models"])
    assert not result.get("failed"), result.get("msg")


@pytest.mark.parametrize(("user", "context", "message"), [
    ({"client-certificate-data": "Zm9v", "client-key-data": "YmFy"}, None,
     "user 'do-test-admin' of context 'do-test' has client certificates, not a bearer token"),
    ({"exec": {"command": "doctl"}}, None, "has an exec plugin, not a bearer token"),
    (None, "nowhere", "has no context named 'nowhere' (it has: do-test)"),
])
def test_a_kubeconfig_it_cannot_use_is_a_clear_error(tmp_path, user, context, message):
    config = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:9", user=user)
    args = {"service": SERVICE, "kubeconfig": str(config), "model": MODEL}
    if context:
        args["context"] = context
    result = run_module(**args)
    assert result.get("failed") is True
    assert result["msg"].startswith("Cannot reach the Service gtc-demo/gtc-demo-frontend through the service proxy: ")
    assert message in result["msg"], result["msg"]


def test_a_missing_kubeconfig_and_a_url_with_a_service_are_refused(tmp_path):
    missing = run_module(service=SERVICE, kubeconfig=str(tmp_path / "none"), model=MODEL)
    assert missing.get("failed") is True and "cannot read the kubeconfig" in missing["msg"]
    both = run_module(service=SERVICE, url="http://127.0.0.1:9", model=MODEL)
    assert both.get("failed") is True and "mutually exclusive" in both["msg"]
    neither = run_module(model=MODEL)
    assert neither.get("failed") is True and "one of the following is required: url, service" in neither["msg"]


def test_kubeconfig_paths_and_token_files(tmp_path):
    """Relative paths in a kubeconfig are relative to its folder; tokenFile is read; $KUBECONFIG's first entry."""
    (tmp_path / "token").write_text("from-a-file\n")
    (tmp_path / "ca.pem").write_text("x")
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.1:443/", "certificate-authority": "ca.pem"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}],
    }))
    server = kubeconfig.api_server(str(config))
    assert server.token == "from-a-file" and server.ca_file == str(tmp_path / "ca.pem") and server.ca_data is None
    assert server.service_proxy_url("gtc-demo", "gtc-demo-frontend", 8000) == (
        "https://10.0.0.1:443/api/v1/namespaces/gtc-demo/services/http:gtc-demo-frontend:8000/proxy")
    assert kubeconfig.default_path({"KUBECONFIG": f"/a/b{os.pathsep}/c/d"}) == "/a/b"
    assert kubeconfig.default_path({}).endswith("/.kube/config")
