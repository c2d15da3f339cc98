"""The cert-manager stand-in on the rehearsal cluster, behind the real chart's webhook configurations.

kube-apiserver calls the stand-in's webhook because the chart says so
(failurePolicy Fail, ``cert-manager.io/inject-ca-from-secret``), so what it
refuses is refused by the API server, exactly where the real webhook would.
"""
from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from stand_ins.cert_manager import CertManager, make_ca

from helpers import wait_for

pytestmark = pytest.mark.integration

GROUP, VERSION = "cert-manager.io", "v1"

# What the gateway role applies (templates/k8s/clusterissuer.yaml.j2 and certificate.yaml.j2, doks).
ISSUER = {
    "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "letsencrypt"},
    "spec": {"acme": {
        "server": "https://acme-v02.api.letsencrypt.org/directory", "email": "admin@example.com",
        "privateKeySecretRef": {"name": "letsencrypt-account-key"},
        "solvers": [{"dns01": {"digitalocean": {"tokenSecretRef": {"name": "digitalocean-dns",
                                                                   "key": "access-token"}}}}]}},
}
CERTIFICATE = {
    "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "gtc-demo", "namespace": "gtc-demo"},
    "spec": {"secretName": "gtc-demo-tls", "dnsNames": ["gtc-demo.example.com"],
             "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "letsencrypt"},
             "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}},
}


@pytest.fixture(scope="module")
def custom(rehearsal: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(rehearsal.api_client())


@pytest.fixture(scope="module")
def cert_manager(rehearsal: Any, charts: Any) -> Iterator[CertManager]:
    stand_in = CertManager(rehearsal.api_client()).start()
    try:
        stand_in.wait_ready(30)
        yield stand_in
    finally:
        stand_in.stop()
    assert not stand_in.running


def _create(custom: Any, body: dict[str, Any]) -> Any:
    plural = body["kind"].lower() + "s"
    if body["metadata"].get("namespace"):
        return custom.create_namespaced_custom_object(GROUP, VERSION, body["metadata"]["namespace"], plural, body,
                                                      dry_run="All")
    return custom.create_cluster_custom_object(GROUP, VERSION, plural, body, dry_run="All")


def _refusal(custom: Any, body: dict[str, Any]) -> tuple[int, str]:
    from kubernetes.client.exceptions import ApiException

    try:
        _create(custom, body)
    except ApiException as exc:
        return exc.status, json.loads(exc.body)["message"]
    return 200, ""


def test_without_the_webhook_the_chart_fails_closed(rehearsal: Any, charts: Any, custom: Any) -> None:
    """No server behind the Service: the API server refuses the role's issuer (failurePolicy Fail),
    having dialled the webhook Service's loopback ClusterIP."""
    ip = rehearsal.core().read_namespaced_service("cert-manager-webhook", "cert-manager").spec.cluster_ip
    status, message = _refusal(custom, ISSUER)
    assert status == 500
    assert 'failed calling webhook "webhook.cert-manager.io"' in message
    assert f"dial tcp {ip}:443: connect: connection refused" in message, message


def test_cainjector_fills_the_chart_webhooks_from_the_ca_secret(rehearsal: Any, cert_manager: CertManager) -> None:
    from kubernetes import client

    secret = rehearsal.core().read_namespaced_secret("cert-manager-webhook-ca", "cert-manager")
    assert secret.metadata.annotations["cert-manager.io/allow-direct-injection"] == "true"
    ca = base64.b64decode(secret.data["ca.crt"])
    adm = client.AdmissionregistrationV1Api(rehearsal.api_client())
    for config in (adm.read_validating_webhook_configuration("cert-manager-webhook"),
                   adm.read_mutating_webhook_configuration("cert-manager-webhook")):
        assert config.metadata.annotations["cert-manager.io/inject-ca-from-secret"] == \
            "cert-manager/cert-manager-webhook-ca"
        assert config.webhooks and all(base64.b64decode(h.client_config.ca_bundle) == ca for h in config.webhooks)


def test_cainjector_refuses_a_secret_that_does_not_allow_injection(rehearsal: Any, cert_manager: CertManager) -> None:
    """sources.go: no ``cert-manager.io/allow-direct-injection: "true"``, no injection."""
    from kubernetes import client

    core = rehearsal.core()
    adm = client.AdmissionregistrationV1Api(rehearsal.api_client())
    cert, _key = make_ca("test-ca")
    core.create_namespaced_secret("cert-manager", {"metadata": {"name": "test-ca-plain"},
                                                   "data": {"ca.crt": base64.b64encode(cert).decode()}})
    hook = {"metadata": {"name": "test-injection", "annotations": {
        "cert-manager.io/inject-ca-from-secret": "cert-manager/test-ca-plain"}},
        "webhooks": [{"name": "test.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                      "failurePolicy": "Ignore",
                      "clientConfig": {"service": {"name": "none", "namespace": "cert-manager", "path": "/x"}},
                      "rules": [{"apiGroups": ["example.com"], "apiVersions": ["v1"], "operations": ["CREATE"],
                                 "resources": ["nothings"]}]}]}
    adm.create_validating_webhook_configuration(hook)
    try:
        time.sleep(3 * cert_manager.interval + 1)
        assert adm.read_validating_webhook_configuration("test-injection").webhooks[0].client_config.ca_bundle is None
        assert not cert_manager.logged("into ValidatingWebhookConfiguration test-injection")
        core.patch_namespaced_secret("test-ca-plain", "cert-manager", {"metadata": {"annotations": {
            "cert-manager.io/allow-direct-injection": "true"}}})
        wait_for(lambda: adm.read_validating_webhook_configuration("test-injection").webhooks[0].client_config.ca_bundle)
    finally:
        adm.delete_validating_webhook_configuration("test-injection")
        core.delete_namespaced_secret("test-ca-plain", "cert-manager")


def test_webhook_admits_what_the_gateway_role_applies(custom: Any, cert_manager: CertManager) -> None:
    _create(custom, ISSUER)
    _create(custom, CERTIFICATE)
    assert cert_manager.logged("/validate CREATE clusterissuers/letsencrypt: allowed")
    assert cert_manager.logged("/validate CREATE certificates/gtc-demo: allowed")


def _with(body: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    change(out)
    return out


def _acme(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["spec"]["acme"]


# (object, message the webhook answers): each rule cites
# internal/apis/certmanager/validation/issuer.go or certificate.go at v1.21.1.
REFUSED = {
    "issuer without a type": (
        _with(ISSUER, lambda o: o.update(spec={})),
        "spec: Required value: at least one issuer must be configured"),
    "issuer with two types": (
        _with(ISSUER, lambda o: o["spec"].update(selfSigned={})),
        "spec.selfSigned: Forbidden: may not specify more than one issuer type"),
    "acme without a server": (
        _with(ISSUER, lambda o: _acme(o).update(server="")),
        "spec.acme.server: Required value: acme server URL is a required field"),
    "acme without an account key name": (
        _with(ISSUER, lambda o: _acme(o).update(privateKeySecretRef={"name": ""})),
        "spec.acme.privateKeySecretRef.name: Required value: private key secret name is a required field"),
    "digitalocean token without a key": (
        _with(ISSUER, lambda o: _acme(o)["solvers"][0]["dns01"]["digitalocean"]["tokenSecretRef"].pop("key")),
        "spec.acme.solvers[0].dns01.digitalocean.tokenSecretRef.key: Required value: secret key is required"),
    "dns01 without a provider": (
        _with(ISSUER, lambda o: _acme(o)["solvers"][0].update(dns01={})),
        "spec.acme.solvers[0].dns01: Required value: no DNS01 provider configured"),
    "solver without a type": (
        _with(ISSUER, lambda o: _acme(o).update(solvers=[{}])),
        "spec.acme.solvers[0]: Required value: no solver type configured"),
    "certificate with an empty secretName": (
        _with(CERTIFICATE, lambda o: o["spec"].update(secretName="")),
        "spec.secretName: Required value: must be specified"),
    "certificate with an empty issuer name": (
        _with(CERTIFICATE, lambda o: o["spec"]["issuerRef"].update(name="")),
        "spec.issuerRef.name: Required value: must be specified"),
    "certificate with an unknown issuer kind": (
        _with(CERTIFICATE, lambda o: o["spec"]["issuerRef"].update(kind="ClusterIsuer")),
        'spec.issuerRef.kind: Invalid value: "ClusterIsuer": must be one of Issuer or ClusterIssuer'),
    "certificate without any name": (
        _with(CERTIFICATE, lambda o: o["spec"].pop("dnsNames")),
        "at least one of commonName (from the commonName field or from a literalSubject), dnsNames"),
    "certificate with an ECDSA size of 2048": (
        _with(CERTIFICATE, lambda o: o["spec"]["privateKey"].update(size=2048)),
        'spec.privateKey.size: Unsupported value: 2048: supported values: "256", "384", "521"'),
    "certificate shorter than an hour": (
        _with(CERTIFICATE, lambda o: o["spec"].update(duration="30m")),
        "certificate duration must be greater than 1h0m0s"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_webhook_refuses_what_cert_manager_refuses(custom: Any, cert_manager: CertManager, case: str) -> None:
    body, expected = REFUSED[case]
    status, message = _refusal(custom, body)
    assert status == 403, (status, message)
    assert message.startswith('admission webhook "webhook.cert-manager.io" denied the request: '), message
    assert expected in message


def test_schema_refuses_before_the_webhook(custom: Any, cert_manager: CertManager) -> None:
    """A Certificate with no secretName or issuerRef never reaches the webhook: the CRD requires them."""
    before = len(cert_manager.logged("/validate CREATE certificates/"))
    status, message = _refusal(custom, _with(CERTIFICATE, lambda o: (o["spec"].pop("secretName"),
                                                                     o["spec"].pop("issuerRef"))))
    assert status == 422
    assert "spec.secretName: Required value" in message and "spec.issuerRef: Required value" in message
    assert len(cert_manager.logged("/validate CREATE certificates/")) == before


def test_issuer_and_certificate_become_ready_as_check_yml_waits_for(rehearsal: Any, custom: Any,
                                                                    cert_manager: CertManager) -> None:
    core = rehearsal.core()
    custom.create_cluster_custom_object(GROUP, VERSION, "clusterissuers", ISSUER)
    custom.create_namespaced_custom_object(GROUP, VERSION, "gtc-demo", "certificates", CERTIFICATE)
    try:
        issuer = wait_for(lambda: next((c for c in (custom.get_cluster_custom_object(
            GROUP, VERSION, "clusterissuers", "letsencrypt").get("status") or {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"), None))
        assert issuer["reason"] == "ACMEAccountRegistered"
        assert core.read_namespaced_secret("letsencrypt-account-key", "cert-manager").data["tls.key"]

        def ready() -> dict[str, Any] | None:
            status = custom.get_namespaced_custom_object(GROUP, VERSION, "gtc-demo", "certificates",
                                                         "gtc-demo").get("status") or {}
            return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

        # No DigitalOcean token Secret yet (cluster_config makes it): the DNS-01 challenge could not run.
        pending = wait_for(lambda: (ready() or {}).get("status") == "False" and ready())
        assert pending["reason"] == "DoesNotExist"
        time.sleep(1)
        assert ready()["status"] == "False"
        core.create_namespaced_secret("cert-manager", {"metadata": {"name": "digitalocean-dns"},
                                                       "stringData": {"access-token": "dop_v1_not_a_token"}})
        done = wait_for(lambda: (ready() or {}).get("status") == "True" and ready())
        assert (done["reason"], done["message"]) == ("Ready", "Certificate is up to date and has not expired")
        tls = core.read_namespaced_secret("gtc-demo-tls", "gtc-demo")
        assert tls.type == "kubernetes.io/tls" and tls.data["tls.crt"] and tls.data["tls.key"]
        assert tls.metadata.annotations["cert-manager.io/certificate-name"] == "gtc-demo"
        assert tls.metadata.annotations["cert-manager.io/alt-names"] == "gtc-demo.example.com"
        from cryptography import x509
        cert = x509.load_pem_x509_certificate(base64.b64decode(tls.data["tls.crt"]))
        assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName) == ["gtc-demo.example.com"]
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, "gtc-demo", "certificates", "gtc-demo")
        custom.delete_cluster_custom_object(GROUP, VERSION, "clusterissuers", "letsencrypt")
        for ns, name in (("gtc-demo", "gtc-demo-tls"), ("cert-manager", "digitalocean-dns"),
                         ("cert-manager", "letsencrypt-account-key")):
            try:
                core.delete_namespaced_secret(name, ns)
            except Exception:  # pylint: disable=broad-except
                pass


def test_certificate_of_a_missing_issuer_stays_not_ready(custom: Any, cert_manager: CertManager) -> None:
    body = _with(CERTIFICATE, lambda o: (o["metadata"].update(name="orphan"),
                                         o["spec"].update(secretName="orphan-tls"),
                                         o["spec"]["issuerRef"].update(name="no-such-issuer")))
    custom.create_namespaced_custom_object(GROUP, VERSION, "gtc-demo", "certificates", body)
    try:
        def issuing() -> Any:
            status = custom.get_namespaced_custom_object(GROUP, VERSION, "gtc-demo", "certificates",
                                                         "orphan").get("status") or {}
            return next((c for c in status.get("conditions", []) if c["type"] == "Issuing"), None)

        condition = wait_for(issuing)
        assert "no-such-issuer" in condition["message"]
        assert cert_manager.logged("Certificate gtc-demo/orphan Ready=False")
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, "gtc-demo", "certificates", "orphan")
