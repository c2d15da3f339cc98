"""A Gateway API controller in place of DOKS's managed Cilium one, following the Gateway API spec v1.6.1.

DOKS runs Cilium's Gateway API implementation: it installs and manages the
Gateway API CRDs and the GatewayClass ``cilium`` whose controllerName is
``io.cilium/gateway-controller`` (DigitalOcean, "How to Use Gateway API to
Route Traffic in Kubernetes Clusters"; Cilium ``operator/pkg/gateway-api``).
This stand-in takes that controller name and writes the statuses a
conformant controller writes. The rules come from the condition
descriptions of the spec (kubernetes-sigs/gateway-api v1.6.1
``apis/v1/gatewayclass_types.go``, ``gateway_types.go``, ``shared_types.go``,
``httproute_types.go``, ``referencegrant`` in ``apis/v1beta1``; the same text
is in the CRDs under ../shared/schemas/crds/gateway-api):

GatewayClass
    ``Accepted`` True (reason ``Accepted``) for our controllerName.
Gateway (of an accepted class of ours)
    Per listener: ``Accepted``, ``ResolvedRefs`` (TLS ``certificateRefs``: a
    Secret of type ``kubernetes.io/tls`` with a parseable ``tls.crt`` and a
    ``tls.key``, in the Gateway's namespace or allowed by a ReferenceGrant;
    else False ``InvalidCertificateRef`` / ``RefNotPermitted``), ``Conflicted``
    (two listeners on one port with different protocols: ``ProtocolConflict``)
    and ``Programmed``; ``supportedKinds``; ``attachedRoutes`` = the routes
    Accepted on that listener. The Gateway: ``Accepted`` True (``Accepted``, or
    ``ListenersNotValid`` when some listener is not), ``Programmed`` True with
    ``status.addresses`` when some listener is programmed (else False
    ``Invalid``).
HTTPRoute, per parentRef to such a Gateway
    ``Accepted``: False ``NoMatchingParent`` (no listener of that sectionName /
    port), ``NotAllowedByListeners`` (allowedRoutes namespaces/kinds),
    ``NoMatchingListenerHostname`` (no hostname intersection),
    ``IncompatibleFilters`` (RequestRedirect with URLRewrite in one rule); else
    True. ``ResolvedRefs``: False ``InvalidKind`` (not a core Service),
    ``RefNotPermitted`` (another namespace without a ReferenceGrant allowing
    it), ``BackendNotFound`` (no such Service, or it lacks the port); else True.

Not a data plane: nothing is proxied. ``address`` (default 127.0.0.1) is what
``status.addresses`` reports, for a rehearsal that serves the URLs itself.
"""
from __future__ import annotations

import base64
from typing import Any, Callable

from . import StandIn, now_rfc3339, raw_request, same_conditions, set_condition

GROUP = "gateway.networking.k8s.io"
CILIUM_CONTROLLER = "io.cilium/gateway-controller"
CILIUM_CLASS = "cilium"
HTTP_KINDS = [{"group": GROUP, "kind": "HTTPRoute"}, {"group": GROUP, "kind": "GRPCRoute"}]


def hostname_matches(listener: str | None, route: str) -> bool:
    """Whether a route hostname and a listener hostname intersect (httproute_types.go Hostnames,
    gateway_types.go Listener.Hostname: "*." is one or more leading labels)."""
    if not listener:
        return True
    if listener == route:
        return True
    if listener.startswith("*.") and not route.startswith("*."):
        return route.endswith(listener[1:]) and len(route) > len(listener) - 1
    if route.startswith("*.") and not listener.startswith("*."):
        return listener.endswith(route[1:]) and len(listener) > len(route) - 1
    if listener.startswith("*.") and route.startswith("*."):
        return route.endswith(listener[1:]) or listener.endswith(route[1:])
    return False


