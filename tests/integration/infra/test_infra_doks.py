"""The infra role on the doks platform, against the fake DigitalOcean API behind Prism.

Every request the modules make and every answer the fake gives pass through
Prism with DigitalOcean's published OpenAPI spec (the `do_api` fixture fails
the test on any violation).
"""
from __future__ import annotations

import os
import stat
import time

import pytest
import yaml

from fake_do.harness import InfraRunner

pytestmark = pytest.mark.integration


def ok(run) -> None:
    assert run.returncode == 0, f"{run.args}\n{run.output[-6000:]}"


def changed(run) -> list[str]:
    """The modules of the tasks that reported a change (Ansible's JSON callback)."""
    return [t.action for t in run.tasks() if t.changed]


def nodes_of(backend, pool: str) -> list:
    return [n for n in backend.node_objects() if n.metadata.labels.get("doks.digitalocean.com/node-pool") == pool]


def ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def gpu_nodes(backend, pool: str = "gtc-demo-dev-gpu") -> dict[str, int]:
    """Nodes of the pool that are Ready, with their allocatable GPUs."""
    return {n.metadata.name: int((n.status.allocatable or {}).get("nvidia.com/gpu", 0))
            for n in nodes_of(backend, pool) if ready(n)}


def clusters(state):
    return state["clusters"]


def gpu_pool(state):
    (cluster,) = state["clusters"]
    (pool,) = [p for p in cluster["node_pools"] if p["name"] == "gtc-demo-dev-gpu"]
    return pool


