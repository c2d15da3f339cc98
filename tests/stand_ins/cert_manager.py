"""cert-manager v1.21.1's webhook, cainjector and (the part the gateway role's verify sees of) its controller.

The real chart (../shared/charts/cert-manager-v1.21.1.tgz) is installed for
real: CRDs, Deployments, Services, and the Validating/MutatingWebhookConfigurations
with ``failurePolicy: Fail``. kwok runs none of its pods, so this module does
what they would:

webhook
    Listens on the webhook Service's ClusterIP and port (the test cluster's
    Service range is loopback: ``tests/cluster/fixture.py`` ``Network.loopback``,
    and kube-apiserver dials a service webhook at its ClusterIP), with TLS from
    a CA kept in the Secret ``<release>-webhook-ca`` the way the webhook's
    dynamic serving authority keeps it (upstream ``pkg/server/tls/authority/authority.go``:
    CA ``cert-manager-webhook-ca`` valid 365 days, ``ca.crt``/``tls.crt``/``tls.key``,
    annotation ``cert-manager.io/allow-direct-injection: "true"``; a leaf for the
    ``--dynamic-serving-dns-names`` of the chart's webhook Deployment).
    ``/validate`` applies cert-manager's validation rules to Certificates,
    Issuers, ClusterIssuers and CertificateRequests (upstream
    ``internal/webhook/admission/resourcevalidation/resourcevalidation.go`` maps
    each resource to ``internal/apis/certmanager/validation/*.go``) and denies
    what they refuse, with the same field paths and messages; ``/mutate`` sets a
    CertificateRequest's identity (``internal/webhook/admission/certificaterequest/identity``).
cainjector
    Copies ``ca.crt`` of the Secret named by ``cert-manager.io/inject-ca-from-secret``
    into every ``caBundle`` of the annotated webhook configurations and
    APIServices, only when that Secret allows it (upstream
    ``pkg/controller/cainjector/sources.go`` secretDataSource, ``injectables.go``).
controller
    Issuers/ClusterIssuers: ACME registration cannot run offline, so an ACME
    issuer whose config parses is marked registered (``ACMEAccountRegistered``,
    upstream ``pkg/issuer/acme/setup.go``) and its account key Secret is made;
    a selfSigned issuer is Ready as upstream's is. Certificates: once the issuer
    is Ready (and, for an ACME DNS-01 DigitalOcean solver, its token Secret and
    key exist, which the real challenge reads), a key pair is made and signed by
    this stand-in's CA (the real one would come from Let's Encrypt) into
    ``spec.secretName`` with cert-manager's annotations, and the Certificate's
    Ready condition is set as upstream's readiness controller sets it
    (``pkg/controller/certificates/readiness/readiness_controller.go``,
    ``internal/controller/certificates/policies/checks.go``). No
    CertificateRequest, Order or Challenge objects are made.

Not covered: Orders/Challenges validation (always allowed), the
``cert-manager.io/inject-ca-from`` (Certificate) source, renewal.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import ipaddress
import json
import re
import socket
import ssl
import tempfile
import threading
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from . import StandIn, now_rfc3339, raw_request, same_conditions, set_condition

GROUP = "cert-manager.io"
VERSION = "v1"
INJECT_FROM_SECRET = "cert-manager.io/inject-ca-from-secret"
ALLOW_DIRECT_INJECTION = "cert-manager.io/allow-direct-injection"
CAINJECTOR_MANAGER = "cert-manager-cainjector"

# --------------------------------------------------------------------------
# Field errors, printed as k8s.io/apimachinery/pkg/util/validation/field
# (errors.go: Error(), ErrorList.ToAggregate()) prints them.


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def forbidden(path: str, detail: str) -> str:
    return f"{path}: Forbidden: {detail}"


def invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_value(value)}: {detail}"


def not_supported(path: str, value: Any, supported: list[str]) -> str:
    return f"{path}: Unsupported value: {_value(value)}: supported values: " + ", ".join(
        json.dumps(s) for s in supported)


def duplicate(path: str, value: Any) -> str:
    return f"{path}: Duplicate value: {_value(value)}"


def aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message, or [a, b] for several."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --------------------------------------------------------------------------
# Validation (internal/apis/certmanager/validation at v1.21.1)

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}

# pkg/apis/certmanager/v1/const.go: the defaults and minimums ValidateDuration uses.
DEFAULT_DURATION_S = 90 * 24 * 3600
MINIMUM_DURATION_S = 3600
MINIMUM_RENEW_BEFORE_S = 5 * 60

# pkg/api/util/usages.go (KeyUsageType, ExtKeyUsageType): the usages cert-manager knows.
KNOWN_USAGES = {
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only",
    "any", "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
    "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
}
# certificate.go keyAlgToAllowedSigAlgs
SIGNATURE_ALGORITHMS = {
    "RSA": ["SHA256WithRSA", "SHA384WithRSA", "SHA512WithRSA"],
    "ECDSA": ["ECDSAWithSHA256", "ECDSAWithSHA384", "ECDSAWithSHA512"],
    "Ed25519": ["PureEd25519"],
}


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go time.Duration string ("2160h", "1h30m"); None if it does not parse."""
    if not text:
        return None
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _GO_DURATION.finditer(body):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total if pos == len(body) and pos > 0 else None


