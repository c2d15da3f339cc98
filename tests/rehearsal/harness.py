"""The cloud deployment, rehearsed on this machine: everything `site.yml -i inventories/<env>` talks to, for real
where it can be had and as a stand-in built from upstream source where it cannot.

What a DOKS run talks to, and what answers here:

- DigitalOcean's API: the fake (tests/fake_do), behind Prism checking DigitalOcean's OpenAPI spec.
- The DOKS cluster: a real kube-apiserver, controller manager and scheduler (tests/cluster) whose
  nodes kwok plays; the fake cloud's kubeconfig points at it, and its node pools become kwok nodes.
- Chart repositories: the real upstream charts (resolved by tests/artifacts.py) served from
  127.0.0.1; dynamo-platform alone is a stand-in (tests/stand_ins).
- Controllers that run in pods: stand-ins following the upstream source (tests/stand_ins): the
  Dynamo operator, cert-manager's webhook and controller, a Gateway API controller and data plane.
- The frontend the inference check reaches: the real local Dynamo stack (frontend, KV router,
  mocker) on 127.0.0.1; the page behind the public URL: the local load generator.

The inventory is the user's own (`inventories/<env>`), unchanged. An overlay
changes endpoints only (``OVERLAY_KEYS``): where the DigitalOcean API, the
chart repository, the Gateway API CRDs and the public entry are.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import artifacts  # noqa: E402  (tests/ on sys.path first)
from helpers import PlaybookRun, cluster_support, run_playbook  # noqa: E402
from rehearsal.chart_repo import ArtifactServer  # noqa: E402

# The only inventory variables the rehearsal sets: each one says where something is.
OVERLAY_KEYS = (
    "gtc_demo_do_api_endpoint",                   # DigitalOcean's API
    "cluster_config_helm_mirror_url",             # the chart repository every release comes from
    "cluster_config_gateway_api_crds_base_url",   # where the Gateway API CRDs are downloaded from
    "dynamo_verify_urls",                         # what answers for each frontend validate.yml sends a request to
)

# The public entry is reached as on DOKS, at https://<hostname>: each run of
# ansible-playbook gets a private /etc/hosts (a mount namespace of its own)
# that resolves the hostname to the Gateway's address, where the data-plane
# stand-in listens, and trusts the CA that stands in for Let's Encrypt
# (SSL_CERT_FILE). Name resolution and trust are the machine's, not the inventory's.
# The Services the gateway role's routes send to (roles/gateway/defaults:
# gateway_loadgen_service/_port, gateway_grafana_service/_namespace/_port),
# and what answers for each here.
LOADGEN_SERVICE = ("gtc-demo", "loadgen", 3000)
GRAFANA_SERVICE = ("monitoring", "kube-prometheus-stack-grafana", 80)

# Secrets a dev run reads from the environment; a distinct fake value for each, which the tests
# look for in every output, in the state directory and in every object of the cluster but Secrets.
FAKE_SECRETS = {
    "DIGITALOCEAN_ACCESS_TOKEN": "dop_v1_rehearsal_token_5eed",
    "HF_TOKEN": "hf_rehearsal_token_0b5e",
    "SPACES_ACCESS_KEY_ID": "DO00REHEARSALKEY",
    "SPACES_SECRET_ACCESS_KEY": "spaces_rehearsal_secret_77c1",
    "GRADIENT_API_KEY": "gradient_rehearsal_key_a1a1",
    "GTC_PRESENTER_TOKEN": "presenter_rehearsal_token_9c3d",
}


def secret_forms(value: str) -> tuple[str, ...]:
    """How a secret's value may show: as itself, or base64-encoded as in a Secret's data."""
    import base64  # pylint: disable=import-outside-toplevel

    return (value, base64.b64encode(value.encode()).decode())


def files_holding(root: Path, values: dict[str, str]) -> dict[str, list[str]]:
    """Files under ``root`` that hold a value (in any of its forms), by the variable's name."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for name, value in values.items():
            if any(form.encode() in data for form in secret_forms(value)):
                found.setdefault(name, []).append(str(path.relative_to(root)))
    return found