def test_lifecycle_create_rerun_resize_relabel_check_teardown(infra: InfraRunner) -> None:
    api = infra.api

    # 0. Check mode on an empty account: says what it would create, creates nothing.
    dry = infra.apply("--check", "--diff")
    ok(dry)
    assert dry.recap["changed"] >= 5, changed(dry)
    assert api.writes_since(0) == [] and api.fake.is_empty()
    assert infra.output()["cluster"]["ready"] is False and infra.output()["cluster"]["id"] == ""
    assert not infra.kubeconfig.exists()

    # 1. First run creates everything the issue lists.
    first = infra.apply()
    ok(first)
    assert first.recap["changed"] >= 5, first.output[-3000:]
    state = api.state()
    assert [v["name"] for v in state["vpcs"]] == ["gtc-demo-dev-vpc"]
    assert state["vpcs"][0]["region"] == "ams3" and state["vpcs"][0]["ip_range"] == "10.120.0.0/20"
    (cluster,) = clusters(state)
    assert cluster["name"] == "gtc-demo-dev" and cluster["status"]["state"] == "running"
    assert cluster["vpc_uuid"] == state["vpcs"][0]["id"]
    assert cluster["version"].startswith("1.33.") and cluster["ha"] is False
    assert cluster["maintenance_policy"]["day"] == "sunday" and cluster["maintenance_policy"]["start_time"] == "04:00"
    assert "gtc-demo" in cluster["tags"]
    assert state["registry"] == [cluster["id"]], "registry integration missing"
    pools = {p["name"]: p for p in cluster["node_pools"]}
    assert set(pools) == {"gtc-demo-dev-cpu", "gtc-demo-dev-gpu"}
    assert pools["gtc-demo-dev-gpu"]["size"] == "gpu-h100x8-640gb" and pools["gtc-demo-dev-gpu"]["count"] == 1
    assert pools["gtc-demo-dev-gpu"]["labels"] == {"gtc-demo/pool": "gpu"}
    assert pools["gtc-demo-dev-cpu"]["count"] == 2
    assert all(n["status"]["state"] == "running" for p in pools.values() for n in p["nodes"])
    (share,) = state["shares"]
    assert share["size_gib"] == 100 and share["vpc_ids"] == [state["vpcs"][0]["id"]] and share["status"] == "ACTIVE"

    # The kubeconfig is saved privately in $GTC_DEMO_HOME/dev/kubeconfig, pointing at the cluster
    # (the fake's clusters are the test control plane), with a bearer token as DOKS gives.
    kube = infra.kubeconfig
    assert kube == infra.home / "dev" / "kubeconfig"
    assert stat.S_IMODE(kube.stat().st_mode) == 0o600
    config = yaml.safe_load(kube.read_text())
    backend = api.fake.cluster_backend
    assert config["clusters"][0]["cluster"]["server"] == backend.server_url == cluster["endpoint"]
    assert config["current-context"] == "do-ams3-gtc-demo-dev"
    assert config["users"][0]["user"]["token"]
    # The cluster holds the pools' nodes, shaped like DOKS's, and infra waited for the GPUs.
    assert gpu_nodes(backend) == {n["name"]: 8 for n in pools["gtc-demo-dev-gpu"]["nodes"]}
    assert len(nodes_of(backend, "gtc-demo-dev-cpu")) == 2

    # infra__output carries what later roles need.
    out = infra.output()
    assert out["platform"] == "doks" and out["environment"] == "dev" and out["kubeconfig"] == str(kube)
    assert out["local"] == {"root": "", "venvs": "", "logs": "", "run": "", "python": "",
                            "supervisor": {"config": "", "conf_dir": ""}}
    got = out["cluster"]
    assert got["ready"] is True and got["region"] == "ams3"
    assert got["id"] == cluster["id"] and got["name"] == "gtc-demo-dev" and got["endpoint"] == cluster["endpoint"]
    assert got["version"] == cluster["version"] and got["registry_integration"] is True
    assert got["vpc_id"] == state["vpcs"][0]["id"]
    assert got["nfs"] == {"id": share["id"], "host": share["host"], "mount_path": share["mount_path"], "size_gib": 100}
    assert got["gpu_pool"] == {"name": "gtc-demo-dev-gpu", "id": pools["gtc-demo-dev-gpu"]["id"],
                               "size": "gpu-h100x8-640gb", "count": 1, "labels": {"gtc-demo/pool": "gpu"}}
    assert got["cpu_pool"] == {"name": "gtc-demo-dev-cpu", "id": pools["gtc-demo-dev-cpu"]["id"],
                               "size": "s-4vcpu-8gb", "count": 2, "labels": {"gtc-demo/pool": "cpu"}}

    # 2. A second run changes nothing and writes nothing.
    mark = len(api.log())
    second = infra.apply()
    ok(second)
    assert second.recap["changed"] == 0, changed(second)
    assert api.writes_since(mark) == []

    # 3. Check mode on a changed inventory reports the change, with a diff, and writes nothing.
    mark = len(api.log())
    kube_before = kube.read_bytes()
    check = infra.apply("--check", "--diff", gtc_demo_gpu_node_count=2,
                        infra_gpu_pool_labels={"gtc-demo/pool": "gpu", "gtc-demo/role": "decode"})
    ok(check)
    assert changed(check) == ["do_solutions.gtc_demo.do_kubernetes_node_pool"], changed(check)
    (pool_task,) = [t for t in check.tasks() if t.changed]
    assert pool_task.result["diff"]["after"]["count"] == 2, pool_task.result["diff"]
    assert pool_task.result["diff"]["after"]["labels"]["gtc-demo/role"] == "decode"
    assert api.writes_since(mark) == [], "check mode wrote to the API"
    assert gpu_pool(api.state())["count"] == 1
    assert kube.read_bytes() == kube_before

    # 4. A new GPU count and new labels update the pool in place: same cluster, same pool.
    mark = len(api.log())
    resized = infra.apply(gtc_demo_gpu_node_count=2,
                          infra_gpu_pool_labels={"gtc-demo/pool": "gpu", "gtc-demo/role": "decode"})
    ok(resized)
    assert changed(resized) == ["do_solutions.gtc_demo.do_kubernetes_node_pool"], changed(resized)
    writes = api.writes_since(mark)
    assert [w["method"] for w in writes] == ["PUT"], writes
    assert writes[0]["path"].endswith("/node_pools/" + pools["gtc-demo-dev-gpu"]["id"])
    state = api.state()
    (same,) = clusters(state)
    assert same["id"] == cluster["id"]
    pool = gpu_pool(state)
    assert pool["id"] == pools["gtc-demo-dev-gpu"]["id"]
    assert pool["count"] == 2 and len(pool["nodes"]) == 2
    assert all(n["status"]["state"] == "running" for n in pool["nodes"])
    assert pool["labels"] == {"gtc-demo/pool": "gpu", "gtc-demo/role": "decode"}
    assert infra.output()["cluster"]["gpu_pool"]["count"] == 2
    # The new node is in the cluster, Ready with its GPUs (infra waited), the pool's new label on both.
    assert gpu_nodes(api.fake.cluster_backend) == {n["name"]: 8 for n in pool["nodes"]}
    assert all(n.metadata.labels["gtc-demo/role"] == "decode" for n in nodes_of(api.fake.cluster_backend, pool["name"]))

    # 4b. Cluster settings, the registry integration and the NFS size change in place too.
    mark = len(api.log())
    tuned = infra.apply(gtc_demo_gpu_node_count=2,
                        infra_gpu_pool_labels={"gtc-demo/pool": "gpu", "gtc-demo/role": "decode"},
                        infra_maintenance_window={"day": "saturday", "start_time": "5:00"},
                        infra_registry_integration=False, infra_nfs_size_gib=150)
    ok(tuned)
    assert changed(tuned) == ["do_solutions.gtc_demo.do_kubernetes_cluster", "do_solutions.gtc_demo.do_nfs_share"], \
        changed(tuned)
    writes = [(w["method"], w["path"]) for w in api.writes_since(mark)]
    assert writes == [("PUT", f"/v2/kubernetes/clusters/{cluster['id']}"), ("DELETE", "/v2/kubernetes/registry"),
                      ("POST", f"/v2/nfs/{share['id']}/actions")], writes
    state = api.state()
    assert [c["id"] for c in state["clusters"]] == [cluster["id"]] and state["registry"] == []
    assert state["clusters"][0]["maintenance_policy"]["day"] == "saturday"
    assert state["clusters"][0]["maintenance_policy"]["start_time"] == "05:00"
    assert [(s["id"], s["size_gib"]) for s in state["shares"]] == [(share["id"], 150)]
    assert infra.output()["cluster"]["nfs"]["size_gib"] == 150
    assert infra.output()["cluster"]["registry_integration"] is False

    # 5. A VPC with members cannot go: the module says so clearly (403 from the API).
    refused = infra.module("do_vpc", {"name": "gtc-demo-dev-vpc", "state": "absent"})
    assert refused.returncode != 0
    assert "403 forbidden" in refused.output and "delete VPC gtc-demo-dev-vpc" in refused.output

    # 6. The node pool module on its own: create, retaint, size refused, check-mode delete, delete.
    cluster_id = cluster["id"]
    base = {"cluster_id": cluster_id, "name": "gtc-demo-dev-extra", "poll_interval": 0.2, "wait_timeout": 60}
    created = infra.module("do_kubernetes_node_pool", {**base, "size": "s-2vcpu-4gb", "count": 1})
    ok(created)
    taint = [{"key": "gtc-demo/dedicated", "value": "bench", "effect": "NoSchedule"}]
    tainted = infra.module("do_kubernetes_node_pool", {**base, "taints": taint}, "--diff")
    ok(tainted)
    assert "CHANGED" in tainted.output and "gtc-demo/dedicated" in tainted.output
    (cluster,) = infra.api.state()["clusters"]
    (extra,) = [p for p in cluster["node_pools"] if p["name"] == "gtc-demo-dev-extra"]
    assert extra["taints"] == taint and extra["count"] == 1

    same = infra.module("do_kubernetes_node_pool", {**base, "taints": taint})
    ok(same)
    assert "SUCCESS" in same.output and 'changed: false' in same.output

    resize = infra.module("do_kubernetes_node_pool", {**base, "size": "s-4vcpu-8gb"})
    assert resize.returncode != 0 and "cannot change" in resize.output

    mark = len(infra.api.log())
    dry = infra.module("do_kubernetes_node_pool", {**base, "state": "absent"}, "--check")
    ok(dry)
    assert "CHANGED" in dry.output and infra.api.writes_since(mark) == []
    gone = infra.module("do_kubernetes_node_pool", {**base, "state": "absent"})
    ok(gone)
    (cluster,) = infra.api.state()["clusters"]
    assert cluster["id"] == cluster_id  # still the same cluster
    assert sorted(p["name"] for p in cluster["node_pools"]) == ["gtc-demo-dev-cpu", "gtc-demo-dev-gpu"]

    # 7. Teardown leaves the fake empty (and waits until everything is gone); a second teardown is a no-op.
    down = infra.teardown()
    ok(down)
    assert api.fake.is_empty(), api.state()
    assert not kube.exists()
    assert api.fake.cluster_backend.node_objects() == []
    again = infra.teardown()
    ok(again)
    assert again.recap["changed"] == 0, changed(again)