def dns_subdomain_errors(value: str) -> list[str]:
    """apimachinery validation.IsDNS1123Subdomain's messages."""
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        errors.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                      "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                      "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return errors


def validate_issuer_ref(ref: dict[str, Any], path: str) -> list[str]:
    """certificate.go validateIssuerRef."""
    errors = []
    if not ref.get("name"):
        errors.append(required(f"{path}.issuerRef.name", "must be specified"))
    group, kind = ref.get("group", ""), ref.get("kind", "")
    if group in ("", GROUP) and kind not in ("", "Issuer", "ClusterIssuer"):
        message = "must be one of Issuer or ClusterIssuer"
        if group == "":
            message += f" (did you forget to set {path}.issuerRef.kind.group?)"
        errors.append(invalid(f"{path}.issuerRef.kind", kind, message))
    return errors


def validate_certificate_spec(spec: dict[str, Any], path: str = "spec") -> list[str]:
    """certificate.go ValidateCertificateSpec (the rules for fields our roles and their users set)."""
    errors: list[str] = []
    secret_name = spec.get("secretName", "")
    if not secret_name:
        errors.append(required(f"{path}.secretName", "must be specified"))
    else:
        errors += [invalid(f"{path}.secretName", secret_name, m) for m in dns_subdomain_errors(secret_name)]
    errors += validate_issuer_ref(spec.get("issuerRef") or {}, path)

    common_name = spec.get("commonName", "")
    if not any([common_name, spec.get("dnsNames"), spec.get("uris"), spec.get("emailAddresses"),
                spec.get("ipAddresses"), spec.get("otherNames")]) and not spec.get("literalSubject"):
        errors.append(invalid(path, "", "at least one of commonName (from the commonName field or from a "
                                        "literalSubject), dnsNames, emailSANs, ipAddresses, otherNames, or "
                                        "uriSANs must be set"))
    if len(common_name) > 64:
        errors.append(f"{path}.commonName: Too long: may not be more than 64 bytes")
    for i, ip in enumerate(spec.get("ipAddresses") or []):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            errors.append(invalid(f"{path}.ipAddresses[{i}]", ip, "invalid IP address"))
    for i, email in enumerate(spec.get("emailAddresses") or []):
        _display_name, address = parseaddr(email)
        if not address or "@" not in address:
            errors.append(invalid(f"{path}.emailAddresses[{i}]", email, "invalid email address: mail: no address"))
        elif address != email:
            errors.append(invalid(f"{path}.emailAddresses[{i}]", email, "invalid email address: make sure the "
                                  "supplied value only contains the email address itself"))

    key = spec.get("privateKey") or {}
    algorithm, size = key.get("algorithm", ""), int(key.get("size") or 0)
    if key:
        if algorithm in ("", "RSA"):
            # pki.MinRSAKeySize / MaxRSAKeySize
            if size > 0 and (size < 2048 or size > 8192):
                errors.append(invalid(f"{path}.privateKey.size", size, "must be between 2048 and 8192 for rsa "
                                      "keyAlgorithm"))
        elif algorithm == "ECDSA":
            if size > 0 and size not in (256, 384, 521):
                errors.append(not_supported(f"{path}.privateKey.size", size, ["256", "384", "521"]))
        elif algorithm != "Ed25519":
            errors.append(invalid(f"{path}.privateKey.algorithm", algorithm, "must be either empty or one of rsa, "
                                  "ecdsa or ed25519"))
    signature = spec.get("signatureAlgorithm", "")
    if signature:
        allowed = SIGNATURE_ALGORITHMS.get(algorithm or "RSA")
        if allowed and signature not in allowed:
            errors.append(invalid(f"{path}.signatureAlgorithm", signature,
                                  f"for key algorithm {algorithm or 'RSA'} the allowed signature algorithms are "
                                  f"[{' '.join(allowed)}]"))

    if "duration" in spec or "renewBefore" in spec:
        errors += validate_duration(spec, path)
    for i, usage in enumerate(spec.get("usages") or []):
        if usage not in KNOWN_USAGES:
            errors.append(invalid(f"{path}.usages[{i}]", usage, "unknown keyusage"))
    limit = spec.get("revisionHistoryLimit")
    if limit is not None and int(limit) < 1:
        errors.append(invalid(f"{path}.revisionHistoryLimit", int(limit), "must not be less than 1"))
    for annotation in ((spec.get("secretTemplate") or {}).get("annotations") or {}):
        if annotation.startswith("cert-manager.io/") and annotation != ALLOW_DIRECT_INJECTION:
            errors.append(invalid(f"{path}.secretTemplate.annotations", annotation,
                                  "cert-manager.io/* annotations are not allowed"))
    seen: set[str] = set()
    for output in spec.get("additionalOutputFormats") or []:
        kind = output.get("type", "")
        if kind in seen:
            errors.append(duplicate(f"{path}.additionalOutputFormats[type]", kind))
        seen.add(kind)
    return errors


