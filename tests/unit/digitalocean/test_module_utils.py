"""module_utils/digitalocean.py: error mapping, Retry-After, backoff, the retry loop, waiting, comparison."""
from __future__ import annotations

import email.utils
import json
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

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


def failing(*statuses: int, retry_after: str | None = None, then: tuple[int, Any] = (200, {"ok": True})):
    """An operation that fails with the given statuses in turn, then succeeds; counts its calls."""
    calls = []

    def operation(*args: Any, cls: Any = None, **kwargs: Any) -> tuple[int, Any]:
        calls.append(kwargs)
        if len(calls) <= len(statuses):
            status = statuses[len(calls) - 1]
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            raise HttpResponseError(response=StubResponse(status, {"id": "e", "message": f"m{status}"}, headers))
        return then

    operation.calls = calls  # type: ignore[attr-defined]
    return operation


def client(retries: int = 5) -> tuple[do.DOClient, list[float]]:
    sleeps: list[float] = []
    return do.DOClient("t", retries=retries, sleep=sleeps.append, jitter=lambda: 1.0, client=object()), sleeps


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


def test_401_403_422_fail_at_once_with_the_apis_reason() -> None:
    for status in (401, 403, 422):
        c, sleeps = client()
        op = failing(status)
        with pytest.raises(do.DOError) as err:
            c.call("create VPC demo", op)
        assert err.value.status == status and f"m{status}" in err.value.message
        assert len(op.calls) == 1 and sleeps == []


# --- Retry-After and backoff -------------------------------------------------

def test_parse_retry_after_seconds_and_http_date() -> None:
    assert do.parse_retry_after("3") == 3.0
    assert do.parse_retry_after(" 1.5 ") == 1.5
    assert do.parse_retry_after("-2") == 0.0
    assert do.parse_retry_after(None) is None and do.parse_retry_after("") is None
    assert do.parse_retry_after("soon") is None
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert do.parse_retry_after(date, now=now) == pytest.approx(7, abs=1)
    assert do.parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_backoff_is_exponential_with_jitter_capped_and_yields_to_retry_after() -> None:
    assert [do.backoff_delay(a, jitter=lambda: 1.0) for a in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert do.backoff_delay(2, jitter=lambda: 0.0) == 2.0  # half of 4: jitter spreads 50-100 %
    assert do.backoff_delay(20, jitter=lambda: 1.0) == do.MAX_RETRY_SLEEP
    assert do.backoff_delay(3, retry_after=2.0) == 2.0
    assert do.backoff_delay(0, retry_after=900.0) == do.MAX_RETRY_SLEEP


def test_429_honours_retry_after_then_succeeds() -> None:
    c, sleeps = client()
    op = failing(429, 429, retry_after="2")
    assert c.call("list VPCs", op) == (200, {"ok": True})
    assert sleeps == [2.0, 2.0] and len(op.calls) == 3 and c.retried == 2 and c.attempts == 3


def test_5xx_backs_off_exponentially_then_succeeds() -> None:
    c, sleeps = client()
    op = failing(500, 502, 503, 504)
    assert c.call("list VPCs", op)[0] == 200
    assert sleeps == [1.0, 2.0, 4.0, 8.0]


def test_gives_up_after_the_retries_with_a_clear_message() -> None:
    c, sleeps = client(retries=2)
    op = failing(500, 500, 500, 500)
    with pytest.raises(do.DOError) as err:
        c.call("create Kubernetes cluster demo", op)
    assert "HTTP 500" in err.value.message and "gave up" in err.value.message
    assert "create Kubernetes cluster demo" in err.value.message
    assert len(op.calls) == 3 and len(sleeps) == 2


def test_dropped_connections_are_retried() -> None:
    c, sleeps = client(retries=1)
    calls = []

    def op(*a: Any, cls: Any = None, **k: Any) -> tuple[int, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise ServiceRequestError("connection refused")
        return 200, {}

    assert c.call("list VPCs", op) == (200, {}) and sleeps == [1.0]

    def refused(*a: Any, cls: Any = None, **k: Any) -> tuple[int, Any]:
        raise ServiceRequestError("refused")

    no_retry = client(retries=0)[0]
    with pytest.raises(do.DOError, match="Could not reach the DigitalOcean API while trying to list VPCs"):
        no_retry.call("list VPCs", refused)


def test_404_is_returned_not_raised() -> None:
    assert client()[0].call("read cluster", failing(404))[0] == 404


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

@pytest.fixture
def fake_server():
    server = FakeServer("unit-token").start()
    yield server
    server.stop()


def test_pydo_client_sends_the_bearer_token_over_http_and_does_not_retry_on_its_own(fake_server) -> None:
    c = do.DOClient("unit-token", endpoint=fake_server.url, retries=0)
    status, body = c.call("list VPCs", c.client.vpcs.list)
    assert status == 200 and body["vpcs"] == []
    fake_server.fake.faults = [{"status": 500, "times": 3}]
    with pytest.raises(do.DOError, match="HTTP 500"):
        c.call("list VPCs", c.client.vpcs.list)
    # azure-core's own RetryPolicy is off: exactly one request reached the server.
    assert [e["status"] for e in fake_server.fake.log] == [200, 500]


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