def test_prod_inventory_plans_the_contracted_h200_pool_in_atl1(infra: InfraRunner) -> None:
    """inventories/prod in check mode: the plan names prod's region, VPC range and GPU size; nothing is written."""
    run = infra.playbook("infra.yml", "--check", "--diff", inventory="inventories/prod")
    ok(run)
    for expected in ("gtc-demo-prod-vpc", "10.130.0.0/20", "atl1", "gpu-h200x8-1128gb-contracted",
                     "gtc-demo-prod-gpu", "gtc-demo-prod-models"):
        assert expected in run.output, expected
    assert infra.api.writes_since(0) == [] and infra.api.fake.is_empty()
    cluster = infra.output()["cluster"]
    assert cluster["region"] == "atl1" and cluster["gpu_pool"]["size"] == "gpu-h200x8-1128gb-contracted"


def test_survives_injected_429_and_500(infra: InfraRunner) -> None:
    api = infra.api
    api.control("/_fake/faults", {"faults": [
        {"status": 429, "times": 2, "retry_after": 1, "method": "POST", "path": "^/v2/vpcs$"},
        {"status": 500, "times": 1, "method": "POST", "path": "^/v2/kubernetes/clusters$"},
        {"status": 503, "times": 1, "method": "GET", "path": "/node_pools"},
        {"status": 429, "times": 1, "retry_after": 1, "method": "POST", "path": "^/v2/nfs$"},
        {"status": 502, "times": 1, "method": "GET", "path": "/kubeconfig$"},
    ]})
    started = time.monotonic()
    run = infra.apply()
    ok(run)
    faults = [e for e in api.log() if e["fault"]]
    assert [e["status"] for e in faults] == [429, 429, 500, 503, 429, 502], faults
    state = api.state()
    # Retried creates did not make doubles.
    assert len(state["vpcs"]) == 1 and len(state["clusters"]) == 1 and len(state["shares"]) == 1
    assert "retry 1/5" in run.output  # the modules say that they retried
    # The two 429s on POST /v2/vpcs asked for 1 s each: Retry-After was honoured.
    vpc_posts = [e for e in api.log() if e["method"] == "POST" and e["path"] == "/v2/vpcs"]
    assert len(vpc_posts) == 3
    assert time.monotonic() - started >= 2


