# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The engine behind the collection's DigitalOcean modules.

Modules stay thin: they declare options and call into this file for the
client set-up (pydo, with azure-core's retry policy), error messages, waiting
and the comparison of what is wanted with what exists.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time
import traceback

from ansible.module_utils.basic import AnsibleFallbackNotFound, AnsibleModule, missing_required_lib

PYDO_IMPORT_ERROR = None
try:
    import pydo
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
    from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy
    from azure.core.rest import HttpRequest
except ImportError:  # pragma: no cover - reported by require_pydo()
    pydo = None  # type: ignore[assignment]
    PYDO_IMPORT_ERROR = traceback.format_exc()

    class SansIOHTTPPolicy:  # type: ignore[no-redef]
        """Stand-in so the class below can be defined without azure-core."""

    class RetryPolicy:  # type: ignore[no-redef]
        """Stand-in so the class below can be defined without azure-core."""

    class HttpResponseError(Exception):  # type: ignore[no-redef]
        """Stand-in: never raised when pydo is missing."""

    class ServiceRequestError(Exception):  # type: ignore[no-redef]
        """Stand-in: never raised when pydo is missing."""

    class ServiceResponseError(Exception):  # type: ignore[no-redef]
        """Stand-in: never raised when pydo is missing."""


DEFAULT_ENDPOINT = "https://api.digitalocean.com"
# The one rule for the API token, everywhere in the collection (modules, the
# infra and cluster_config roles, playbooks/images.yml): DIGITALOCEAN_ACCESS_TOKEN
# (doctl's name), else DIGITALOCEAN_TOKEN (Terraform's); the first one that is
# set and not empty wins. No other name is read.
TOKEN_ENV = ["DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN"]
# Never sleep longer than this between two attempts, whatever Retry-After says.
MAX_RETRY_SLEEP = 60.0
# azure-core's exponential backoff: no wait before the first retry, then factor * 2 ** (n - 1) seconds
# (RetryPolicyBase.get_backoff_time in azure/core/pipeline/policies/_retry.py): 0, 2, 4, 8, 16 s.
RETRY_BACKOFF_FACTOR = 1.0


def token_fallback(*names):
    """The first of ``names`` set to a non-empty value in the environment.

    Ansible's env_fallback takes the first name that is present, even when it
    is empty, so an exported but empty DIGITALOCEAN_ACCESS_TOKEN would hide
    DIGITALOCEAN_TOKEN; the roles' rule skips empty ones, and so does this.
    """
    for name in names or TOKEN_ENV:
        value = os.environ.get(name)
        if value:
            return value
    raise AnsibleFallbackNotFound


# Options every module shares; documented by the doc fragment
# do_solutions.gtc_demo.digitalocean.
AUTH_ARGSPEC = dict(
    token=dict(type="str", no_log=True, fallback=(token_fallback, TOKEN_ENV)),
    api_endpoint=dict(type="str", default=DEFAULT_ENDPOINT),
    api_retries=dict(type="int", default=5),
)
# Options of the modules that wait; documented by do_solutions.gtc_demo.digitalocean.wait.
WAIT_ARGSPEC = dict(
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=1800),
    poll_interval=dict(type="float", default=10.0),
)


class DOError(Exception):
    """A failure with a message meant for the person running the playbook."""

    def __init__(self, message, status=None, body=None):
        super(DOError, self).__init__(message)
        self.message = message
        self.status = status
        self.body = body


def error_message(status, body, what):
    """Turn an API error into a sentence that says what was wrong."""
    detail = ""
    if isinstance(body, dict):
        detail = body.get("message") or body.get("title") or body.get("id") or ""
        # Validators in front of the API (the tests' Prism) list what broke the contract.
        problems = [str(v.get("message")) for v in body.get("validation") or [] if isinstance(v, dict)]
        if problems:
            detail = "{0}: {1}".format(detail, "; ".join(problems))
    detail = " ({0})".format(detail) if detail else ""
    if status == 401:
        return (
            "DigitalOcean rejected the API token while trying to {0}: 401 unauthorized{1}. "
            "Set a valid token in DIGITALOCEAN_ACCESS_TOKEN (read first) or DIGITALOCEAN_TOKEN.".format(what, detail)
        )
    if status == 403:
        return (
            "DigitalOcean refused to {0}: 403 forbidden{1}. The token is valid but lacks "
            "the scope for this action (it needs write access to VPCs, Kubernetes and NFS).".format(what, detail)
        )
    if status == 422:
        return "DigitalOcean could not {0}: 422 unprocessable entity{1}. Check the module's options.".format(what, detail)
    if status == 404:
        return "DigitalOcean could not {0}: 404 not found{1}.".format(what, detail)
    if status == 429:
        return "DigitalOcean kept rate-limiting the request to {0} (429){1}; gave up after the retries.".format(what, detail)
    if status is not None and status >= 500:
        return "DigitalOcean failed to {0}: HTTP {1}{2}; gave up after the retries.".format(what, status, detail)
    return "DigitalOcean could not {0}: HTTP {1}{2}.".format(what, status, detail)