def _cond(ctype: str, status: bool | str, reason: str, message: str, generation: int) -> dict[str, Any]:
    value = status if isinstance(status, str) else ("True" if status else "False")
    return {"type": ctype, "status": value, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": now_rfc3339()}


class GatewayController(StandIn):
    """Gateway API statuses for the GatewayClasses of ``controller_name``."""

    name = "gateway-controller"
    interval = 1.0  # seconds between passes: each pass lists what it watches

    def __init__(self, api_client: Any, *, controller_name: str = CILIUM_CONTROLLER, address: str = "127.0.0.1",
                 install_class: str | None = CILIUM_CLASS) -> None:
        super().__init__(api_client)
        self.controller_name = controller_name
        self.address = address
        # DOKS brings the GatewayClass "cilium"; None leaves classes to the test.
        self.install_class = install_class

    def loops(self) -> list[Callable[[], None]]:
        return [self.reconcile]

    # -- API ---------------------------------------------------------------

    def _get(self, path: str) -> Any:
        return raw_request(self.api_client, "GET", path)

    def _list(self, plural: str, version: str = "v1", group: str = GROUP) -> list[dict[str, Any]]:
        return self._get(f"/apis/{group}/{version}/{plural}").get("items", [])

    def _status(self, obj: dict[str, Any], plural: str, status: dict[str, Any]) -> None:
        meta = obj["metadata"]
        where = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
        raw_request(self.api_client, "PATCH", f"/apis/{GROUP}/v1{where}/{plural}/{meta['name']}/status",
                    {"status": status}, "application/merge-patch+json")

    # -- the loop ----------------------------------------------------------

    def reconcile(self) -> None:
        classes = self._list("gatewayclasses")
        if self.install_class and not any(c["metadata"]["name"] == self.install_class for c in classes):
            raw_request(self.api_client, "POST", f"/apis/{GROUP}/v1/gatewayclasses", {
                "apiVersion": f"{GROUP}/v1", "kind": "GatewayClass", "metadata": {"name": self.install_class},
                "spec": {"controllerName": self.controller_name}})
            self.record(f"made GatewayClass {self.install_class} ({self.controller_name}), as DOKS does")
            classes = self._list("gatewayclasses")
        ours = set()
        for gclass in classes:
            if gclass["spec"].get("controllerName") != self.controller_name:
                continue
            ours.add(gclass["metadata"]["name"])
            generation = gclass["metadata"].get("generation", 1)
            current = (gclass.get("status") or {}).get("conditions") or []
            # gatewayclass_types.go: Accepted True, reason Accepted.
            conditions = set_condition(current, _cond("Accepted", True, "Accepted",
                                                      "Valid GatewayClass", generation))
            if not same_conditions(current, conditions):
                self._status(gclass, "gatewayclasses", {"conditions": conditions})
                self.record(f"GatewayClass {gclass['metadata']['name']} Accepted")

        gateways = [g for g in self._list("gateways") if g["spec"].get("gatewayClassName") in ours]
        routes = self._list("httproutes")
        grants = self._list("referencegrants", "v1beta1")
        namespaces = {n["metadata"]["name"]: n for n in self._get("/api/v1/namespaces").get("items", [])}
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                    for s in self._get("/api/v1/services").get("items", [])}

        attached: dict[tuple[str, str, str], int] = {}
        for route in routes:
            self._reconcile_route(route, gateways, grants, namespaces, services, attached)
        for gateway in gateways:
            self._reconcile_gateway(gateway, grants, attached)

    # -- routes ------------------------------------------------------------

    @staticmethod
    def _granted(grants: list[dict[str, Any]], from_kind: str, from_ns: str, to_group: str, to_kind: str,
                 to_ns: str, to_name: str) -> bool:
        """apis/v1beta1/referencegrant_types.go: a grant in the target namespace whose ``from`` names the
        referrer's group, kind and namespace and whose ``to`` names the target's group, kind (and name, if set)."""
        for grant in grants:
            if grant["metadata"]["namespace"] != to_ns:
                continue
            spec = grant.get("spec") or {}
            if not any(f.get("group") == GROUP and f.get("kind") == from_kind and f.get("namespace") == from_ns
                       for f in spec.get("from") or []):
                continue
            if any(t.get("group", "") == to_group and t.get("kind") == to_kind and t.get("name") in (None, "", to_name)
                   for t in spec.get("to") or []):
                return True
        return False

    @staticmethod
    def _listener_allows(listener: dict[str, Any], gateway: dict[str, Any], route: dict[str, Any],
                         namespaces: dict[str, Any]) -> bool:
        """gateway_types.go AllowedRoutes: namespaces.from Same (default) / All / Selector, and kinds."""
        allowed = listener.get("allowedRoutes") or {}
        kinds = allowed.get("kinds") or HTTP_KINDS
        if not any(k.get("kind") == "HTTPRoute" and k.get("group", GROUP) == GROUP for k in kinds):
            return False
        frm = (allowed.get("namespaces") or {}).get("from", "Same")
        route_ns = route["metadata"]["namespace"]
        if frm == "All":
            return True
        if frm == "Same":
            return route_ns == gateway["metadata"]["namespace"]
        if frm == "Selector":
            selector = (allowed.get("namespaces") or {}).get("selector") or {}
            labels = (namespaces.get(route_ns) or {}).get("metadata", {}).get("labels") or {}
            if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
                return False
            for expr in selector.get("matchExpressions") or []:
                has, value = expr["key"] in labels, labels.get(expr["key"])
                op, values = expr["operator"], expr.get("values") or []
                if (op == "In" and value not in values) or (op == "NotIn" and has and value in values) \
                        or (op == "Exists" and not has) or (op == "DoesNotExist" and has):
                    return False
            return True
        return False

    def _accepted(self, route: dict[str, Any], ref: dict[str, Any], gateway: dict[str, Any],
                  namespaces: dict[str, Any]) -> tuple[bool, str, str, list[str]]:
        """(accepted, reason, message, names of the listeners it attaches to)."""
        listeners = gateway["spec"].get("listeners") or []
        section, port = ref.get("sectionName"), ref.get("port")
        candidates = [lst for lst in listeners
                      if (section is None or lst["name"] == section) and (port is None or lst["port"] == port)]
        if not candidates:
            return False, "NoMatchingParent", (f"no listener named {section!r}" if section else
                                               f"no listener on port {port}"), []
        allowed = [lst for lst in candidates if self._listener_allows(lst, gateway, route, namespaces)]
        if not allowed:
            return False, "NotAllowedByListeners", "the listeners' allowedRoutes do not admit this route", []
        hostnames = route["spec"].get("hostnames") or []
        matching = [lst for lst in allowed
                    if not hostnames or any(hostname_matches(lst.get("hostname"), h) for h in hostnames)]
        if not matching:
            return False, "NoMatchingListenerHostname", "no listener hostname matches the route's hostnames", []
        for i, rule in enumerate(route["spec"].get("rules") or []):
            types = {f.get("type") for f in rule.get("filters") or []}
            # httproute_types.go HTTPRouteFilter: RequestRedirect and URLRewrite cannot be used together.
            if {"RequestRedirect", "URLRewrite"} <= types:
                return False, "IncompatibleFilters", f"rule {i}: RequestRedirect and URLRewrite together", []
        return True, "Accepted", "Accepted HTTPRoute", [lst["name"] for lst in matching]

    def _resolved(self, route: dict[str, Any], grants: list[dict[str, Any]],
                  services: dict[tuple[str, str], Any]) -> tuple[bool, str, str]:
        """httproute_types.go HTTPBackendRef: InvalidKind, RefNotPermitted, BackendNotFound."""
        route_ns = route["metadata"]["namespace"]
        for rule in route["spec"].get("rules") or []:
            refs = list(rule.get("backendRefs") or [])
            for flt in rule.get("filters") or []:
                if flt.get("type") == "RequestMirror":
                    refs.append((flt.get("requestMirror") or {}).get("backendRef") or {})
            for ref in refs:
                group, kind = ref.get("group", ""), ref.get("kind", "Service")
                name, ns = ref.get("name", ""), ref.get("namespace") or route_ns
                if group != "" or kind != "Service":
                    return False, "InvalidKind", f"backendRef {group or 'core'}/{kind} {name} is not supported"
                if ns != route_ns and not self._granted(grants, "HTTPRoute", route_ns, "", "Service", ns, name):
                    return False, "RefNotPermitted", (f"backendRef Service {ns}/{name} is in another namespace and "
                                                      f"no ReferenceGrant in {ns} allows it")
                service = services.get((ns, name))
                if service is None:
                    return False, "BackendNotFound", f"backendRef Service {ns}/{name} not found"
                port = ref.get("port")
                if port is not None and not any(p.get("port") == port for p in service["spec"].get("ports") or []):
                    return False, "BackendNotFound", f"backendRef Service {ns}/{name} has no port {port}"
        return True, "ResolvedRefs", "Resolved all the Object references for the Route"

    def _reconcile_route(self, route: dict[str, Any], gateways: list[dict[str, Any]], grants: list[dict[str, Any]],
                         namespaces: dict[str, Any], services: dict[tuple[str, str], Any],
                         attached: dict[tuple[str, str, str], int]) -> None:
        by_name = {(g["metadata"]["namespace"], g["metadata"]["name"]): g for g in gateways}
        route_ns = route["metadata"]["namespace"]
        generation = route["metadata"].get("generation", 1)
        old_parents = (route.get("status") or {}).get("parents") or []
        parents = [p for p in old_parents if p.get("controllerName") != self.controller_name]
        resolved, r_reason, r_message = self._resolved(route, grants, services)
        summary = []
        for ref in route["spec"].get("parentRefs") or []:
            if ref.get("group", GROUP) != GROUP or ref.get("kind", "Gateway") != "Gateway":
                continue
            gateway = by_name.get((ref.get("namespace") or route_ns, ref["name"]))
            if gateway is None:
                continue  # not a Gateway of ours: its own controller (if any) reports
            accepted, reason, message, listeners = self._accepted(route, ref, gateway, namespaces)
            if accepted:
                for listener in listeners:
                    key = (gateway["metadata"]["namespace"], gateway["metadata"]["name"], listener)
                    attached[key] = attached.get(key, 0) + 1
            old = next((p for p in old_parents if p.get("parentRef") == ref
                        and p.get("controllerName") == self.controller_name), {})
            conditions = set_condition(old.get("conditions") or [], _cond("Accepted", accepted, reason, message,
                                                                          generation))
            conditions = set_condition(conditions, _cond("ResolvedRefs", resolved, r_reason, r_message, generation))
            parents.append({"parentRef": ref, "controllerName": self.controller_name, "conditions": conditions})
            summary.append(f"{ref['name']}/{ref.get('sectionName', '*')}: Accepted={accepted} ({reason}), "
                           f"ResolvedRefs={resolved} ({r_reason})")
        changed = len(parents) != len(old_parents) or any(
            p.get("parentRef") != o.get("parentRef") or not same_conditions(p.get("conditions"), o.get("conditions"))
            for p, o in zip(parents, old_parents))
        if changed:
            self._status(route, "httproutes", {"parents": parents})
            self.record(f"HTTPRoute {route_ns}/{route['metadata']['name']}: " + "; ".join(summary))

    # -- gateways ----------------------------------------------------------

    def _certificate_ok(self, gateway: dict[str, Any], ref: dict[str, Any], grants: list[dict[str, Any]]
                        ) -> tuple[bool, str, str]:
        from kubernetes import client  # pylint: disable=import-outside-toplevel
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        gw_ns = gateway["metadata"]["namespace"]
        group, kind = ref.get("group", ""), ref.get("kind", "Secret")
        ns, name = ref.get("namespace") or gw_ns, ref["name"]
        if group != "" or kind != "Secret":
            return False, "InvalidCertificateRef", f"certificateRef {kind} {name} is not a Secret"
        if ns != gw_ns and not self._granted(grants, "Gateway", gw_ns, "", "Secret", ns, name):
            return False, "RefNotPermitted", f"certificateRef Secret {ns}/{name} is not allowed by a ReferenceGrant"
        try:
            secret = client.CoreV1Api(self.api_client).read_namespaced_secret(name, ns)
        except ApiException as exc:
            if exc.status == 404:
                return False, "InvalidCertificateRef", f"certificateRef Secret {ns}/{name} not found"
            raise
        data = secret.data or {}
        if secret.type != "kubernetes.io/tls" or not data.get("tls.crt") or not data.get("tls.key"):
            return False, "InvalidCertificateRef", f"Secret {ns}/{name} is not a kubernetes.io/tls Secret with data"
        try:
            from cryptography import x509  # pylint: disable=import-outside-toplevel

            x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        except ValueError:
            return False, "InvalidCertificateRef", f"Secret {ns}/{name} holds no valid certificate"
        return True, "ResolvedRefs", "Resolved all the Object references"

    def _reconcile_gateway(self, gateway: dict[str, Any], grants: list[dict[str, Any]],
                           attached: dict[tuple[str, str, str], int]) -> None:
        meta = gateway["metadata"]
        generation = meta.get("generation", 1)
        status = gateway.get("status") or {}
        old_listeners = {lst["name"]: lst for lst in status.get("listeners") or []}
        listeners_spec = gateway["spec"].get("listeners") or []
        protocols_by_port: dict[int, set[str]] = {}
        for lst in listeners_spec:
            protocols_by_port.setdefault(lst["port"], set()).add(lst["protocol"])
        listeners = []
        valid = 0
        for lst in listeners_spec:
            old = (old_listeners.get(lst["name"]) or {}).get("conditions") or []
            if lst["protocol"] not in ("HTTP", "HTTPS"):
                accepted = (False, "UnsupportedProtocol", f"protocol {lst['protocol']} is not supported here")
            else:
                accepted = (True, "Accepted", "Listener is accepted")
            conflicted = len(protocols_by_port[lst["port"]]) > 1
            refs_ok, refs_reason, refs_message = True, "ResolvedRefs", "Resolved all the Object references"
            if lst["protocol"] == "HTTPS":
                for ref in (lst.get("tls") or {}).get("certificateRefs") or []:
                    refs_ok, refs_reason, refs_message = self._certificate_ok(gateway, ref, grants)
                    if not refs_ok:
                        break
            programmed = accepted[0] and refs_ok and not conflicted
            valid += programmed
            conditions = set_condition(old, _cond("Accepted", accepted[0], accepted[1], accepted[2], generation))
            conditions = set_condition(conditions, _cond(
                "Conflicted", conflicted, "ProtocolConflict" if conflicted else "NoConflicts",
                "another listener on this port has another protocol" if conflicted else "No conflicts", generation))
            conditions = set_condition(conditions, _cond("ResolvedRefs", refs_ok, refs_reason, refs_message,
                                                         generation))
            conditions = set_condition(conditions, _cond("Programmed", programmed,
                                                         "Programmed" if programmed else "Invalid",
                                                         "Listener is programmed" if programmed else
                                                         "Listener is not valid", generation))
            listeners.append({"name": lst["name"], "supportedKinds": HTTP_KINDS,
                              "attachedRoutes": attached.get((meta["namespace"], meta["name"], lst["name"]), 0),
                              "conditions": conditions})
        old = status.get("conditions") or []
        all_valid = valid == len(listeners_spec)
        conditions = set_condition(old, _cond("Accepted", True, "Accepted" if all_valid else "ListenersNotValid",
                                              "Gateway accepted" if all_valid else "some listeners are not valid",
                                              generation))
        conditions = set_condition(conditions, _cond("Programmed", valid > 0, "Programmed" if valid else "Invalid",
                                                     f"Gateway programmed at {self.address}" if valid else
                                                     "no listener can be programmed", generation))
        addresses = [{"type": "IPAddress", "value": self.address}] if valid else []
        old_by_name = {lst["name"]: lst for lst in status.get("listeners") or []}
        changed = (not same_conditions(old, conditions) or status.get("addresses", []) != addresses
                   or len(old_by_name) != len(listeners)
                   or any(lst["attachedRoutes"] != (old_by_name.get(lst["name"]) or {}).get("attachedRoutes")
                          or not same_conditions(lst["conditions"], (old_by_name.get(lst["name"]) or {}).get("conditions"))
                          for lst in listeners))
        if changed:
            self._status(gateway, "gateways", {"conditions": conditions, "listeners": listeners,
                                               "addresses": addresses})
            self.record(f"Gateway {meta['namespace']}/{meta['name']}: Programmed={valid > 0}; "
                        + ", ".join(f"{lst['name']}: attachedRoutes={lst['attachedRoutes']} "
                                    + next(f"ResolvedRefs={c['status']} ({c['reason']})" for c in lst["conditions"]
                                           if c["type"] == "ResolvedRefs") for lst in listeners))


