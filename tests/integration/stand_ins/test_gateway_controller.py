"""The Gateway controller stand-in, with the gateway role's own objects and its check (entry point verify).

The role applies its Gateway (class ``cilium``), HTTPRoutes, ReferenceGrant,
ClusterIssuer and Certificate to the rehearsal cluster (real cert-manager and
kube-prometheus-stack charts installed, the cert-manager stand-in behind the
webhook); the stand-in writes the statuses the Gateway API spec asks for; the
role's check passes, and fails when a route names a wrong Service.
Results are read from Ansible's JSON callback, not from task names.
"""
from __future__ import annotations

import copy
import http.server
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, VENV_BIN, wait_for
from stand_ins.cert_manager import CertManager, make_ca, make_leaf
from stand_ins.gateway_controller import GatewayController, hostname_matches

pytestmark = pytest.mark.integration

GROUP = "gateway.networking.k8s.io"
NS = "gtc-demo"
HOSTNAME = "gtc-demo.example.com"
# The role's verify asks Grafana, with no login, which dashboards it shows (the booth's alone, by
# default: cluster_config_grafana_anonymous); these fakes answer as the chart's Grafana would.
BOOTH_UID = json.loads((REPO / "files" / "dashboards" / "gtc-demo.json").read_text())["uid"]
GRAFANA_SEARCH = "/grafana/api/search?type=dash-db"
GRAFANA_SEARCH_ANSWER = json.dumps([{"uid": BOOTH_UID, "title": "booth", "type": "dash-db"}]).encode()
# Where the rehearsal's "load balancer" answers: a loopback address outside
# every Network.loopback range (those use 127.10-209.x).
PUBLIC_IP = "127.250.0.1"


# What the earlier roles publish for the gateway's routes (loadgen__output, cluster_config__output).
OUTPUTS = {
    "loadgen__output": {"platform": "doks", "url": "http://loadgen.gtc-demo.svc.cluster.local:3000",
                        "service": {"name": "loadgen", "namespace": NS, "port": 3000}},
    "cluster_config__output": {"platform": "doks", "grafana": {"service": "kube-prometheus-stack-grafana",
                                                               "namespace": "monitoring", "port": 80,
                                                               "path": "/grafana"}},
}


def run_gateway_role(cluster: Any, tasks: str, **extra: Any) -> subprocess.CompletedProcess[str]:
    """The gateway role's entry point ``tasks`` (main, verify, teardown) for doks against the rehearsal cluster."""
    with tempfile.TemporaryDirectory() as tmp:
        playbook = Path(tmp) / "gateway.yml"
        playbook.write_text(
            "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: gateway\n"
            "      ansible.builtin.include_role:\n        name: do_solutions.gtc_demo.gateway\n"
            f"        tasks_from: {tasks}\n")
        variables = {"gtc_demo_platform": "doks", "gtc_demo_kubeconfig": str(cluster.kubeconfig),
                     "gtc_demo_kube_context": cluster.context, "gtc_demo_hostname": HOSTNAME,
                     "gateway_acme_email": "admin@example.com", "ansible_python_interpreter": str(VENV_BIN / "python"),
                     **(OUTPUTS if tasks == "main" else {}), **extra}
        return subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", "localhost,", "-c", "local",
             "-e", json.dumps(variables)],
            cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
                           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"},
            capture_output=True, text=True, timeout=600, check=False)