def test_wrong_token_fails_at_once_without_writing(infra: InfraRunner) -> None:
    started = time.monotonic()
    run = infra.apply(token="dop_v1_this_token_is_wrong")
    elapsed = time.monotonic() - started
    assert run.returncode != 0
    assert "401 unauthorized" in run.output and "DIGITALOCEAN_ACCESS_TOKEN" in run.output
    (refused,) = run.failed_tasks()
    assert refused.action == "do_solutions.gtc_demo.do_vpc", refused
    log = infra.api.log()
    assert [e["method"] for e in log] == ["GET"], log  # one look, refused; no retry, no write
    assert infra.api.fake.is_empty()
    assert elapsed < 60, f"took {elapsed:.0f}s to fail"


def test_missing_token_fails_clearly(infra: InfraRunner) -> None:
    run = infra.apply(token="")
    assert run.returncode != 0
    assert "No DigitalOcean API token" in run.output
    assert infra.api.log() == []


def test_api_422_is_named(infra: InfraRunner) -> None:
    run = infra.module("do_vpc", {"name": "gtc-demo-bad", "region": "zz9", "ip_range": "10.9.0.0/20"})
    assert run.returncode != 0
    assert "could not create VPC gtc-demo-bad: 422 unprocessable entity (Unknown region zz9)" in run.output
    assert infra.api.fake.is_empty()