def validate_duration(spec: dict[str, Any], path: str) -> list[str]:
    """certificate.go ValidateDuration (durations as Go prints them are not reproduced: seconds)."""
    errors = []
    duration = parse_go_duration(spec["duration"]) if spec.get("duration") else DEFAULT_DURATION_S
    renew = parse_go_duration(spec["renewBefore"]) if spec.get("renewBefore") else None
    if duration is None:
        return [invalid(f"{path}.duration", spec["duration"], "not a duration")]
    if duration < MINIMUM_DURATION_S:
        errors.append(invalid(f"{path}.duration", spec.get("duration"), "certificate duration must be greater "
                              "than 1h0m0s"))
    if renew is not None and spec.get("renewBeforePercentage") is not None:
        errors.append(invalid(f"{path}.renewBefore", spec["renewBefore"], "renewBefore and renewBeforePercentage "
                              "are mutually exclusive and cannot both be set"))
    if renew is not None and renew < MINIMUM_RENEW_BEFORE_S:
        errors.append(invalid(f"{path}.renewBefore", spec["renewBefore"], "certificate renewBefore must be "
                              "greater than 5m0s"))
    if renew is not None and renew >= duration:
        errors.append(invalid(f"{path}.renewBefore", spec["renewBefore"],
                              f"certificate duration {spec.get('duration', '2160h0m0s')} must be greater than "
                              f"renewBefore {spec['renewBefore']}"))
    return errors


def validate_secret_key_selector(selector: dict[str, Any] | None, path: str) -> list[str]:
    """issuer.go ValidateSecretKeySelector."""
    selector = selector or {}
    errors = []
    if not selector.get("name"):
        errors.append(required(f"{path}.name", "secret name is required"))
    if not selector.get("key"):
        errors.append(required(f"{path}.key", "secret key is required"))
    return errors


# The DNS-01 providers of issuer.go ValidateACMEChallengeSolverDNS01, in its order.
DNS01_PROVIDERS = ["akamai", "azureDNS", "cloudDNS", "cloudflare", "route53", "acmeDNS", "digitalocean",
                   "rfc2136", "webhook"]


def validate_dns01(dns01: dict[str, Any], path: str) -> list[str]:
    """issuer.go ValidateACMEChallengeSolverDNS01: exactly one provider; the DigitalOcean one needs
    tokenSecretRef with name and key. (Other providers' own fields are not checked here.)"""
    errors = []
    strategy = dns01.get("cnameStrategy", "")
    if strategy and strategy not in ("None", "Follow"):
        errors.append(invalid(f"{path}.cnameStrategy", strategy, 'must be one of "None" or "Follow"'))
    count = 0
    for provider in DNS01_PROVIDERS:
        if dns01.get(provider) is None:
            continue
        # akamai and acmeDNS are counted without the "more than one" check upstream.
        if count > 0 and provider not in ("akamai", "acmeDNS"):
            errors.append(forbidden(f"{path}.{provider}", "may not specify more than one provider type"))
            continue
        count += 1
        if provider == "digitalocean":
            errors += validate_secret_key_selector(dns01[provider].get("tokenSecretRef"),
                                                   f"{path}.digitalocean.tokenSecretRef")
        elif provider == "webhook" and not dns01[provider].get("solverName"):
            errors.append(required(f"{path}.webhook.solverName", "solver name must be specified"))
    if count == 0:
        errors.append(required(path, "no DNS01 provider configured"))
    return errors


def validate_solver(solver: dict[str, Any], path: str) -> list[str]:
    """issuer.go ValidateACMEIssuerChallengeSolverConfig."""
    errors = []
    count = 0
    if solver.get("http01") is not None:
        count += 1
        http01 = solver["http01"]
        defined = sum(1 for k in ("ingress", "gatewayHTTPRoute") if http01.get(k) is not None)
        if defined == 0:
            errors.append(required(f"{path}.http01", "no HTTP01 solver type configured"))
        if defined > 1:
            errors.append(required(f"{path}.http01", "only 1 HTTP01 solver type may be configured"))
    if solver.get("dns01") is not None:
        if count > 0:
            errors.append(forbidden(path, "may not specify more than one solver type in a single solver"))
        else:
            count += 1
            errors += validate_dns01(solver["dns01"], f"{path}.dns01")
    if count == 0:
        errors.append(required(path, "no solver type configured"))
    return errors


def validate_acme(acme: dict[str, Any], path: str) -> list[str]:
    """issuer.go ValidateACMEIssuerConfig."""
    errors = []
    if acme.get("caBundle") and acme.get("skipTLSVerify"):
        errors.append(invalid(f"{path}.caBundle", "", "caBundle and skipTLSVerify are mutually exclusive and "
                              "cannot both be set"))
        errors.append(invalid(f"{path}.skipTLSVerify", True, "caBundle and skipTLSVerify are mutually exclusive "
                              "and cannot both be set"))
    if not (acme.get("privateKeySecretRef") or {}).get("name"):
        errors.append(required(f"{path}.privateKeySecretRef.name", "private key secret name is a required field"))
    if not acme.get("server"):
        errors.append(required(f"{path}.server", "acme server URL is a required field"))
    eab = acme.get("externalAccountBinding")
    if eab is not None:
        if not eab.get("keyID"):
            errors.append(required(f"{path}.externalAccountBinding.keyID",
                                   "the keyID field is required when using externalAccountBinding"))
        errors += validate_secret_key_selector(eab.get("keySecretRef"), f"{path}.externalAccountBinding.keySecretRef")
    for i, solver in enumerate(acme.get("solvers") or []):
        errors += validate_solver(solver, f"{path}.solvers[{i}]")
    return errors