# --------------------------------------------------------------------------
# A data plane: what the Gateway's load balancer would answer


def _path_match(match: dict[str, Any], path: str) -> int:
    """Length of the match (-1 for none), per httproute_types.go HTTPPathMatch: PathPrefix matches
    whole path elements; Exact the whole path. Longer (and Exact) matches win (HTTPRouteRule precedence)."""
    spec = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = spec.get("type", "PathPrefix"), spec.get("value", "/")
    if kind == "Exact":
        return 10_000 + len(value) if path == value else -1
    if kind == "PathPrefix":
        prefix = value.rstrip("/")
        if prefix == "" or path == prefix or path.startswith(prefix + "/"):
            return len(prefix)
    return -1


class GatewayDataPlane(StandIn):
    """Serves a Gateway's listeners at ``address`` the way its HTTPRoutes say.

    Follows only what the controller stand-in accepted (route parents Accepted
    by ``controller_name``). Per request: the listener of the port, the Host
    header against listener and route hostnames, the longest path match, then
    a ``RequestRedirect`` filter (``httproute_types.go`` HTTPRequestRedirectFilter:
    status 302 unless set; the port from the scheme, left out for 80/443) or
    the backendRef: 500 when the route's refs do not resolve (HTTPRouteRule
    BackendRefs: "500 status codes MUST be returned"), 503 when no local
    backend stands for the Service (no ready endpoints: "SHOULD return a 503"),
    else the request is forwarded to ``backends[(namespace, service, port)]``
    (a base URL on this machine). HTTPS listeners serve the certificate of
    their ``certificateRefs`` Secret. 404 when no route matches.
    """

    name = "gateway-data-plane"
    interval = 1.0  # seconds between passes: each pass lists what it watches

    def __init__(self, api_client: Any, *, namespace: str = "gtc-demo", gateway: str = "gtc-demo",
                 address: str = "127.0.0.1", backends: dict[tuple[str, str, int], str] | None = None,
                 controller_name: str = CILIUM_CONTROLLER, ports: dict[int, int] | None = None) -> None:
        super().__init__(api_client)
        self.namespace, self.gateway = namespace, gateway
        self.address = address
        self.backends = dict(backends or {})
        self.controller_name = controller_name
        self.ports = dict(ports or {})  # listener port -> local port (default the same)
        self.routes: list[dict[str, Any]] = []
        self.listeners: dict[int, dict[str, Any]] = {}
        self._servers: dict[int, Any] = {}
        self._signature: Any = None
        self._tmp: Any = None

    def loops(self) -> list[Callable[[], None]]:
        return [self.sync]

    def close(self) -> None:
        for server, thread in self._servers.values():
            server.shutdown()
            server.server_close()
            thread.join(5)
        self._servers = {}
        self._signature = None

    def sync(self) -> None:
        import hashlib  # pylint: disable=import-outside-toplevel
        import json  # pylint: disable=import-outside-toplevel

        from kubernetes import client  # pylint: disable=import-outside-toplevel
        from kubernetes.client.exceptions import ApiException  # pylint: disable=import-outside-toplevel

        try:
            gateway = raw_request(self.api_client, "GET",
                                  f"/apis/{GROUP}/v1/namespaces/{self.namespace}/gateways/{self.gateway}")
        except ApiException as exc:
            if exc.status == 404:
                self.close()
                return
            raise
        routes = raw_request(self.api_client, "GET", f"/apis/{GROUP}/v1/httproutes").get("items", [])
        self.routes = routes
        listeners = {lst["port"]: lst for lst in gateway["spec"].get("listeners") or []}
        certs: dict[int, tuple[bytes, bytes]] = {}
        core = client.CoreV1Api(self.api_client)
        for port, lst in listeners.items():
            if lst["protocol"] != "HTTPS":
                continue
            ref = ((lst.get("tls") or {}).get("certificateRefs") or [{}])[0]
            try:
                secret = core.read_namespaced_secret(ref.get("name", ""), ref.get("namespace") or self.namespace)
                certs[port] = (base64.b64decode(secret.data["tls.crt"]), base64.b64decode(secret.data["tls.key"]))
            except (ApiException, KeyError, TypeError):
                continue  # not servable yet (the certificate is being issued)
        signature = hashlib.sha256(json.dumps([sorted(listeners.items()), sorted(
            (p, c[0].decode(), c[1].decode()) for p, c in certs.items())], sort_keys=True, default=str).encode()).hexdigest()
        self.listeners = listeners
        if signature == self._signature:
            return
        self.close()
        for port, lst in listeners.items():
            if lst["protocol"] == "HTTPS" and port not in certs:
                continue
            self._serve(port, lst, certs.get(port))
        self._signature = signature

    def _serve(self, port: int, listener: dict[str, Any], cert: tuple[bytes, bytes] | None) -> None:
        import http.server  # pylint: disable=import-outside-toplevel
        import ssl  # pylint: disable=import-outside-toplevel
        import tempfile  # pylint: disable=import-outside-toplevel
        import threading  # pylint: disable=import-outside-toplevel
        from pathlib import Path  # pylint: disable=import-outside-toplevel

        plane = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                status, headers, body = plane.answer(listener, self.command, self.path, dict(self.headers.items()),
                                                     self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
                return

        server = http.server.ThreadingHTTPServer((self.address, self.ports.get(port, port)), Handler)
        server.daemon_threads = True
        if cert is not None:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "tls.crt").write_bytes(cert[0])
                (Path(tmp) / "tls.key").write_bytes(cert[1])
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
            server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                  name=f"{self.name}:{port}")
        thread.start()
        self._servers[port] = (server, thread)
        self.record(f"serving listener {listener['name']} ({listener['protocol']}) on "
                    f"{self.address}:{self.ports.get(port, port)}")

    def _attached(self, route: dict[str, Any], listener: dict[str, Any]) -> dict[str, Any] | None:
        for parent in (route.get("status") or {}).get("parents") or []:
            ref = parent.get("parentRef") or {}
            if (parent.get("controllerName") == self.controller_name and ref.get("name") == self.gateway
                    and (ref.get("namespace") or route["metadata"]["namespace"]) == self.namespace
                    and ref.get("sectionName") in (None, listener["name"])
                    and any(c["type"] == "Accepted" and c["status"] == "True" for c in parent.get("conditions") or [])):
                return parent
        return None

    def answer(self, listener: dict[str, Any], method: str, target: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request to ``listener``."""
        import urllib.error  # pylint: disable=import-outside-toplevel
        import urllib.request  # pylint: disable=import-outside-toplevel

        host = (headers.get("Host") or "").split(":")[0]
        path, _mark, query = target.partition("?")
        if not hostname_matches(listener.get("hostname"), host):
            return 404, {}, b"no listener for this host\n"
        best: tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]] | None = None
        for route in self.routes:
            parent = self._attached(route, listener)
            if parent is None:
                continue
            hostnames = route["spec"].get("hostnames") or []
            if hostnames and not any(hostname_matches(h, host) for h in hostnames):
                continue
            for rule in route["spec"].get("rules") or []:
                for match in rule.get("matches") or [{}]:
                    if match.get("method") and match["method"] != method:
                        continue
                    if any(headers.get(h["name"]) != h["value"] for h in match.get("headers") or []):
                        continue
                    score = _path_match(match, path)
                    if score >= 0 and (best is None or score > best[0]):
                        best = (score, route, rule, parent)
        if best is None:
            return 404, {}, b"no route\n"
        _score, route, rule, parent = best
        for flt in rule.get("filters") or []:
            if flt.get("type") == "RequestRedirect":
                redirect = flt.get("requestRedirect") or {}
                scheme = redirect.get("scheme") or ("https" if listener["protocol"] == "HTTPS" else "http")
                port = redirect.get("port") or ({"http": 80, "https": 443}.get(redirect["scheme"])
                                                if redirect.get("scheme") else listener["port"])
                netloc = redirect.get("hostname") or host
                if not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
                    netloc = f"{netloc}:{port}"
                modifier = redirect.get("path") or {}
                new_path = path
                if modifier.get("type") == "ReplaceFullPath":
                    new_path = modifier.get("replaceFullPath", "/")
                location = f"{scheme}://{netloc}{new_path}" + (f"?{query}" if query else "")
                return int(redirect.get("statusCode") or 302), {"Location": location}, b""
        if any(c["type"] == "ResolvedRefs" and c["status"] != "True" for c in parent.get("conditions") or []):
            return 500, {}, b"invalid backend\n"
        refs = rule.get("backendRefs") or []
        if not refs:
            return 500, {}, b"no backend\n"
        ref = refs[0]
        key = (ref.get("namespace") or route["metadata"]["namespace"], ref["name"], int(ref.get("port") or 0))
        base = self.backends.get(key)
        if base is None:
            return 503, {}, f"no ready endpoint for {key[0]}/{key[1]}:{key[2]}\n".encode()
        request = urllib.request.Request(base.rstrip("/") + target, data=body or None, method=method,
                                         headers={k: v for k, v in headers.items()
                                                  if k.lower() not in ("content-length", "connection")})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (a loopback backend)
                return response.status, {k: v for k, v in response.headers.items()
                                         if k.lower() not in ("content-length", "transfer-encoding", "connection")}, \
                    response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, {}, exc.read()
        except OSError as exc:
            return 503, {}, f"backend {base}: {exc}\n".encode()