# Upstream chart archives the roles install (dynamo-platform comes from tests/stand_ins).
UPSTREAM_CHARTS = (
    "charts/cert-manager-v1.21.1.tgz",
    "charts/external-dns-1.19.0.tgz",
    "charts/kube-prometheus-stack-79.5.0.tgz",
    "charts/dcgm-exporter-4.6.0.tgz",
    "charts/keda-2.18.1.tgz",
)


def log(message: str) -> None:
    print(f"[rehearsal] {message}", file=sys.stderr, flush=True)


@dataclass
class Rehearsal:
    """Everything a run of the cloud deployment needs, up on 127.0.0.1; ``run`` drives the playbooks."""

    env_name: str = "dev"
    # The test cluster's name; its loopback ranges (and so the Gateway's address) follow from it,
    # so two rehearsals at once (the test suite's and a user's) need two names.
    cluster_name: str = ""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gtc-rehearsal-")))
    # The local Dynamo frontends (routing id -> URL) validate.yml's inference checks reach.
    frontend_urls: dict[str, str] = field(default_factory=dict)
    public_url: str = ""        # what stands for https://<hostname> (the local load generator's page)
    cluster: Any = None
    cloud: Any = None
    charts: ArtifactServer | None = None
    stand_ins: list[Any] = field(default_factory=list)
    runs: list[PlaybookRun] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    account: dict[str, str] = field(default_factory=dict)
    grafana: Any = None
    cert_manager: Any = None
    _baseline_uids: set[str] = field(default_factory=set)
    _resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    # -- bring-up ----------------------------------------------------------

    @property
    def inventory(self) -> str:
        return f"inventories/{self.env_name}"

    @property
    def home(self) -> Path:
        """$GTC_DEMO_HOME of the runs: where infra keeps the kubeconfig it fetched."""
        return self.workdir / "home"

    @property
    def overlay_file(self) -> Path:
        return self.workdir / "overlay.json"

    def start(self) -> "Rehearsal":
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self.cluster = self._start_cluster()
        self.timings["cluster"] = time.monotonic() - started
        self.stand_ins = self._start_stand_ins()
        self.cloud = self._start_cloud()
        self.charts = self._start_chart_repository()
        self.overlay_file.write_text(json.dumps(self.overlay(), indent=2))
        self._open_account()
        self._baseline_uids = self._uids()
        self.timings["start"] = time.monotonic() - started
        log(f"ready after {self.timings['start']:.0f}s: cloud {self.cloud.prism.url}, charts {self.charts.url}")
        return self

    def _start_cluster(self) -> Any:
        """A fresh DOKS-like cluster: no nodes (the fake cloud makes them), loopback addresses.

        Of the CRDs, only the Gateway API's: DOKS installs and manages them
        (https://docs.digitalocean.com/products/kubernetes/how-to/use-gateway-api/),
        so cluster_config's "install only where missing" finds them, as on DOKS.
        """
        fixture = cluster_support()
        return self._resources.enter_context(fixture.rehearsal_cluster(
            self.cluster_name or f"gtc-rehearsal-{self.env_name}", self.workdir / "cluster", crds=["gateway-api"]))

    @property
    def gateway_address(self) -> str:
        """The Gateway's public address: a loopback one outside this cluster's Service, pod and node ranges."""
        pods = self.cluster.network.pod_cidr  # 127.<n>.0.0/17
        second = pods.split(".")[1]
        return f"127.{second}.200.1"

    def _start_stand_ins(self) -> list[Any]:
        from stand_ins.cert_manager import CertManager  # pylint: disable=import-outside-toplevel
        from stand_ins.dynamo_operator import DynamoOperator  # pylint: disable=import-outside-toplevel
        from stand_ins.gateway_controller import (  # pylint: disable=import-outside-toplevel
            GatewayController, GatewayDataPlane)

        api = self.cluster.api_client()
        from stand_ins.grafana import anonymous_search, cluster_lister  # pylint: disable=import-outside-toplevel

        lister = cluster_lister(api)
        self.grafana = GrafanaHealth(search=lambda: anonymous_search(lister)).start()
        backends = {GRAFANA_SERVICE: self.grafana.url}
        if self.public_url:
            backends[LOADGEN_SERVICE] = self.public_url
        self.cert_manager = CertManager(api)
        started = [DynamoOperator(api), self.cert_manager, GatewayController(api, address=self.gateway_address),
                   GatewayDataPlane(api, address=self.gateway_address, backends=backends)]
        for stand_in in started:
            stand_in.start()
        return started

    def _start_cloud(self) -> Any:
        from fake_do.harness import DoApi  # pylint: disable=import-outside-toplevel
        from fake_do.kube_backend import KubeBackend  # pylint: disable=import-outside-toplevel
        from fake_do.prism import Prism  # pylint: disable=import-outside-toplevel
        from fake_do.server import FakeServer  # pylint: disable=import-outside-toplevel

        server = FakeServer(FAKE_SECRETS["DIGITALOCEAN_ACCESS_TOKEN"],
                            cluster_backend=KubeBackend(self.cluster)).start()
        prism = Prism(server.url)
        try:
            prism.start()
        except Exception:
            server.stop()
            raise
        api = DoApi(server, prism)
        # DOKS takes minutes to provision; the fake answers at once (the nodes
        # still boot NotReady, then get their GPUs a second later: KubeBackend).
        api.control("/_fake/config", {"provision_seconds": 0, "node_seconds": 0, "delete_seconds": 0})
        return api

    def _start_chart_repository(self) -> ArtifactServer:
        from stand_ins.dynamo_platform_chart import build_chart  # pylint: disable=import-outside-toplevel

        stand_in_dir = self.workdir / "stand-in-charts"
        stand_in_dir.mkdir(exist_ok=True)
        archives = [artifacts.resolve(a) for a in UPSTREAM_CHARTS]
        archives.append(build_chart(stand_in_dir, self.cluster.helm))
        server = ArtifactServer(self.cluster.helm, archives,
                                {"gateway-api": artifacts.resolve_dir("schemas/crds/gateway-api")})
        return server.start()

    def _open_account(self) -> None:
        """The account as a first deploy finds it: the pushed image, the DNS zone (named by the roles)."""
        account_file = self.workdir / "account.json"
        run = run_playbook(str(Path(__file__).with_name("account.yml")), "-e", f"@{self.overlay_file}",
                           "-e", f"rehearsal_account_file={account_file}", inventory=self.inventory,
                           env=self.env(), timeout=300)
        if run.returncode != 0:
            raise RuntimeError(f"could not read what the account holds:\n{run.output[-3000:]}")
        account = json.loads(account_file.read_text())
        image, tag = account["image"].rsplit(":", 1)
        _host, registry, repository = image.split("/", 2)
        self.cloud.control("/_fake/images", {"registry": registry, "repository": repository, "tag": tag})
        self.cloud.control("/_fake/config", {"domains": [account["domain"]]})
        self.account = account  # image, domain, hostname

    def overlay(self) -> dict[str, Any]:
        assert self.cloud is not None and self.charts is not None
        values = {
            "gtc_demo_do_api_endpoint": self.cloud.prism.url,
            "cluster_config_helm_mirror_url": self.charts.chart_repo_url,
            "cluster_config_gateway_api_crds_base_url": self.charts.folder_url("gateway-api"),
            "dynamo_verify_urls": self.frontend_urls,
        }
        assert tuple(values) == OVERLAY_KEYS
        return {k: v for k, v in values.items() if v}

    # -- runs --------------------------------------------------------------

    def env(self, drop: tuple[str, ...] = ()) -> dict[str, str]:
        """The environment of a user's run: secrets, GTC_DEMO_HOME, helm on PATH; no kubeconfig of our own."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("K8S_AUTH_", "KUBECONFIG", "DIGITALOCEAN_", "GTC_TEST_CLUSTER"))}
        env.update(FAKE_SECRETS)
        env.update({
            "GTC_DEMO_HOME": str(self.home),
            "PATH": f"{self.cluster.bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
        })
        trust = self._trust_bundle()
        if trust:
            env["SSL_CERT_FILE"] = str(trust)
        for name in drop:
            env.pop(name, None)
        return env

    def _trust_bundle(self) -> Path | None:
        """The machine's CAs plus the CA that signs the stand-in cert-manager's certificates, once it exists."""
        import base64  # pylint: disable=import-outside-toplevel
        import ssl  # pylint: disable=import-outside-toplevel

        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            secret = self.cluster.core().read_namespaced_secret(self.cert_manager.ca_secret,
                                                                self.cert_manager.namespace)
        except ApiException:
            return None
        system = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
        bundle = self.workdir / "trust.pem"
        bundle.write_bytes(Path(system).read_bytes() + b"\n" + base64.b64decode(secret.data["ca.crt"]))
        return bundle

    def _resolver(self) -> list[str]:
        """A command prefix: the run sees an /etc/hosts of its own, the hostname at the Gateway's address."""
        hosts = self.workdir / "hosts"
        hostname = self.account.get("hostname")
        if not hostname:
            return []
        hosts.write_text(Path("/etc/hosts").read_text() + f"\n{self.gateway_address} {hostname}\n")
        return ["unshare", "--mount", "sh", "-c", f'mount --bind "{hosts}" /etc/hosts && exec "$@"', "sh"]

    def run(self, playbook: str, *args: str, drop: tuple[str, ...] = (), timeout: int = 900,
            json_output: bool = False) -> PlaybookRun:
        """ansible-playbook <playbook> -i inventories/<env> -e @overlay, as a user runs it."""
        started = time.monotonic()
        result = run_playbook(playbook, "-e", f"@{self.overlay_file}", *args, inventory=self.inventory,
                              env=self.env(drop), timeout=timeout, wrapper=self._resolver(), json_output=json_output)
        result.seconds = time.monotonic() - started  # type: ignore[attr-defined]
        self.runs.append(result)
        for name, value in FAKE_SECRETS.items():
            if any(form in result.output for form in secret_forms(value)):
                raise AssertionError(f"{name}'s value reached the output of {playbook}")
        log(f"{playbook} {' '.join(args)}: rc={result.returncode} in {result.seconds:.0f}s")  # type: ignore[attr-defined]
        return result

    # -- what a real run would create ---------------------------------------

    def kubeconfig(self) -> Path | None:
        """The kubeconfig infra saved for this environment (None before infra ran)."""
        found = sorted(self.home.rglob("kubeconfig*")) + sorted(self.home.rglob("*.kubeconfig"))
        return found[0] if found else None

    def helm_releases(self) -> list[dict[str, str]]:
        kubeconfig = self.kubeconfig()
        if kubeconfig is None:
            return []
        out = subprocess.run([str(self.cluster.helm), "list", "-A", "-o", "json", "--kubeconfig", str(kubeconfig)],
                             check=True, capture_output=True, text=True, timeout=60)
        return [{k: r[k] for k in ("name", "namespace", "chart", "app_version", "status")}
                for r in json.loads(out.stdout or "[]")]

    def cloud_resources(self) -> dict[str, Any]:
        return self.cloud.state()

    def kube_objects(self) -> dict[str, list[str]]:
        """Objects in the cluster by kind (namespace/name) that were not there when the cluster came up."""
        system = {"kube-system", "kube-public", "kube-node-lease", "default"}
        found: dict[str, list[str]] = {}
        for kind, api_version in KINDS_REPORTED:
            names = []
            for item in list_objects(self.cluster.api_client(), kind, api_version):
                meta = item.metadata
                if meta.namespace in system or (kind == "Namespace" and meta.name in system):
                    continue
                if not counted(kind, item):
                    continue
                if f"{kind}/{meta.uid}" in self._baseline_uids:
                    continue
                names.append(f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name)
            if names:
                found[kind] = sorted(names)
        return found

    def objects_holding_secrets(self) -> dict[str, dict[str, list[str]]]:
        """Objects of every listable kind whose body holds a FAKE_SECRETS value (raw or base64),
        split into ``{"secrets": ..., "others": ...}``, each by the variable's name.

        A Secret is where a credential belongs; anywhere else (a ConfigMap, a pod's env
        ``value:``, an annotation such as last-applied-configuration, a Helm-made object)
        the API server shows it to whoever may read that kind. Each list is searched as
        the API server's raw JSON (CRDs are megabytes: turning them into objects first
        took minutes).
        """
        from kubernetes import dynamic  # pylint: disable=import-outside-toplevel
        from kubernetes.dynamic.exceptions import DynamicApiError  # pylint: disable=import-outside-toplevel

        dyn = dynamic.DynamicClient(self.cluster.api_client())
        found: dict[str, dict[str, list[str]]] = {"secrets": {}, "others": {}}
        seen: set[tuple[str, str]] = set()
        forms = {name: [form.encode() for form in secret_forms(value)] for name, value in FAKE_SECRETS.items()}
        for resource in dyn.resources.search():
            if (resource.group_version, resource.kind) in seen or "list" not in (resource.verbs or []) \
                    or "/" in resource.name or resource.kind.endswith("List"):
                continue
            seen.add((resource.group_version, resource.kind))
            try:
                raw = resource.get(serialize=False).data
            except DynamicApiError:
                continue
            if not any(form in raw for encoded in forms.values() for form in encoded):
                continue
            where = found["secrets" if resource.kind == "Secret" else "others"]
            for item in json.loads(raw).get("items") or []:
                body = json.dumps(item).encode()
                for name, encoded in forms.items():
                    if any(form in body for form in encoded):
                        meta = item.get("metadata") or {}
                        where.setdefault(name, []).append(f"{resource.kind}/{meta.get('namespace', '')}/{meta.get('name')}")
        return found

    def _uids(self) -> set[str]:
        uids = set()
        for kind, api_version in KINDS_REPORTED:
            items = list_objects(self.cluster.api_client(), kind, api_version)
            uids.update(f"{kind}/{item.metadata.uid}" for item in items)
        return uids

    def report(self) -> str:
        """What this run made, as a solutions engineer reads it before booking GPUs."""
        lines = ["# What a real run of site.yml -i " + self.inventory + " creates", "", "## DigitalOcean"]
        state = self.cloud_resources()
        for vpc in state.get("vpcs", []):
            lines.append(f"- VPC {vpc['name']} ({vpc['region']}, {vpc['ip_range']})")
        for cluster in state.get("clusters", []):
            lines.append(f"- DOKS cluster {cluster['name']} ({cluster['region']}, {cluster['version']})")
            for pool in cluster.get("node_pools", []):
                lines.append(f"  - node pool {pool['name']}: {pool['count']} x {pool['size']}")
        for share in state.get("shares", []):
            lines.append(f"- NFS share {share['name']} ({share.get('size_gib', '?')} GiB)")
        if state.get("registry"):
            lines.append("- container registry integration on the cluster")
        lines += ["", "## Helm releases"]
        for rel in self.helm_releases():
            lines.append(f"- {rel['namespace']}/{rel['name']}: {rel['chart']} ({rel['status']})")
        lines += ["", "## Kubernetes objects"]
        for kind, names in self.kube_objects().items():
            shown = ", ".join(names[:6]) + (f", … ({len(names)} in all)" if len(names) > 6 else "")
            lines.append(f"- {kind} ({len(names)}): {shown}")
        return "\n".join(lines) + "\n"

    # -- tear-down -----------------------------------------------------------

    def stop(self) -> None:
        for stand_in in reversed(self.stand_ins):
            try:
                stand_in.stop()
            except Exception as exc:  # pylint: disable=broad-except
                log(f"stopping {type(stand_in).__name__}: {exc}")
        if self.grafana is not None:
            self.grafana.stop()
        if self.charts is not None:
            self.charts.stop()
        if self.cloud is not None:
            self.cloud.prism.stop()
            self.cloud.server.stop()
        self._resources.close()  # the cluster
        shutil.rmtree(self.workdir, ignore_errors=True)