ISSUER_TYPES = ["acme", "ca", "selfSigned", "vault", "venafi"]


def validate_issuer_spec(spec: dict[str, Any], path: str = "spec") -> list[str]:
    """issuer.go ValidateIssuerConfig: exactly one issuer type, then that type's rules
    (acme, ca and selfSigned here; vault's and venafi's own fields are not checked)."""
    errors = []
    count = 0
    for kind in ISSUER_TYPES:
        if spec.get(kind) is None:
            continue
        if count > 0:
            errors.append(forbidden(f"{path}.{kind}", "may not specify more than one issuer type"))
            continue
        count += 1
        if kind == "acme":
            errors += validate_acme(spec[kind], f"{path}.acme")
        elif kind == "ca" and not spec[kind].get("secretName"):
            errors.append(required(f"{path}.ca.secretName"))
    if count == 0:
        errors.append(required(path, "at least one issuer must be configured"))
    return errors


def validate_certificate_request_spec(spec: dict[str, Any], path: str = "spec") -> list[str]:
    """certificaterequest.go ValidateCertificateRequestSpec: issuerRef and a request."""
    errors = validate_issuer_ref(spec.get("issuerRef") or {}, path)
    if not spec.get("request"):
        errors.append(required(f"{path}.request", "must be specified"))
    for i, usage in enumerate(spec.get("usages") or []):
        if usage not in KNOWN_USAGES:
            errors.append(invalid(f"{path}.usages[{i}]", usage, "unknown keyusage"))
    return errors


VALIDATORS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "certificates": lambda obj: validate_certificate_spec(obj.get("spec") or {}),
    "issuers": lambda obj: validate_issuer_spec(obj.get("spec") or {}),
    "clusterissuers": lambda obj: validate_issuer_spec(obj.get("spec") or {}),
    "certificaterequests": lambda obj: validate_certificate_request_spec(obj.get("spec") or {}),
}


def review(request: dict[str, Any], path: str) -> dict[str, Any]:
    """The AdmissionReview response of cert-manager's webhook for ``request`` at ``path``."""
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    resource = request.get("requestResource") or request.get("resource") or {}
    obj = request.get("object") or {}
    if path == "/validate":
        validator = VALIDATORS.get(resource.get("resource", ""))
        if resource.get("group") == GROUP and validator and request.get("operation") in ("CREATE", "UPDATE"):
            errors = validator(obj)
            if errors:
                # controller-runtime admission.Denied (custom_validator_webhook.go): 403 Forbidden.
                response.update(allowed=False, status={"code": 403, "reason": "Forbidden",
                                                       "message": aggregate(errors)})
    elif path == "/mutate":
        if (resource.get("group") == GROUP and resource.get("resource") == "certificaterequests"
                and request.get("operation") == "CREATE"):
            user = request.get("userInfo") or {}
            ops = [{"op": "add", "path": "/spec/uid", "value": user.get("uid", "")},
                   {"op": "add", "path": "/spec/username", "value": user.get("username", "")},
                   {"op": "add", "path": "/spec/groups", "value": user.get("groups") or []}]
            if "extra" in (obj.get("spec") or {}):
                ops.append({"op": "remove", "path": "/spec/extra"})
            if user.get("extra"):
                ops.append({"op": "add", "path": "/spec/extra", "value": user["extra"]})
            response.update(patchType="JSONPatch", patch=base64.b64encode(json.dumps(ops).encode()).decode())
    else:
        response.update(allowed=False, status={"code": 404, "message": f"no handler for {path}"})
    return response


# --------------------------------------------------------------------------
# Certificates (cryptography)


def _x509() -> Any:
    from cryptography import x509  # pylint: disable=import-outside-toplevel

    return x509