def test_slow_provisioning_times_out_with_what_it_saw(infra: InfraRunner) -> None:
    infra.api.control("/_fake/config", {"provision_seconds": 30})
    vpc = infra.module("do_vpc", {"name": "gtc-demo-slow", "region": "ams3"})
    ok(vpc)
    vpc_id = infra.api.state()["vpcs"][0]["id"]
    run = infra.module("do_kubernetes_cluster", {
        "name": "gtc-demo-slow", "region": "ams3", "version": "1.33", "vpc_id": vpc_id,
        "node_pools": [{"name": "cpu", "size": "s-2vcpu-4gb", "count": 1}],
        "wait_timeout": 2, "poll_interval": 0.5,
    })
    assert run.returncode != 0
    assert "Timed out after 2s waiting for Kubernetes cluster gtc-demo-slow to be running" in run.output
    assert "last seen: status=provisioning" in run.output
    # Delete waits for the cluster to be gone.
    infra.api.control("/_fake/config", {"delete_seconds": 1})
    gone = infra.module("do_kubernetes_cluster", {"name": "gtc-demo-slow", "state": "absent", "poll_interval": 0.2})
    ok(gone)
    assert infra.api.state()["clusters"] == []


def test_sentinel_token_never_leaks(infra: InfraRunner) -> None:
    sentinel = "dop_v1_SENTINEL_" + os.urandom(8).hex()
    infra.api.control("/_fake/config", {"token": sentinel})
    runs = [infra.apply("-vvv", "--diff", token=sentinel), infra.teardown("-vvv", "--diff", token=sentinel)]
    for run in runs:
        ok(run)
        assert sentinel not in run.output
    # The token did reach the API (the fake accepts only it), so it was used ...
    assert any(e["method"] == "POST" for e in infra.api.log())
    # ... yet no file the runs wrote holds it: kubeconfig, Ansible's log and temp files, outputs.
    written = [p for p in infra.workdir.rglob("*") if p.is_file()]
    assert any(p.name == "ansible.log" for p in written)
    for path in written:
        assert sentinel.encode() not in path.read_bytes(), f"token leaked into {path}"
    assert infra.api.fake.is_empty()


def test_contract_checker_catches_a_broken_response(infra: InfraRunner) -> None:
    """The harness itself: a response that breaks DigitalOcean's spec must be caught by Prism."""
    infra.api.control("/_fake/config", {"break_contract": True})
    mark = infra.api.prism.mark()
    run = infra.module("do_vpc_info", {"name": "x", "api_retries": 0})
    assert run.returncode != 0
    assert "Request/Response not valid" in run.output and "meta.total must be integer" in run.output
    deadline = time.monotonic() + 5
    while not infra.api.prism.violations_since(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert infra.api.prism.violations_since(mark)
    # These violations were the point of this test: the fixture checks only what follows.
    infra.api.checked_from = infra.api.prism.mark()