class BearerTokenPolicy(SansIOHTTPPolicy):
    """Adds the bearer token to each request.

    pydo's default authentication policy refuses plain HTTP unless every call
    passes enforce_https=False; the tests talk to a local fake over HTTP, so
    the collection sets the header itself, for HTTPS and HTTP alike.
    """

    def __init__(self, token):
        super(BearerTokenPolicy, self).__init__()
        self._token = token

    def on_request(self, request):
        request.http_request.headers["Authorization"] = "Bearer {0}".format(self._token)


class _Waits:
    """Takes the place of the transport in RetryPolicy.sleep: notes the wait azure-core chose instead of sleeping."""

    def __init__(self):
        self.seconds = 0.0

    def sleep(self, seconds):
        self.seconds += seconds


class DORetryPolicy(RetryPolicy):
    """azure-core's RetryPolicy, which pydo's client runs, set for the DigitalOcean API.

    What azure-core decides (azure/core/pipeline/policies/_retry.py, azure-core 1.41.0):
    a response with Retry-After is retried after that many seconds, whatever the method;
    otherwise 408, 429, 500, 502, 503, 504 (and 506 and up) are retried for GET, PUT,
    DELETE and HEAD, but a POST or PATCH only on 500, 503 or 504; a failed connection or
    read is retried for GET, PUT, DELETE and HEAD only; between tries, exponential backoff.
    Three things are ours: a 429 is retried for every method (the rate limiter refused
    the request, so repeating a create cannot make a second one; DigitalOcean's
    hourly-limit 429 comes without Retry-After: DigitalOcean-public.v2 "Rate Limit"), a
    Retry-After longer than MAX_RETRY_SLEEP is cut to it, and each retry is reported
    through ``on_retry(status, seconds)`` (status None for a failed connection) and slept
    through ``sleep``, which the tests replace.
    """

    def __init__(self, retries, on_retry, sleep=time.sleep):
        retries = max(0, int(retries))
        super(DORetryPolicy, self).__init__(
            retry_total=retries, retry_connect=retries, retry_read=retries, retry_status=retries,
            retry_backoff_factor=RETRY_BACKOFF_FACTOR, retry_backoff_max=MAX_RETRY_SLEEP)
        self._on_retry = on_retry
        self._sleep = sleep

    def is_retry(self, settings, response):
        if response.http_response.status_code == 429 and settings["total"] > 0:
            return True
        return super(DORetryPolicy, self).is_retry(settings, response)

    def get_retry_after(self, response):
        seconds = super(DORetryPolicy, self).get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_SLEEP)

    def sleep(self, settings, transport, response=None):
        waits = _Waits()
        super(DORetryPolicy, self).sleep(settings, waits, response)
        self._on_retry(response.http_response.status_code if response is not None else None, waits.seconds)
        self._sleep(waits.seconds)


def _capture(pipeline_response, deserialized, headers):
    """pydo ``cls`` hook: keep the status code and body pydo would otherwise hide (404s, YAML)."""
    response = pipeline_response.http_response
    if deserialized is None:
        try:
            text = response.text()
        except Exception:  # pylint: disable=broad-except
            text = None
        return response.status_code, text
    return response.status_code, deserialized


def _error_body(response):
    if response is None:
        return None
    try:
        return response.json()
    except Exception:  # pylint: disable=broad-except
        return None