def make_ca(common_name: str, days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed CA (PEM cert, PEM key), as authority.go regenerates its CA."""
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel

    x509 = _x509()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                                         content_commitment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def make_leaf(ca_cert_pem: bytes, ca_key_pem: bytes, dns_names: list[str], *, common_name: str = "",
              days: float = 7, algorithm: str = "ECDSA", size: int = 256,
              ip_addresses: list[str] | None = None) -> tuple[bytes, bytes]:
    """A serving certificate for ``dns_names`` (and ``ip_addresses``) signed by the CA (PEM cert, PEM key)."""
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # pylint: disable=import-outside-toplevel

    x509 = _x509()
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    if algorithm == "RSA":
        key: Any = rsa.generate_private_key(65537, size or 2048)
    elif algorithm == "Ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        curve = {384: ec.SECP384R1(), 521: ec.SECP521R1()}.get(size, ec.SECP256R1())
        key = ec.generate_private_key(curve)
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in dns_names if n]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses or []]), critical=not common_name)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------
# The webhook's HTTPS server


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "cert-manager-webhook-stand-in"
    stand_in: "CertManager"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        request = body.get("request") or {}
        path = self.path.split("?", 1)[0]
        response = review(request, path)
        resource = (request.get("requestResource") or request.get("resource") or {}).get("resource", "?")
        name = (request.get("object") or {}).get("metadata", {}).get("name") or request.get("name", "")
        verdict = "allowed" if response["allowed"] else f"denied: {response['status']['message']}"
        self.server.stand_in.record(f"webhook {path} {request.get('operation')} {resource}/{name}: {verdict}")  # type: ignore[attr-defined]
        payload = json.dumps({"apiVersion": body.get("apiVersion", "admission.k8s.io/v1"),
                              "kind": "AdmissionReview", "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802
        ok = self.path in ("/livez", "/healthz", "/readyz")
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"no")

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        return


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, stand_in: "CertManager") -> None:
        self.context = context
        self.stand_in = stand_in
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), addr


# --------------------------------------------------------------------------
# The stand-in


class CertManager(StandIn):
    """cert-manager's webhook, cainjector and controller, for a real cert-manager release."""

    name = "cert-manager"
    interval = 1.0  # seconds between passes: each pass lists what it watches

    def __init__(self, api_client: Any, *, namespace: str = "cert-manager", release: str = "cert-manager",
                 webhook: bool = True, cainjector: bool = True, controller: bool = True) -> None:
        super().__init__(api_client)
        self.namespace = namespace            # the release's namespace = --cluster-resource-namespace
        self.release = release
        self.webhook_service = f"{release}-webhook"
        self.ca_secret = f"{release}-webhook-ca"   # --dynamic-serving-ca-secret-name
        self._parts = {"webhook": webhook, "cainjector": cainjector, "controller": controller}
        self._server: _TLSServer | None = None
        self._server_thread: threading.Thread | None = None
        self._bound: tuple[str, int] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="cert-manager-stand-in-")

    # -- clients ---------------------------------------------------------------

    def _core(self) -> Any:
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        return client.CoreV1Api(self.api_client)

    def _custom(self) -> Any:
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        return client.CustomObjectsApi(self.api_client)

    def _raw(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
             query: list[tuple[str, str]] | None = None) -> Any:
        """A request by path (server-side apply, objects as plain dicts)."""
        return raw_request(self.api_client, method, path, body, content_type, query)

    def loops(self) -> list[Callable[[], None]]:
        steps: list[Callable[[], None]] = []
        if self._parts["webhook"]:
            steps.append(self.webhook_pass)
        if self._parts["cainjector"]:
            steps.append(self.cainjector_pass)
        if self._parts["controller"]:
            steps.append(self.controller_pass)
        return steps

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._server_thread is not None:
                self._server_thread.join(5)
            self._server = None
            self._bound = None

    def stop(self, timeout: float = 15) -> None:
        super().stop(timeout)
        self._tmp.cleanup()
        self._tmp = tempfile.TemporaryDirectory(prefix="cert-manager-stand-in-")

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the webhook serves and the chart's webhook configurations carry its CA
        (what the real pods' readiness would mean for a caller)."""
        import time  # pylint: disable=import-outside-toplevel

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._bound is not None and self._injected():
                return
            time.sleep(0.2)
        raise TimeoutError(f"cert-manager stand-in not ready after {timeout}s: {self.log[-5:]}")

    def _injected(self) -> bool:
        try:
            ca = self._injectable_ca(f"{self.namespace}/{self.ca_secret}")
        except Exception:  # pylint: disable=broad-except
            return False
        if ca is None:
            return False
        bundle = _b64(ca)
        for plural in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
            path = f"/apis/admissionregistration.k8s.io/v1/{plural}"
            for obj in self._raw("GET", path).get("items", []):
                if (obj["metadata"].get("annotations") or {}).get(INJECT_FROM_SECRET) == f"{self.namespace}/{self.ca_secret}":
                    if any((h.get("clientConfig") or {}).get("caBundle") != bundle for h in obj.get("webhooks") or []):
                        return False
        return True

    # -- webhook -----------------------------------------------------------------

    def _ca(self) -> tuple[bytes, bytes]:
        """The CA in the dynamic serving Secret, made (or remade, if unusable) as authority.go does."""
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        core = self._core()
        try:
            secret = core.read_namespaced_secret(self.ca_secret, self.namespace)
            data = secret.data or {}
            if data.get("ca.crt") and data.get("tls.key") and data.get("ca.crt") == data.get("tls.crt"):
                return base64.b64decode(data["ca.crt"]), base64.b64decode(data["tls.key"])
        except ApiException as exc:
            if exc.status != 404:
                raise
            secret = None
        cert, key = make_ca("cert-manager-webhook-ca", days=365)
        body = {"metadata": {"name": self.ca_secret, "namespace": self.namespace,
                             "annotations": {ALLOW_DIRECT_INJECTION: "true"}},
                "type": "Opaque", "data": {"ca.crt": _b64(cert), "tls.crt": _b64(cert), "tls.key": _b64(key)}}
        if secret is None:
            core.create_namespaced_secret(self.namespace, body)
        else:
            core.replace_namespaced_secret(self.ca_secret, self.namespace, {**body, "metadata": {
                **body["metadata"], "resourceVersion": secret.metadata.resource_version}})
        self.record(f"webhook: made CA Secret {self.namespace}/{self.ca_secret}")
        return cert, key

    def _dns_names(self) -> list[str]:
        """--dynamic-serving-dns-names of the chart's webhook Deployment (with $(POD_NAMESPACE) filled in)."""
        from kubernetes import client  # pylint: disable=import-outside-toplevel

        names: list[str] = []
        deployment = client.AppsV1Api(self.api_client).read_namespaced_deployment(self.webhook_service, self.namespace)
        for container in deployment.spec.template.spec.containers:
            for arg in container.args or []:
                if arg.startswith("--dynamic-serving-dns-names="):
                    names += arg.split("=", 1)[1].replace("$(POD_NAMESPACE)", self.namespace).split(",")
        return names or [self.webhook_service, f"{self.webhook_service}.{self.namespace}",
                         f"{self.webhook_service}.{self.namespace}.svc"]

    def webhook_pass(self) -> None:
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            service = self._core().read_namespaced_service(self.webhook_service, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        port = next((p.port for p in service.spec.ports if p.name == "https"), service.spec.ports[0].port)
        address = (service.spec.cluster_ip, port)
        if self._bound == address:
            return
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise RuntimeError(f"the webhook Service's ClusterIP {address[0]} is not loopback: "
                               "start the cluster with Network.loopback")
        self.close()
        ca_cert, ca_key = self._ca()
        cert, key = make_leaf(ca_cert, ca_key, self._dns_names(), days=7)
        cert_path, key_path = Path(self._tmp.name) / "tls.crt", Path(self._tmp.name) / "tls.key"
        cert_path.write_bytes(cert)
        key_path.write_bytes(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        self._server = _TLSServer(address, context, self)
        self._server_thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                               name="cert-manager:webhook-server", daemon=True)
        self._server_thread.start()
        self._bound = address
        self.record(f"webhook: serving https://{address[0]}:{address[1]} (Service {self.namespace}/"
                    f"{self.webhook_service})")

    # -- cainjector ---------------------------------------------------------------

    def _injectable_ca(self, annotation: str) -> bytes | None:
        """sources.go secretDataSource.ReadCA: namespace/name, the allow annotation, ca.crt."""
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        namespace, _slash, name = annotation.partition("/")
        if not name:
            return None  # "invalid secret source: missing namespace/ prefix"
        try:
            secret = self._core().read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if (secret.metadata.annotations or {}).get(ALLOW_DIRECT_INJECTION) != "true":
            return None  # "Secret resource does not allow direct injection - refusing to inject CA"
        data = (secret.data or {}).get("ca.crt")
        return base64.b64decode(data) if data else None

    def cainjector_pass(self) -> None:
        targets = [
            ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
             "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"),
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration",
             "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"),
            ("apiregistration.k8s.io/v1", "APIService", "/apis/apiregistration.k8s.io/v1/apiservices"),
        ]
        for api_version, kind, path in targets:
            for obj in self._raw("GET", path).get("items", []):
                annotation = (obj["metadata"].get("annotations") or {}).get(INJECT_FROM_SECRET)
                if not annotation:
                    continue
                ca = self._injectable_ca(annotation)
                if ca is None:
                    continue
                bundle = _b64(ca)
                name = obj["metadata"]["name"]
                if kind == "APIService":
                    if obj["spec"].get("caBundle") == bundle:
                        continue
                    patch = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name},
                             "spec": {"caBundle": bundle}}
                else:
                    hooks = obj.get("webhooks") or []
                    if all((h.get("clientConfig") or {}).get("caBundle") == bundle for h in hooks):
                        continue
                    # injectables.go AsApplyObject: each webhook by name, only its caBundle.
                    patch = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name},
                             "webhooks": [{"name": h["name"], "clientConfig": {"caBundle": bundle}} for h in hooks]}
                self._raw("PATCH", f"{path}/{name}", patch, "application/apply-patch+yaml",
                          [("fieldManager", CAINJECTOR_MANAGER), ("force", "true")])
                self.record(f"cainjector: injected {annotation} into {kind} {name}")

    # -- controller ----------------------------------------------------------------

    def _issuers(self) -> list[dict[str, Any]]:
        custom = self._custom()
        items = custom.list_cluster_custom_object(GROUP, VERSION, "clusterissuers").get("items", [])
        items += custom.list_cluster_custom_object(GROUP, VERSION, "issuers").get("items", [])
        return items

    def _write_status(self, obj: dict[str, Any], plural: str, status: dict[str, Any]) -> None:
        custom = self._custom()
        meta = obj["metadata"]
        if meta.get("namespace"):
            custom.patch_namespaced_custom_object_status(GROUP, VERSION, meta["namespace"], plural, meta["name"],
                                                         {"status": status})
        else:
            custom.patch_cluster_custom_object_status(GROUP, VERSION, plural, meta["name"], {"status": status})

    def _issuer_state(self, issuer: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
        """(status, reason, message, extra status) of an issuer, as its setup would leave it."""
        spec = issuer.get("spec") or {}
        if spec.get("selfSigned") is not None:
            # pkg/issuer/selfsigned/setup.go: Ready, reason IsReady.
            return "True", "IsReady", "", {}
        if spec.get("acme") is not None:
            acme = spec["acme"]
            url = urlparse(acme.get("server", ""))
            if url.scheme not in ("http", "https") or not url.netloc:
                # pkg/issuer/acme/setup.go errorInvalidURL
                return "False", "InvalidURL", f"Failed to parse existing ACME server URI {acme.get('server')!r}", {}
            self._ensure_account_key(acme["privateKeySecretRef"]["name"], issuer)
            # Offline: no registration with the ACME server; what a successful one leaves.
            account = hashlib.sha256(f"{acme.get('server')}|{acme.get('email', '')}".encode()).hexdigest()[:12]
            return ("True", "ACMEAccountRegistered", "The ACME account was registered with the ACME server",
                    {"acme": {"uri": f"{acme['server'].rstrip('/')}/acct/{account}",
                              "lastRegisteredEmail": acme.get("email", "")}})
        if spec.get("ca") is not None:
            secret = self._secret(self._resource_namespace(issuer), spec["ca"].get("secretName", ""))
            if secret is None:
                return "False", "ErrGetKeyPair", f"Error getting keypair for CA issuer: secret \"{spec['ca'].get('secretName')}\" not found", {}
            return "True", "KeyPairVerified", "Signing CA verified", {}
        return "False", "ErrInitIssuer", "the stand-in knows only acme, ca and selfSigned issuers", {}

    def _resource_namespace(self, issuer: dict[str, Any]) -> str:
        """A ClusterIssuer's Secrets live in --cluster-resource-namespace (the release's namespace)."""
        return issuer["metadata"].get("namespace") or self.namespace

    def _secret(self, namespace: str, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        if not name:
            return None
        try:
            return self._core().read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _ensure_account_key(self, name: str, issuer: dict[str, Any]) -> None:
        namespace = self._resource_namespace(issuer)
        if self._secret(namespace, name) is not None:
            return
        from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives.asymmetric import rsa  # pylint: disable=import-outside-toplevel

        # setup.go: an RSA 2048 account key is generated when the Secret is missing.
        key = rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
        self._core().create_namespaced_secret(namespace, {"metadata": {"name": name, "namespace": namespace},
                                                          "data": {"tls.key": _b64(key)}})
        self.record(f"controller: made ACME account key Secret {namespace}/{name}")

    def controller_pass(self) -> None:
        ready: dict[tuple[str, str, str], dict[str, Any]] = {}
        for issuer in self._issuers():
            state, reason, message, extra = self._issuer_state(issuer)
            kind = issuer.get("kind", "ClusterIssuer")
            condition = {"type": "Ready", "status": state, "reason": reason, "message": message,
                         "lastTransitionTime": now_rfc3339(),
                         "observedGeneration": issuer["metadata"].get("generation", 1)}
            current = (issuer.get("status") or {}).get("conditions") or []
            conditions = set_condition(current, condition)
            if not same_conditions(current, conditions):
                self._write_status(issuer, "clusterissuers" if kind == "ClusterIssuer" else "issuers",
                                   {"conditions": conditions, **extra})
                self.record(f"controller: {kind} {issuer['metadata']['name']} Ready={state} ({reason})")
            if state == "True":
                ready[(kind, issuer["metadata"].get("namespace", ""), issuer["metadata"]["name"])] = issuer
        for cert in self._custom().list_cluster_custom_object(GROUP, VERSION, "certificates").get("items", []):
            self._reconcile_certificate(cert, ready)

    def _certificate_blocker(self, cert: dict[str, Any], ready: dict[tuple[str, str, str], dict[str, Any]]
                             ) -> tuple[dict[str, Any] | None, str]:
        spec = cert["spec"]
        ref = spec.get("issuerRef") or {}
        kind = ref.get("kind") or "Issuer"
        if ref.get("group", GROUP) not in ("", GROUP):
            return None, f"external issuer group {ref.get('group')!r} is not run by the stand-in"
        namespace = "" if kind == "ClusterIssuer" else cert["metadata"]["namespace"]
        issuer = ready.get((kind, namespace, ref.get("name", "")))
        if issuer is None:
            return None, f"Referenced \"{kind}\" not found or not Ready: {ref.get('name')}"
        acme = (issuer.get("spec") or {}).get("acme")
        if acme is not None:
            # A DNS-01 DigitalOcean challenge reads the token from the Secret the solver names
            # (pkg/issuer/acme/dns/dns.go solverForChallenge), in the issuer's resource namespace.
            for solver in acme.get("solvers") or []:
                token = ((solver.get("dns01") or {}).get("digitalocean") or {}).get("tokenSecretRef")
                if token is None:
                    continue
                secret = self._secret(self._resource_namespace(issuer), token.get("name", ""))
                if secret is None:
                    return None, (f"error getting digitalocean token: secret \"{token.get('name')}\" not found "
                                  f"in {self._resource_namespace(issuer)}")
                if not (secret.data or {}).get(token.get("key", "")):
                    return None, (f"error getting digitalocean token: no key \"{token.get('key')}\" in secret "
                                  f"\"{self._resource_namespace(issuer)}/{token.get('name')}\"")
        return issuer, ""

    def _reconcile_certificate(self, cert: dict[str, Any], ready: dict[tuple[str, str, str], dict[str, Any]]) -> None:
        meta, spec = cert["metadata"], cert["spec"]
        namespace, name = meta["namespace"], meta["name"]
        if not spec.get("secretName"):
            return  # the webhook refuses it; nothing to issue into
        issuer, blocker = self._certificate_blocker(cert, ready)
        secret = self._secret(namespace, spec["secretName"])
        issued = secret is not None and (secret.metadata.annotations or {}).get(
            "cert-manager.io/certificate-name") == name and (secret.data or {}).get("tls.crt")
        status = dict(cert.get("status") or {})
        current = status.get("conditions") or []
        generation = meta.get("generation", 1)
        if not issued and issuer is not None:
            self._issue(cert, issuer)
            issued = True
            status["revision"] = int(status.get("revision") or 0) + 1
            now = datetime.datetime.now(datetime.timezone.utc)
            duration = parse_go_duration(spec.get("duration", "")) or DEFAULT_DURATION_S
            status.update(notBefore=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          notAfter=(now + datetime.timedelta(seconds=duration)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          renewalTime=(now + datetime.timedelta(seconds=duration * 2 / 3)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if issued:
            condition = {"type": "Ready", "status": "True", "reason": "Ready",
                         "message": "Certificate is up to date and has not expired"}
            conditions = [c for c in current if c.get("type") != "Issuing"]
        else:
            # policies/checks.go SecretDoesNotExist; the issuing controller's Issuing condition.
            condition = {"type": "Ready", "status": "False", "reason": "DoesNotExist",
                         "message": "Issuing certificate as Secret does not exist"}
            conditions = set_condition(current, {"type": "Issuing", "status": "True", "reason": "DoesNotExist",
                                                 "message": f"Issuing certificate as Secret does not exist; {blocker}",
                                                 "lastTransitionTime": now_rfc3339(),
                                                 "observedGeneration": generation})
        condition.update(lastTransitionTime=now_rfc3339(), observedGeneration=generation)
        conditions = set_condition(conditions, condition)
        if not same_conditions(current, conditions) or status.get("revision") != (cert.get("status") or {}).get("revision"):
            status["conditions"] = conditions  # a merge patch replaces the list whole
            self._write_status(cert, "certificates", status)
            self.record(f"controller: Certificate {namespace}/{name} Ready={condition['status']}"
                        + (f" ({blocker})" if blocker and condition["status"] != "True" else ""))

    def _issue(self, cert: dict[str, Any], issuer: dict[str, Any]) -> None:
        meta, spec = cert["metadata"], cert["spec"]
        ca_cert, ca_key = self._ca()
        key = spec.get("privateKey") or {}
        dns_names = list(spec.get("dnsNames") or [])
        duration = parse_go_duration(spec.get("duration", "")) or DEFAULT_DURATION_S
        tls_crt, tls_key = make_leaf(ca_cert, ca_key, dns_names or [spec.get("commonName", "")],
                                     common_name=spec.get("commonName", ""), days=duration / 86400,
                                     algorithm=key.get("algorithm") or "RSA", size=int(key.get("size") or 0))
        ref = spec["issuerRef"]
        # The Secret's annotations as cert-manager's secrets manager writes them
        # (pkg/apis/certmanager/v1/types.go annotation keys).
        annotations = {
            "cert-manager.io/certificate-name": meta["name"],
            "cert-manager.io/issuer-name": ref["name"],
            "cert-manager.io/issuer-kind": ref.get("kind") or "Issuer",
            "cert-manager.io/issuer-group": ref.get("group") or GROUP,
            "cert-manager.io/common-name": spec.get("commonName", ""),
            "cert-manager.io/alt-names": ",".join(dns_names),
            "cert-manager.io/ip-sans": ",".join(spec.get("ipAddresses") or []),
            "cert-manager.io/uri-sans": ",".join(spec.get("uris") or []),
        }
        template = spec.get("secretTemplate") or {}
        annotations.update(template.get("annotations") or {})
        labels = {"controller.cert-manager.io/fao": "true", **(template.get("labels") or {})}
        data = {"tls.crt": _b64(tls_crt), "tls.key": _b64(tls_key)}
        if (issuer.get("spec") or {}).get("acme") is None:
            data["ca.crt"] = _b64(ca_cert)
        body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": spec["secretName"], "namespace": meta["namespace"],
                             "annotations": annotations, "labels": labels},
                "data": data}
        self._raw("PATCH", f"/api/v1/namespaces/{meta['namespace']}/secrets/{spec['secretName']}", body,
                  "application/apply-patch+yaml", [("fieldManager", "cert-manager-certificates-issuing"),
                                                   ("force", "true")])
        self.record(f"controller: issued {meta['namespace']}/{spec['secretName']} for Certificate {meta['name']} "
                    f"(signed by the stand-in's CA, not {issuer['metadata']['name']})")