def task_results(run: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Each task's result on localhost, with its module under 'action' (Ansible's JSON callback)."""
    return [task["hosts"]["localhost"]
            for play in json.loads(run.stdout)["plays"] for task in play["tasks"] if "localhost" in task["hosts"]]


@pytest.fixture(scope="module")
def api(rehearsal: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(rehearsal.api_client())


@pytest.fixture(scope="module")
def controllers(rehearsal: Any, charts: Any) -> Iterator[tuple[CertManager, GatewayController]]:
    core = rehearsal.core()
    # What loadgen and cluster_config make before the gateway role runs.
    core.create_namespaced_service(NS, {"metadata": {"name": "loadgen"}, "spec": {
        "selector": {"app": "loadgen"}, "ports": [{"name": "http", "port": 3000}]}})
    core.create_namespaced_secret("cert-manager", {"metadata": {"name": "digitalocean-dns"},
                                                   "stringData": {"access-token": "dop_v1_not_a_token"}})
    cert_manager = CertManager(rehearsal.api_client()).start()
    gateway = GatewayController(rehearsal.api_client(), address=PUBLIC_IP).start()
    try:
        cert_manager.wait_ready(30)
        applied = run_gateway_role(rehearsal, "main")
        assert applied.returncode == 0, applied.stdout[-4000:]
        yield cert_manager, gateway
    finally:
        gateway.stop()
        cert_manager.stop()
        run_gateway_role(rehearsal, "teardown")
        core.delete_namespaced_service("loadgen", NS)
        core.delete_namespaced_secret("digitalocean-dns", "cert-manager")
    assert not gateway.running and not cert_manager.running


def _get(api: Any, plural: str, name: str, ns: str = NS, version: str = "v1") -> dict[str, Any]:
    return api.get_namespaced_custom_object(GROUP, version, ns, plural, name)


def _cond(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in obj.get("conditions") or [] if c["type"] == ctype), {})


def _route_parent(api: Any, name: str) -> dict[str, Any]:
    parents = (_get(api, "httproutes", name).get("status") or {}).get("parents") or []
    return parents[0] if parents else {}


def test_hostnames_intersect_as_the_spec_says() -> None:
    assert hostname_matches("gtc-demo.example.com", "gtc-demo.example.com")
    assert hostname_matches("*.example.com", "gtc-demo.example.com")
    assert hostname_matches("*.example.com", "a.b.example.com")
    assert not hostname_matches("*.example.com", "example.com")
    assert not hostname_matches("gtc-demo.example.com", "other.example.com")
    assert hostname_matches(None, "anything.example.com")


def test_role_objects_are_accepted_programmed_and_resolved(api: Any, controllers: Any) -> None:
    def programmed() -> Any:
        status = _get(api, "gateways", "gtc-demo").get("status") or {}
        listeners = {lst["name"]: lst for lst in status.get("listeners") or []}
        # The role applies the routes after the Gateway: wait until they are counted too.
        ok = (_cond(status, "Programmed").get("status") == "True" and "https" in listeners
              and _cond(listeners["https"], "ResolvedRefs").get("status") == "True"
              and listeners["https"]["attachedRoutes"] == 2)
        return ok and status

    try:
        status = wait_for(programmed, 60)
    except AssertionError as exc:
        cert_manager, gateway = controllers
        raise AssertionError(f"{exc}: Gateway status {_get(api, 'gateways', 'gtc-demo').get('status')}; "
                             f"cert-manager log {cert_manager.log[-8:]}; gateway log {gateway.log[-5:]}") from exc
    assert _cond(status, "Accepted")["reason"] == "Accepted"
    assert status["addresses"] == [{"type": "IPAddress", "value": PUBLIC_IP}]
    listeners = {lst["name"]: lst for lst in status["listeners"]}
    assert (listeners["http"]["attachedRoutes"], listeners["https"]["attachedRoutes"]) == (1, 2)
    for route in ("gtc-demo-https-redirect", "gtc-demo-loadgen", "gtc-demo-grafana"):
        parent = _route_parent(api, route)
        assert parent["controllerName"] == "io.cilium/gateway-controller"
        assert _cond(parent, "Accepted")["status"] == "True", parent
        assert _cond(parent, "ResolvedRefs")["status"] == "True", parent
    gclass = api.get_cluster_custom_object(GROUP, "v1", "gatewayclasses", "cilium")
    assert _cond(gclass["status"], "Accepted")["status"] == "True"


def test_check_passes_and_fails_on_a_wrong_service_name(rehearsal: Any, api: Any, controllers: Any) -> None:
    ok = run_gateway_role(rehearsal, "verify", gateway_verify_http=False, gateway_verify_timeout=40,
                          gateway_verify_poll_interval=2)
    assert ok.returncode == 0, ok.stdout[-3000:]

    route = _get(api, "httproutes", "gtc-demo-loadgen")
    original = copy.deepcopy(route["spec"]["rules"])
    route["spec"]["rules"][0]["backendRefs"][0]["name"] = "load-gen"
    api.patch_namespaced_custom_object(GROUP, "v1", NS, "httproutes", "gtc-demo-loadgen",
                                       {"spec": {"rules": route["spec"]["rules"]}})
    try:
        parent = wait_for(lambda: _cond(_route_parent(api, "gtc-demo-loadgen"), "ResolvedRefs").get(
            "reason") == "BackendNotFound" and _route_parent(api, "gtc-demo-loadgen"))
        assert _cond(parent, "ResolvedRefs")["status"] == "False"
        assert "load-gen" in _cond(parent, "ResolvedRefs")["message"]
        assert _cond(parent, "Accepted")["status"] == "True"  # attached, but cannot route
        failed = run_gateway_role(rehearsal, "verify", gateway_verify_http=False, gateway_verify_timeout=4,
                                  gateway_verify_poll_interval=2)
        assert failed.returncode != 0
        (stuck,) = [r for r in task_results(failed) if r.get("failed")]
        # It was the routes' wait that gave up, with the route whose backend is missing in what it saw.
        assert stuck["action"] == "kubernetes.core.k8s_info" and stuck["attempts"] >= 2, stuck
        assert {r["kind"] for r in stuck["resources"]} == {"HTTPRoute"}
        assert "load-gen" in json.dumps(stuck["resources"])
    finally:
        api.patch_namespaced_custom_object(GROUP, "v1", NS, "httproutes", "gtc-demo-loadgen",
                                           {"spec": {"rules": original}})
    wait_for(lambda: _cond(_route_parent(api, "gtc-demo-loadgen"), "ResolvedRefs").get("status") == "True")


def test_cross_namespace_backend_needs_its_reference_grant(api: Any, controllers: Any) -> None:
    grant = api.get_namespaced_custom_object(GROUP, "v1beta1", "monitoring", "referencegrants", "gtc-demo-grafana")
    api.delete_namespaced_custom_object(GROUP, "v1beta1", "monitoring", "referencegrants", "gtc-demo-grafana")
    try:
        parent = wait_for(lambda: _cond(_route_parent(api, "gtc-demo-grafana"), "ResolvedRefs").get(
            "reason") == "RefNotPermitted" and _route_parent(api, "gtc-demo-grafana"))
        assert _cond(parent, "ResolvedRefs")["status"] == "False"
    finally:
        grant["metadata"] = {k: grant["metadata"][k] for k in ("name", "namespace", "labels") if k in grant["metadata"]}
        api.create_namespaced_custom_object(GROUP, "v1beta1", "monitoring", "referencegrants", grant)
    wait_for(lambda: _cond(_route_parent(api, "gtc-demo-grafana"), "ResolvedRefs").get("status") == "True")


def _scratch_route(api: Any, name: str, parent: dict[str, Any], hostnames: list[str]) -> None:
    api.create_namespaced_custom_object(GROUP, "v1", NS, "httproutes", {
        "apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute", "metadata": {"name": name},
        "spec": {"parentRefs": [parent], "hostnames": hostnames,
                 "rules": [{"backendRefs": [{"name": "loadgen", "port": 3000}]}]}})


@pytest.mark.parametrize(("parent", "hostnames", "reason"), [
    ({"name": "gtc-demo", "sectionName": "admin"}, [HOSTNAME], "NoMatchingParent"),
    ({"name": "gtc-demo", "port": 8443}, [HOSTNAME], "NoMatchingParent"),
    ({"name": "gtc-demo", "sectionName": "https"}, ["other.example.com"], "NoMatchingListenerHostname"),
])
def test_routes_the_gateway_does_not_accept(api: Any, controllers: Any, parent: dict[str, Any],
                                            hostnames: list[str], reason: str) -> None:
    _scratch_route(api, "scratch", parent, hostnames)
    try:
        found = wait_for(lambda: _cond(_route_parent(api, "scratch"), "Accepted").get("reason") == reason
                         and _route_parent(api, "scratch"))
        assert _cond(found, "Accepted")["status"] == "False"
        time.sleep(1)
        status = _get(api, "gateways", "gtc-demo")["status"]
        assert {lst["name"]: lst["attachedRoutes"] for lst in status["listeners"]} == {"http": 1, "https": 2}
    finally:
        api.delete_namespaced_custom_object(GROUP, "v1", NS, "httproutes", "scratch")


def test_https_listener_without_its_secret(api: Any, controllers: Any) -> None:
    gateway = _get(api, "gateways", "gtc-demo")
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": "no-cert"},
            "spec": copy.deepcopy(gateway["spec"])}
    body["spec"]["listeners"][1]["tls"]["certificateRefs"][0]["name"] = "no-such-secret"
    api.create_namespaced_custom_object(GROUP, "v1", NS, "gateways", body)
    try:
        status = wait_for(lambda: (_get(api, "gateways", "no-cert").get("status") or {}).get("listeners")
                          and _get(api, "gateways", "no-cert")["status"])
        https = next(lst for lst in status["listeners"] if lst["name"] == "https")
        assert (_cond(https, "ResolvedRefs")["status"], _cond(https, "ResolvedRefs")["reason"]) == \
            ("False", "InvalidCertificateRef")
        assert _cond(https, "Programmed")["status"] == "False"
        assert (_cond(status, "Accepted")["status"], _cond(status, "Accepted")["reason"]) == \
            ("True", "ListenersNotValid")
    finally:
        api.delete_namespaced_custom_object(GROUP, "v1", NS, "gateways", "no-cert")


def test_gateway_of_another_class_is_left_alone(api: Any, controllers: Any) -> None:
    gateway = _get(api, "gateways", "gtc-demo")
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Gateway", "metadata": {"name": "other-class"},
            "spec": {**copy.deepcopy(gateway["spec"]), "gatewayClassName": "nginx"}}
    api.create_namespaced_custom_object(GROUP, "v1", NS, "gateways", body)
    try:
        time.sleep(4 * controllers[1].interval + 1)
        assert not (_get(api, "gateways", "other-class").get("status") or {}).get("listeners")
        assert _cond(_get(api, "gateways", "other-class").get("status") or {}, "Programmed").get("status") != "True"
    finally:
        api.delete_namespaced_custom_object(GROUP, "v1", NS, "gateways", "other-class")


class _Site:
    """What the Gateway would answer at its address: HTTP redirects, HTTPS serves / and Grafana's health."""

    def __init__(self, ip: str, cert: Path, key: Path) -> None:
        self.requests: list[tuple[str, str, str]] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
                host = self.headers.get("Host", "")
                site.requests.append((scheme, host, self.path))
                if scheme == "http":
                    self.send_response(301)
                    self.send_header("Location", f"https://{host}{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = GRAFANA_SEARCH_ANSWER if self.path == GRAFANA_SEARCH else b""
                self.send_response(200 if self.path in ("/", "/grafana/api/health", GRAFANA_SEARCH) else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
                return

        self.servers = [http.server.ThreadingHTTPServer((ip, 80), Handler),
                        http.server.ThreadingHTTPServer((ip, 443), Handler)]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.servers[1].socket = context.wrap_socket(self.servers[1].socket, server_side=True)
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
                        for s in self.servers]

    def __enter__(self) -> "_Site":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def test_url_checks_go_to_the_base_url_with_the_public_host(rehearsal: Any, controllers: Any,
                                                            tmp_path: Path) -> None:
    """gateway_verify_base_url points the URL checks at a local server; the Host header stays the hostname.
    (Before the variable, the check asked DNS for the hostname: nothing a rehearsal could answer.)"""
    ca, ca_key = make_ca("rehearsal-site-ca")
    cert, key = make_leaf(ca, ca_key, ["localhost"], ip_addresses=[PUBLIC_IP])
    (tmp_path / "ca.crt").write_bytes(ca)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    with _Site(PUBLIC_IP, tmp_path / "tls.crt", tmp_path / "tls.key") as site:
        # gtc_demo_hostname "localhost": should the base URL be ignored, the requests go to
        # localhost (still loopback, nothing answers there), never to DNS.
        run = run_gateway_role(rehearsal, "verify", gtc_demo_hostname="localhost",
                               gateway_verify_base_url=f"https://{PUBLIC_IP}", gateway_verify_validate_certs=True,
                               gateway_verify_ca_path=str(tmp_path / "ca.crt"), gateway_verify_timeout=40,
                               gateway_verify_poll_interval=2)
        assert run.returncode == 0, run.stdout[-3000:]
        assert site.requests == [("http", "localhost", "/"), ("https", "localhost", "/"),
                                 ("https", "localhost", "/grafana/api/health"), ("https", "localhost", GRAFANA_SEARCH)]


class _Backend:
    """A local process standing for a Service's pods: answers 200 on the paths it is given."""

    def __init__(self, paths: set[str]) -> None:
        self.seen: list[tuple[str, str]] = []
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                backend.seen.append((self.headers.get("Host", ""), self.path))
                body = GRAFANA_SEARCH_ANSWER if self.path == GRAFANA_SEARCH else b"ok"
                self.send_response(200 if self.path in paths else 404)
                if self.path == GRAFANA_SEARCH:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    def __enter__(self) -> "_Backend":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _request(scheme: str, path: str, host: str = HOSTNAME) -> tuple[int, str]:
    import http.client

    conn = (http.client.HTTPSConnection(PUBLIC_IP, 443, context=ssl._create_unverified_context(), timeout=10)  # noqa: S323
            if scheme == "https" else http.client.HTTPConnection(PUBLIC_IP, 80, timeout=10))
    conn.request("GET", path, headers={"Host": host})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, response.getheader("Location") or ""


def test_data_plane_serves_what_the_routes_say(rehearsal: Any, api: Any, controllers: Any) -> None:
    """GatewayDataPlane at the Gateway's address: the redirect route, / to the load generator, /grafana to
    Grafana, with the certificate cert-manager's stand-in issued; then the role's URL checks pass against it."""
    from stand_ins.gateway_controller import GatewayDataPlane

    with _Backend({"/"}) as loadgen, _Backend({"/grafana/api/health", GRAFANA_SEARCH}) as grafana:
        plane = GatewayDataPlane(rehearsal.api_client(), address=PUBLIC_IP, backends={
            (NS, "loadgen", 3000): loadgen.url,
            ("monitoring", "kube-prometheus-stack-grafana", 80): grafana.url}).start()
        try:
            wait_for(lambda: len(plane.logged("serving listener")) == 2, 30)
            assert _request("http", "/") == (301, f"https://{HOSTNAME}/")
            assert _request("https", "/")[0] == 200
            assert _request("https", "/grafana/api/health")[0] == 200
            assert _request("https", "/", host="other.example.com")[0] == 404
            assert loadgen.seen == [(HOSTNAME, "/")] and grafana.seen == [(HOSTNAME, "/grafana/api/health")]
            served = ssl.get_server_certificate((PUBLIC_IP, 443))
            secret = rehearsal.core().read_namespaced_secret("gtc-demo-tls", NS)
            import base64
            from cryptography import x509
            assert x509.load_pem_x509_certificate(served.encode()) == x509.load_pem_x509_certificate(
                base64.b64decode(secret.data["tls.crt"]))

            run = run_gateway_role(rehearsal, "verify", gateway_verify_base_url=f"https://{PUBLIC_IP}",
                                   gateway_verify_validate_certs=False, gateway_verify_timeout=40,
                                   gateway_verify_poll_interval=2)
            assert run.returncode == 0, run.stdout[-3000:]

            # A route whose backend does not resolve answers 500 (httproute_types.go BackendRefs).
            route = _get(api, "httproutes", "gtc-demo-loadgen")
            original = copy.deepcopy(route["spec"]["rules"])
            route["spec"]["rules"][0]["backendRefs"][0]["name"] = "load-gen"
            api.patch_namespaced_custom_object(GROUP, "v1", NS, "httproutes", "gtc-demo-loadgen",
                                               {"spec": {"rules": route["spec"]["rules"]}})
            try:
                wait_for(lambda: _request("https", "/")[0] == 500, 20)
            finally:
                api.patch_namespaced_custom_object(GROUP, "v1", NS, "httproutes", "gtc-demo-loadgen",
                                                   {"spec": {"rules": original}})
            wait_for(lambda: _request("https", "/")[0] == 200, 20)
        finally:
            plane.stop()
    assert not plane.running


def test_second_apply_changes_nothing(rehearsal: Any, controllers: Any) -> None:
    """With the controllers writing statuses (and cert-manager's webhook admitting each update), the
    role's second run reports no change, as a second site.yml must."""
    # A run first: earlier tests here remade objects (the ReferenceGrant) through the API.
    first = run_gateway_role(rehearsal, "main")
    assert first.returncode == 0, first.stdout[-3000:]
    again = run_gateway_role(rehearsal, "main")
    assert again.returncode == 0, again.stdout[-3000:]
    assert json.loads(again.stdout)["stats"]["localhost"]["changed"] == 0, again.stdout[-3000:]