class DOClient:
    """pydo with azure-core's retries (DORetryPolicy), clear errors and a uniform (status, body) result."""

    def __init__(self, token, endpoint=DEFAULT_ENDPOINT, retries=5, sleep=time.sleep,
                 clock=time.monotonic, client=None, warn=None):
        self.retries = max(0, int(retries))
        self.sleep = sleep
        self.clock = clock
        self.warn = warn or (lambda msg: None)
        # Counts what happened, for the modules' results and the tests.
        self.attempts = 0
        self.retried = 0
        self._what = ""
        self._retry_of_call = 0
        if client is not None:
            self.client = client
        else:
            self.client = pydo.Client(
                token=token,
                endpoint=endpoint.rstrip("/"),
                authentication_policy=BearerTokenPolicy(token),
                retry_policy=DORetryPolicy(self.retries, self._retrying, sleep=sleep),
                # A hung connection fails (and is retried) instead of blocking for azure-core's 300 s.
                connection_timeout=15,
                read_timeout=120,
            )

    def _retrying(self, status, seconds):
        """DORetryPolicy's report of one retry: count it and say so."""
        self._retry_of_call += 1
        self.attempts += 1
        self.retried += 1
        answer = "answered {0}".format(status) if status is not None else "did not answer"
        self.warn("DigitalOcean {0} while trying to {1}; retry {2}/{3} in {4:.1f}s".format(
            answer, self._what, self._retry_of_call, self.retries, seconds))

    def call(self, what, operation, *args, **kwargs):
        """Run one pydo operation; returns (status, body).

        ``what`` finishes the sentence "while trying to ..." in error
        messages. 404 is returned, not raised: callers decide what absent means.
        Retries happen inside pydo's pipeline (DORetryPolicy); what reaches here
        is the last answer: 401/403/422 at once, 429 and 5xx once the retries are spent.
        """
        self._what = what
        self._retry_of_call = 0
        self.attempts += 1
        try:
            status, body = operation(*args, cls=_capture, **kwargs)
        except HttpResponseError as exc:
            status = exc.status_code
            body = _error_body(exc.response)
            if status == 404:
                return 404, body
            raise DOError(error_message(status, body, what), status=status, body=body) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise DOError("Could not reach the DigitalOcean API while trying to {0}: {1}".format(what, exc)) from exc
        if status is not None and status >= 400 and status != 404:
            raise DOError(error_message(status, body, what), status=status, body=body)
        return status, body

    def get_text(self, what, path, **params):
        """GET a non-JSON document (the kubeconfig is YAML, which pydo's decoder refuses)."""
        def fetch(cls=None):
            request = HttpRequest("GET", path, params=params)
            response = self.client.send_request(request, stream=True)
            response.read()
            if response.status_code >= 400:
                raise HttpResponseError(response=response)
            return response.status_code, response.text()
        return self.call(what, fetch)

    def list_all(self, what, operation, key, **kwargs):
        """Follow ``page`` until the API has no next page; returns the items under ``key``."""
        items = []
        page = 1
        while True:
            status, body = self.call(what, operation, per_page=200, page=page, **kwargs)
            if status == 404 or not isinstance(body, dict):
                return items
            items.extend(body.get(key) or [])
            pages = (body.get("links") or {}).get("pages") or {}
            if not pages.get("next") or page >= 1000:
                return items
            page += 1

    def wait_for(self, what, fetch, done, timeout, interval):
        """Poll ``fetch()`` until ``done(result)`` is true; monotonic clock, fails with the last thing seen."""
        deadline = self.clock() + timeout
        while True:
            current = fetch()
            if done(current):
                return current
            if self.clock() >= deadline:
                raise DOError("Timed out after {0}s waiting for {1}; last seen: {2}".format(
                    timeout, what, describe(current)))
            self.sleep(max(0.0, min(interval, deadline - self.clock())))


def describe(resource):
    """A short account of a resource's state for timeout messages."""
    if resource is None:
        return "not found"
    if not isinstance(resource, dict):
        return str(resource)
    status = resource.get("status")
    if isinstance(status, dict):
        status = status.get("state")
    nodes = resource.get("nodes")
    if isinstance(nodes, list):
        states = [((n.get("status") or {}).get("state")) for n in nodes]
        return "status={0} nodes={1}".format(status, states)
    return "status={0}".format(status)


# --- comparison -------------------------------------------------------------

def system_tag(tag):
    """Tags DigitalOcean adds itself (k8s, k8s:<id>, k8s:worker) are not ours to manage."""
    return tag == "k8s" or tag.startswith("k8s:")


def norm_tags(tags):
    return sorted(set(t for t in (tags or []) if not system_tag(t)))


def norm_labels(labels):
    return dict((str(k), str(v)) for k, v in (labels or {}).items())


def norm_taints(taints):
    out = []
    for t in taints or []:
        out.append(dict(key=str(t.get("key")), value=str(t.get("value") or ""), effect=str(t.get("effect"))))
    return sorted(out, key=lambda t: (t["key"], t["value"], t["effect"]))


def norm_time(value):
    """'4:00' and '04:00' are the same maintenance start time."""
    if value is None:
        return None
    parts = str(value).split(":")
    try:
        return "{0:02d}:{1:02d}".format(int(parts[0]), int(parts[1]) if len(parts) > 1 else 0)
    except ValueError:
        return str(value)


