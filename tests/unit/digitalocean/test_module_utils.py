"""module_utils/digitalocean.py: error mapping, the retry policy (Retry-After, backoff, methods), waiting, comparison."""
from __future__ import annotations

import email.utils
import json
import socket
import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils import digitalocean as do
from ansible_collections.do_solutions.gtc_demo.plugins.modules import do_kubernetes_node_pool as np_mod
from ansible_collections.do_solutions.gtc_demo.plugins.modules import do_kubernetes_cluster as cl_mod
from fake_do.server import FakeServer


class StubResponse:
    """Just enough of an azure-core HTTP response for HttpResponseError."""

    def __init__(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        self.status_code = status
        self.reason = "stub"
        self.headers = headers or {}
        self._body = json.dumps(body or {"id": "x", "message": "stub"})

    def text(self, encoding: str | None = None) -> str:
        return self._body

    def json(self) -> Any:
        return json.loads(self._body)


def failing(*statuses: int, then: tuple[int, Any] = (200, {"ok": True})):
    """An operation that fails with the given statuses in turn, then succeeds; counts its calls."""
    calls = []

    def operation(*args: Any, cls: Any = None, **kwargs: Any) -> tuple[int, Any]:
        calls.append(kwargs)
        if len(calls) <= len(statuses):
            status = statuses[len(calls) - 1]
            raise HttpResponseError(response=StubResponse(status, {"id": "e", "message": f"m{status}"}))
        return then

    operation.calls = calls  # type: ignore[attr-defined]
    return operation


def client(retries: int = 5) -> do.DOClient:
    """A DOClient around a stub operation: call()'s error mapping without HTTP."""
    return do.DOClient("t", retries=retries, client=object())


# --- error mapping -----------------------------------------------------------

@pytest.mark.parametrize("status, words", [
    (401, ["401 unauthorized", "DIGITALOCEAN_ACCESS_TOKEN", "create VPC demo"]),
    (403, ["403 forbidden", "scope", "create VPC demo"]),
    (422, ["422 unprocessable entity", "(bad region)", "create VPC demo"]),
    (404, ["404 not found"]),
    (429, ["429", "gave up"]),
    (503, ["HTTP 503", "gave up"]),
])
def test_error_message_names_status_and_action(status: int, words: list[str]) -> None:
    msg = do.error_message(status, {"id": "x", "message": "bad region"}, "create VPC demo")
    for word in words:
        assert word in msg


def test_call_maps_an_api_error_to_a_sentence_with_the_apis_reason() -> None:
    for status in (401, 403, 422, 500):
        c = client()
        op = failing(status)
        with pytest.raises(do.DOError) as err:
            c.call("create VPC demo", op)
        assert err.value.status == status and f"m{status}" in err.value.message
        assert len(op.calls) == 1 and c.attempts == 1 and c.retried == 0


def test_404_is_returned_not_raised() -> None:
    assert client().call("read cluster", failing(404))[0] == 404


# --- retries: azure-core's RetryPolicy inside pydo's pipeline, against the fake over HTTP ----------

@pytest.fixture(scope="module")
def fake_server_once():
    server = FakeServer("unit-token").start()
    yield server
    server.stop()


@pytest.fixture
def fake_server(fake_server_once):
    """The module's one fake, emptied (state, faults, log) for each test."""
    fake_server_once.fake.reset()
    return fake_server_once


class Retrying:
    """A DOClient on the fake whose retry sleeps and warnings are recorded instead of slept and shown."""

    def __init__(self, server: FakeServer, retries: int = 5, endpoint: str | None = None) -> None:
        self.server = server
        self.sleeps: list[float] = []
        self.warnings: list[str] = []
        self.client = do.DOClient("unit-token", endpoint=endpoint or server.url, retries=retries,
                                  sleep=self.sleeps.append, warn=self.warnings.append)

    def faults(self, *faults: dict[str, Any]) -> None:
        self.server.fake.faults = [dict(f) for f in faults]

    def requests(self, method: str, path: str) -> list[int]:
        return [e["status"] for e in self.server.fake.log if e["method"] == method and e["path"] == path]

    def list_vpcs(self) -> tuple[int, Any]:
        return self.client.call("list VPCs", self.client.client.vpcs.list)

    def create_vpc(self, name: str = "v") -> tuple[int, Any]:
        return self.client.call(f"create VPC {name}", self.client.client.vpcs.create,
                                body={"name": name, "region": "ams3"})


def test_429_honours_retry_after_then_succeeds(fake_server) -> None:
    r = Retrying(fake_server)
    r.faults({"status": 429, "times": 2, "retry_after": 2, "method": "GET"})
    assert r.list_vpcs()[0] == 200
    assert r.requests("GET", "/v2/vpcs") == [429, 429, 200]
    assert r.sleeps == [2.0, 2.0] and r.client.retried == 2 and r.client.attempts == 3
    assert r.warnings == ["DigitalOcean answered 429 while trying to list VPCs; retry 1/5 in 2.0s",
                          "DigitalOcean answered 429 while trying to list VPCs; retry 2/5 in 2.0s"]


def test_retry_after_as_an_http_date_and_capped(fake_server) -> None:
    r = Retrying(fake_server)
    soon = email.utils.formatdate(time.time() + 7, usegmt=True)
    r.faults({"status": 503, "times": 1, "retry_after": soon}, {"status": 429, "times": 1, "retry_after": 900})
    assert r.list_vpcs()[0] == 200
    assert r.sleeps[0] == pytest.approx(7, abs=1.5)
    assert r.sleeps[1] == do.MAX_RETRY_SLEEP  # 900 s asked, 60 s waited


def test_5xx_backs_off_exponentially_then_succeeds(fake_server) -> None:
    r = Retrying(fake_server)
    r.faults({"status": 500, "times": 1}, {"status": 502, "times": 1}, {"status": 503, "times": 1},
             {"status": 504, "times": 1})
    assert r.list_vpcs()[0] == 200
    assert r.requests("GET", "/v2/vpcs") == [500, 502, 503, 504, 200]
    # azure-core: the first retry at once, then backoff factor * 2 ** (n - 1).
    assert r.sleeps == [0.0, 2.0, 4.0, 8.0]


def test_gives_up_after_the_retries_with_a_clear_message(fake_server) -> None:
    r = Retrying(fake_server, retries=2)
    r.faults({"status": 500, "times": 4})
    with pytest.raises(do.DOError) as err:
        r.list_vpcs()
    assert err.value.status == 500 and "HTTP 500" in err.value.message and "gave up" in err.value.message
    assert "list VPCs" in err.value.message
    assert r.requests("GET", "/v2/vpcs") == [500, 500, 500] and len(r.sleeps) == 2
    assert r.client.attempts == 3 and r.client.retried == 2


def test_retries_0_sends_one_request(fake_server) -> None:
    r = Retrying(fake_server, retries=0)
    r.faults({"status": 429, "times": 1, "retry_after": 1}, {"status": 500, "times": 1})
    with pytest.raises(do.DOError, match="429"):
        r.list_vpcs()
    with pytest.raises(do.DOError, match="HTTP 500"):
        r.list_vpcs()
    assert r.requests("GET", "/v2/vpcs") == [429, 500] and r.sleeps == []


@pytest.mark.parametrize("status", [401, 403, 422])
def test_401_403_422_fail_at_once(fake_server, status: int) -> None:
    r = Retrying(fake_server)
    r.faults({"status": status, "times": 3})
    with pytest.raises(do.DOError) as err:
        r.create_vpc()
    assert err.value.status == status
    assert r.requests("POST", "/v2/vpcs") == [status] and r.sleeps == [] and r.client.retried == 0


def test_a_create_is_retried_on_429_and_on_500_503_504_only(fake_server) -> None:
    """POST is not idempotent: azure-core repeats it on 500/503/504 (and on any answer with Retry-After);
    we add 429, which the rate limiter sends before doing anything. A 502 or a dropped connection is not retried."""
    r = Retrying(fake_server)
    r.faults({"status": 429, "times": 1}, {"status": 500, "times": 1}, {"status": 503, "times": 1},
             {"status": 504, "times": 1})
    assert r.create_vpc("a")[0] == 201
    assert r.requests("POST", "/v2/vpcs") == [429, 500, 503, 504, 201]
    assert len(fake_server.fake.vpcs) == 1
    r.faults({"status": 502, "times": 1})
    with pytest.raises(do.DOError, match="HTTP 502"):
        r.create_vpc("b")
    assert r.requests("POST", "/v2/vpcs")[-1] == 502 and len(fake_server.fake.vpcs) == 1


def test_dropped_connections_are_retried_for_reads_not_for_creates() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    warnings: list[str] = []
    c = do.DOClient("t", endpoint=f"http://127.0.0.1:{port}", retries=2, sleep=sleeps.append, warn=warnings.append)
    with pytest.raises(do.DOError, match="Could not reach the DigitalOcean API while trying to list VPCs"):
        c.call("list VPCs", c.client.vpcs.list)
    assert sleeps == [0.0, 2.0] and c.attempts == 3
    assert warnings[0] == "DigitalOcean did not answer while trying to list VPCs; retry 1/2 in 0.0s"
    with pytest.raises(do.DOError, match="Could not reach the DigitalOcean API while trying to create VPC v"):
        c.call("create VPC v", c.client.vpcs.create, body={"name": "v", "region": "ams3"})
    assert sleeps == [0.0, 2.0] and c.attempts == 4


def test_the_kubeconfig_read_is_retried_too(fake_server) -> None:
    r = Retrying(fake_server)
    status, created = r.client.call("create cluster", r.client.client.kubernetes.create_cluster, body={
        "name": "u", "region": "ams3", "version": "1.33.1-do.0",
        "node_pools": [{"name": "p", "size": "s-2vcpu-4gb", "count": 1}]})
    cid = created["kubernetes_cluster"]["id"]
    r.faults({"status": 502, "times": 1, "path": "/kubeconfig$"})
    status, text = r.client.get_text("get kubeconfig", f"/v2/kubernetes/clusters/{cid}/kubeconfig")
    assert status == 200 and text.startswith("apiVersion: v1") and r.sleeps == [0.0]


# --- waiting -----------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_polls_on_a_monotonic_clock_until_done() -> None:
    clock = Clock()
    c = do.DOClient("t", sleep=clock.sleep, clock=clock, client=object())
    states = iter(["provisioning", "provisioning", "running"])
    result = c.wait_for("cluster", lambda: {"status": {"state": next(states)}},
                        lambda r: r["status"]["state"] == "running", timeout=60, interval=5)
    assert result["status"]["state"] == "running" and clock.now == 110.0


def test_wait_for_times_out_saying_what_it_saw() -> None:
    clock = Clock()
    c = do.DOClient("t", sleep=clock.sleep, clock=clock, client=object())
    pool = {"status": None, "nodes": [{"status": {"state": "provisioning"}}]}
    with pytest.raises(do.DOError) as err:
        c.wait_for("node pool gpu", lambda: pool, lambda r: False, timeout=12, interval=5)
    assert "Timed out after 12s waiting for node pool gpu" in err.value.message
    assert "nodes=['provisioning']" in err.value.message
    assert clock.now == pytest.approx(112.0)  # the last sleep is cut to the deadline


# --- comparison --------------------------------------------------------------

def test_diff_fields_ignores_unmanaged_and_reports_pairs() -> None:
    assert do.diff_fields({"count": 2, "labels": None}, {"count": 1, "labels": {"a": "b"}}) == {"count": (1, 2)}
    assert do.diff_fields({"count": 1}, {"count": 1}) == {}


def test_normalisers_ignore_order_system_tags_and_padding() -> None:
    assert do.norm_tags(["b", "k8s", "a", "k8s:123", "k8s:worker", "a"]) == ["a", "b"]
    assert do.norm_labels(None) == {} and do.norm_labels({"n": 1}) == {"n": "1"}
    t1 = [{"key": "b", "value": "", "effect": "NoSchedule"}, {"key": "a", "value": "x", "effect": "NoExecute"}]
    t2 = [{"key": "a", "value": "x", "effect": "NoExecute"}, {"key": "b", "effect": "NoSchedule"}]
    assert do.norm_taints(t1) == do.norm_taints(t2)
    assert do.norm_time("4:00") == do.norm_time("04:00") == "04:00"


def pool(**over: Any) -> dict[str, Any]:
    base = {"name": "gpu", "size": "gpu-h100x8-640gb", "count": 1, "labels": {"gtc-demo/pool": "gpu"},
            "taints": [], "tags": ["gtc-demo", "k8s", "k8s:abc", "k8s:worker"], "auto_scale": False,
            "min_nodes": 0, "max_nodes": 0, "nodes": []}
    base.update(over)
    return base


def params(**over: Any) -> dict[str, Any]:
    base = {"count": 1, "labels": {"gtc-demo/pool": "gpu"}, "taints": None, "tags": ["gtc-demo"],
            "auto_scale": None, "min_nodes": None, "max_nodes": None}
    base.update(over)
    return base


def test_node_pool_diff_same_pool_is_no_change() -> None:
    assert do.diff_fields(np_mod.desired(params()), np_mod.view(pool())) == {}


def test_node_pool_diff_count_and_labels() -> None:
    changes = do.diff_fields(np_mod.desired(params(count=2, labels={"gtc-demo/pool": "gpu", "x": "y"})),
                             np_mod.view(pool()))
    assert changes == {"count": (1, 2), "labels": ({"gtc-demo/pool": "gpu"}, {"gtc-demo/pool": "gpu", "x": "y"})}


def test_node_pool_diff_taints_removal_is_a_change() -> None:
    have = pool(taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
    assert "taints" in do.diff_fields(np_mod.desired(params(taints=[])), np_mod.view(have))
    assert "taints" not in do.diff_fields(np_mod.desired(params()), np_mod.view(have))  # None: leave as is


def test_pool_ready_needs_every_node_running_and_the_count() -> None:
    running = {"status": {"state": "running"}}
    assert np_mod.pool_ready(pool(count=2, nodes=[running, running]))
    assert not np_mod.pool_ready(pool(count=2, nodes=[running]))
    assert not np_mod.pool_ready(pool(count=1, nodes=[{"status": {"state": "provisioning"}}]))
    assert np_mod.pool_ready(pool(count=1, auto_scale=True, nodes=[running, running]))


def test_cluster_window_merges_and_pads() -> None:
    assert cl_mod.desired_window({"maintenance_window": {"day": "sunday", "start_time": "4:00"}},
                                 {"day": "any", "start_time": "00:00"}) == {"day": "sunday", "start_time": "04:00"}
    assert cl_mod.desired_window({"maintenance_window": None}) is None


# --- the real pydo client, over plain HTTP, against the fake --------------------

def test_pydo_client_sends_the_bearer_token_over_http(fake_server) -> None:
    c = do.DOClient("unit-token", endpoint=fake_server.url, retries=0)
    status, body = c.call("list VPCs", c.client.vpcs.list)
    assert status == 200 and body["vpcs"] == []


def test_pydo_client_wrong_token_maps_to_401_message(fake_server) -> None:
    c = do.DOClient("nope", endpoint=fake_server.url)
    with pytest.raises(do.DOError) as err:
        c.call("list VPCs", c.client.vpcs.list)
    assert err.value.status == 401 and "rejected the API token" in err.value.message
    assert len(fake_server.fake.log) == 1


def test_get_text_reads_the_yaml_kubeconfig_and_404s(fake_server) -> None:
    c = do.DOClient("unit-token", endpoint=fake_server.url)
    status, created = c.call("create cluster", c.client.kubernetes.create_cluster, body={
        "name": "u", "region": "ams3", "version": "1.33.1-do.0",
        "node_pools": [{"name": "p", "size": "s-2vcpu-4gb", "count": 1}]})
    cid = created["kubernetes_cluster"]["id"]
    status, text = c.get_text("get kubeconfig", f"/v2/kubernetes/clusters/{cid}/kubeconfig")
    assert status == 200 and text.startswith("apiVersion: v1") and "current-context: do-ams3-u" in text
    # Without a cluster backend the fake's kubeconfig points at a loopback port nothing listens on.
    assert "server: https://127.0.0.1:1\n" in text
    assert do.get_cluster(c, "00000000-0000-0000-0000-000000000000") is None


def test_list_all_follows_pages(fake_server) -> None:
    c = do.DOClient("unit-token", endpoint=fake_server.url)
    for i in range(3):
        c.call("create VPC", c.client.vpcs.create, body={"name": f"v{i}", "region": "ams3"})
    calls = []

    def small_pages(per_page: int, page: int, cls: Any = None) -> Any:
        calls.append(page)
        return c.client.vpcs.list(per_page=1, page=page, cls=cls)

    assert [v["name"] for v in c.list_all("list VPCs", small_pages, "vpcs")] == ["v0", "v1", "v2"]
    assert calls == [1, 2, 3]


def test_error_message_lists_contract_violations() -> None:
    body = {"type": "https://stoplight.io/prism/errors#VIOLATIONS", "title": "Request/Response not valid",
            "validation": [{"message": "Response body property meta.total must be integer"}]}
    msg = do.error_message(500, body, "list VPCs")
    assert "Request/Response not valid: Response body property meta.total must be integer" in msg


def test_describe_states_for_timeout_messages() -> None:
    assert do.describe(None) == "not found"
    assert do.describe({"status": {"state": "provisioning"}}) == "status=provisioning"
    assert do.describe({"status": "CREATING"}) == "status=CREATING"


def test_token_rule_access_token_first_then_token_skipping_empty(monkeypatch) -> None:
    """The collection's one token rule: DIGITALOCEAN_ACCESS_TOKEN, else DIGITALOCEAN_TOKEN, empty ones skipped."""
    from ansible.module_utils.basic import AnsibleFallbackNotFound

    for name in ("DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN", "DO_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert do.TOKEN_ENV == ["DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN"]
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", "second")
    assert do.token_fallback(*do.TOKEN_ENV) == "second"
    # An exported but empty first name does not hide the second (Ansible's env_fallback would return '').
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", "")
    assert do.token_fallback(*do.TOKEN_ENV) == "second"
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", "first")
    assert do.token_fallback(*do.TOKEN_ENV) == "first"
    for name in ("DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("DO_API_TOKEN", "not-read")
    with pytest.raises(AnsibleFallbackNotFound):
        do.token_fallback(*do.TOKEN_ENV)
    assert do.AUTH_ARGSPEC["token"]["fallback"] == (do.token_fallback, do.TOKEN_ENV)