def list_objects(api_client: Any, kind: str, api_version: str) -> list[Any]:
    """Every object of a kind, or [] when the cluster does not serve it (its CRD not installed, or gone).

    The dynamic client keeps discovery in a cache file shared by clusters
    that had the same address, so a kind it "finds" may still answer 404.
    """
    from kubernetes import dynamic  # pylint: disable=import-outside-toplevel
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError  # pylint: disable=import-outside-toplevel

    dyn = dynamic.DynamicClient(api_client)
    try:
        return dyn.resources.get(api_version=api_version, kind=kind).get().items
    except (NotFoundError, ResourceNotFoundError):
        return []


def counted(kind: str, item: Any) -> bool:
    """Whether an object is one a run made, rather than the API server's own record of something.

    kube-apiserver registers a local APIService for every API group it serves,
    CRD groups included (kube-aggregator's autoregister controller): those
    follow the CRDs. Only APIServices backed by a Service (an aggregated API,
    such as KEDA's metrics) are objects a chart made.
    """
    if kind == "APIService":
        return bool((item.get("spec") or {}).get("service"))
    return True


class GrafanaHealth:
    """What answers for Grafana's Service, under the sub-path the chart values set.

    No Grafana server can run here (no package serves one; its source is
    AGPL). This answers GET <grafana path>/api/health as Grafana's
    pkg/api/health.go does ({"database": "ok", "version": ...}), and GET
    <grafana path>/api/search, for a visitor with no login, from the chart's
    objects in the cluster by Grafana's rules (tests/stand_ins/grafana.py):
    the dashboards an anonymous Viewer may open, or 401 when anonymous access
    is off. The public URL checks thus prove the route, the certificate and the
    booth screen's configuration, not Grafana itself.
    """

    def __init__(self, path: str = "/grafana", search: Callable[[], list[dict[str, str]] | None] | None = None) -> None:
        self.path = path
        self.search = search
        self.seen: list[str] = []
        self._server: Any = None
        self.url = ""

    def start(self) -> "GrafanaHealth":
        import threading  # pylint: disable=import-outside-toplevel
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # pylint: disable=import-outside-toplevel

        health = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                health.seen.append(self.path)
                route = self.path.split("?", 1)[0]
                status, answer = 404, {"message": "Not found"}
                if route == f"{health.path}/api/health":
                    status, answer = 200, {"database": "ok", "version": "12.2.0"}
                elif route == f"{health.path}/api/search" and health.search is not None:
                    boards = health.search()
                    status, answer = (401, {"message": "Unauthorized"}) if boards is None else (200, [
                        {**board, "type": "dash-db", "url": f"{health.path}/d/{board['uid']}"} for board in boards])
                body = json.dumps(answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# Kinds the report lists (what a run creates, cluster-wide and namespaced).
KINDS_REPORTED = (
    ("Namespace", "v1"), ("CustomResourceDefinition", "apiextensions.k8s.io/v1"),
    ("RuntimeClass", "node.k8s.io/v1"), ("PersistentVolume", "v1"), ("PersistentVolumeClaim", "v1"),
    ("Secret", "v1"), ("ConfigMap", "v1"), ("ServiceAccount", "v1"), ("Service", "v1"),
    ("Deployment", "apps/v1"), ("DaemonSet", "apps/v1"), ("StatefulSet", "apps/v1"), ("Job", "batch/v1"),
    ("ClusterRole", "rbac.authorization.k8s.io/v1"), ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
    ("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1"),
    ("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1"),
    ("APIService", "apiregistration.k8s.io/v1"),
    ("DynamoGraphDeployment", "nvidia.com/v1beta1"),
    ("GatewayClass", "gateway.networking.k8s.io/v1"), ("Gateway", "gateway.networking.k8s.io/v1"),
    ("HTTPRoute", "gateway.networking.k8s.io/v1"), ("ReferenceGrant", "gateway.networking.k8s.io/v1beta1"),
    ("ClusterIssuer", "cert-manager.io/v1"), ("Certificate", "cert-manager.io/v1"),
    ("ServiceMonitor", "monitoring.coreos.com/v1"), ("PodMonitor", "monitoring.coreos.com/v1"),
    ("PrometheusRule", "monitoring.coreos.com/v1"), ("Prometheus", "monitoring.coreos.com/v1"),
    ("Queue", "scheduling.run.ai/v2"),
)