def diff_fields(desired, actual):
    """Fields whose desired value differs from the actual one.

    ``desired`` holds only the fields the user manages (None = leave as is),
    both sides already normalised. Returns {field: (actual, desired)}.
    """
    changes = {}
    for key, want in desired.items():
        if want is None:
            continue
        have = actual.get(key)
        if have != want:
            changes[key] = (have, want)
    return changes


def make_diff(before, after):
    """Ansible's diff mode dict; before/after are plain dicts (never secrets)."""
    return dict(before=before or {}, after=after or {})


# --- module plumbing --------------------------------------------------------

def argument_spec(spec, wait=False):
    """The module's own options plus the shared auth (and wait) ones."""
    merged = dict(AUTH_ARGSPEC)
    if wait:
        merged.update(WAIT_ARGSPEC)
    merged.update(spec)
    return merged


def require_pydo(module):
    if pydo is None:
        module.fail_json(msg=missing_required_lib("pydo"), exception=PYDO_IMPORT_ERROR)


def token_missing_message():
    """Why there is no token, naming the variables to set (never a value)."""
    return ("No DigitalOcean API token: set DIGITALOCEAN_ACCESS_TOKEN (or DIGITALOCEAN_TOKEN) in the "
            "environment, or pass the token option.")


def client_for(module):
    """A DOClient for the module's options; fails clearly without a token."""
    require_pydo(module)
    token = module.params.get("token")
    if not token:
        module.fail_json(msg=token_missing_message())
    return DOClient(token, endpoint=module.params["api_endpoint"], retries=module.params["api_retries"],
                    warn=module.warn)


def new_module(spec, wait=False, **kwargs):
    kwargs.setdefault("supports_check_mode", True)
    return AnsibleModule(argument_spec=argument_spec(spec, wait=wait), **kwargs)


def run(module, logic):
    """Run ``logic(module, client)`` and turn DOError into a clean failure."""
    client = client_for(module)
    try:
        result = logic(module, client)
    except DOError as exc:
        module.fail_json(msg=exc.message, status=exc.status, api_attempts=client.attempts,
                         api_retries_used=client.retried)
    result.setdefault("api_attempts", client.attempts)
    result.setdefault("api_retries_used", client.retried)
    module.exit_json(**result)


# --- finders shared by the resource and info modules ------------------------

def find_vpc(client, name):
    vpcs = client.list_all("list VPCs", client.client.vpcs.list, "vpcs")
    for vpc in vpcs:
        if vpc.get("name") == name:
            return vpc
    return None


def find_cluster(client, name):
    clusters = client.list_all("list Kubernetes clusters", client.client.kubernetes.list_clusters,
                               "kubernetes_clusters")
    for cluster in clusters:
        if cluster.get("name") == name:
            return cluster
    return None


def get_cluster(client, cluster_id):
    status, body = client.call("read Kubernetes cluster {0}".format(cluster_id),
                               client.client.kubernetes.get_cluster, cluster_id)
    if status == 404:
        return None
    return body.get("kubernetes_cluster")


def list_node_pools(client, cluster_id):
    status, body = client.call("list the node pools of cluster {0}".format(cluster_id),
                               client.client.kubernetes.list_node_pools, cluster_id)
    if status == 404:
        raise DOError("Kubernetes cluster {0} does not exist.".format(cluster_id), status=404)
    return body.get("node_pools") or []


def find_nfs(client, name, region):
    status, body = client.call("list NFS shares in {0}".format(region), client.client.nfs.list, region=region)
    if status == 404:
        return None
    for share in body.get("shares") or []:
        if share.get("name") == name and share.get("status") != "DELETED":
            return share
    return None


def get_nfs(client, share_id, region):
    status, body = client.call("read NFS share {0}".format(share_id), client.client.nfs.get, share_id,
                               region=region)
    if status == 404:
        return None
    share = body.get("share")
    if share and share.get("status") == "DELETED":
        return None
    return share


REGISTRY_HOST = "registry.digitalocean.com"


def parse_registry_repository(reference):
    """(registry name, repository name) of ``registry.digitalocean.com/<registry>/<repository>``.

    The host may be left out; a tag or digest is refused (the caller names the tag apart).
    """
    ref = (reference or "").strip().strip("/")
    parts = ref.split("/")
    if "." in parts[0] or ":" in parts[0]:
        host = parts.pop(0)
        if host != REGISTRY_HOST:
            raise ValueError("{0} is not in the DigitalOcean Container Registry ({1})".format(reference, REGISTRY_HOST))
    if len(parts) < 2 or not all(parts):
        raise ValueError("{0} is not <registry>/<repository>".format(reference))
    if "@" in parts[-1] or ":" in parts[-1]:
        raise ValueError("{0} carries a tag or digest; give the repository and the tag apart".format(reference))
    return parts[0], "/".join(parts[1:])
