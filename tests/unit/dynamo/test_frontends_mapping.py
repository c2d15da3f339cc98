"""One frontends mapping (gtc_demo_frontends) reaches every part of the dynamo role:
reordered (round-robin first) and with a third frontend (random), the local
programs, the graph's components, the PodMonitor's routing labels,
dynamo__output.frontends and the checks (the verify entry point) all follow
it, by routing id, never by position.

The rendering is render.yml's (dynamo_render.py, scenarios dev_reordered and
local_reordered); the checks run the verify entry point against scripted
OpenAI servers on 127.0.0.1: one per frontend for the local platform, and one
playing the API server's service proxy (TLS, bearer token from a kubeconfig)
for doks.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from dynamo_render import REORDERED_FRONTENDS, main_container  # type: ignore[import-not-found]
from helpers import REPO, run_playbook

sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins"))
from openai_fake_server import FakeOpenAI, dynamo_routes, self_signed_tls  # noqa: E402  pylint: disable=wrong-import-position

IDS = list(REORDERED_FRONTENDS)  # round_robin, kv, random
MODES = {"round_robin": "round-robin", "kv": "kv", "random": "random"}
COMPONENTS = {"round_robin": "frontend-rr", "kv": "frontend", "random": "frontend-random"}
VERIFY = str(Path(__file__).with_name("verify.yml"))


def _programs(conf: str) -> list[tuple[str, list[str]]]:
    """(program, argv after `-m dynamo.frontend`) of each frontend program, in file order."""
    out = []
    for block in re.split(r"^\[program:", conf, flags=re.MULTILINE)[1:]:
        name = block.split("]", 1)[0]
        command = re.search(r"^command=(.*?)(?=^\S)", block, re.MULTILINE | re.DOTALL)
        argv = shlex.split(command.group(1))
        if "dynamo.frontend" in argv:
            out.append((name, argv[argv.index("dynamo.frontend") + 1:]))
    return out


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_the_mapping_is_checked_and_completed_in_its_order(rendered):
    frontends = rendered["dev_reordered"].vars["frontends"]
    assert [f["id"] for f in frontends] == IDS
    assert {f["id"]: f["component"] for f in frontends} == COMPONENTS
    assert {f["id"]: f["router_policy"] for f in frontends} == {"round_robin": False, "kv": True, "random": False}


def test_local_programs_follow_the_mapping(rendered):
    conf = rendered["local_reordered"].text("supervisor.conf")
    programs = _programs(conf)
    assert [name for name, _args in programs] == [
        "gtc-dynamo-frontend-round-robin", "gtc-dynamo-frontend-kv", "gtc-dynamo-frontend-random"]
    for frontend_id, (_name, args) in zip(IDS, programs):
        spec = REORDERED_FRONTENDS[frontend_id]
        assert _flag(args, "--router-mode") == MODES[frontend_id]
        assert _flag(args, "--http-port") == str(spec["local_port"])
        assert ("--router-policy-config" in args) == (frontend_id == "kv")
        for word in spec.get("args", []):
            assert word in args
    group = re.search(r"^programs=(.*)$", conf, re.MULTILINE).group(1).split(",")
    # the event broker, two workers, three frontends
    assert group[-3:] == [name for name, _args in programs] and len(group) == 6
    assert group[0] == "gtc-dynamo-event-broker"


def test_graph_has_one_frontend_component_per_entry(rendered):
    frontends = rendered["dev_reordered"].frontends()
    assert [c["name"] for c in frontends] == [COMPONENTS[i] for i in IDS]
    for frontend_id, component in zip(IDS, frontends):
        args = main_container(component)["args"]
        assert _flag(args, "--router-mode") == MODES[frontend_id]
        assert ("--router-policy-config" in args) == (frontend_id == "kv")
        labels = component["podTemplate"]["metadata"]["labels"]
        assert labels["gtc-demo.digitalocean.solutions/routing"] == frontend_id
    # The default mapping still gives the two frontends the gateway and load generator know.
    assert [c["name"] for c in rendered["dev"].frontends()] == ["frontend", "frontend-rr"]


def test_podmonitor_maps_each_component_to_its_id(rendered):
    monitor = rendered["dev_reordered"].yaml("podmonitor-frontend.yaml")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    routing = [r for r in endpoint["relabelings"] if r["targetLabel"] == "routing"]
    assert {r["regex"]: r["replacement"] for r in routing} == {COMPONENTS[i]: i for i in IDS}
    assert all(r["sourceLabels"] == ["__meta_kubernetes_pod_label_nvidia_com_dynamo_component"] for r in routing)


def test_output_lists_every_frontend_by_id_in_order(rendered):
    k8s = rendered["dev_reordered"].output
    assert list(k8s["frontends"]) == IDS
    for frontend_id in IDS:
        entry = k8s["frontends"][frontend_id]
        service = f"http://gtc-demo-{COMPONENTS[frontend_id]}.gtc-demo.svc.cluster.local:8000"
        assert entry == {"url": service, "metrics": service + "/metrics", "router_mode": MODES[frontend_id],
                         "title": REORDERED_FRONTENDS[frontend_id].get("title", "Random")}
    local = rendered["local_reordered"].output
    assert list(local["frontends"]) == IDS
    assert {i: e["url"] for i, e in local["frontends"].items()} == {
        i: f"http://127.0.0.1:{REORDERED_FRONTENDS[i]['local_port']}" for i in IDS}
    # One shape on every platform.
    keys = {"platform", "namespace", "graph", "model", "replicas", "tensor_parallel_size", "rollout_id", "frontends",
            "worker_metrics", "topology", "migration_limit"}
    assert set(local) == set(k8s) == keys
    assert local["worker_metrics"] == ["http://127.0.0.1:9101/metrics", "http://127.0.0.1:9102/metrics"]
    assert k8s["worker_metrics"] == [] and local["graph"] == "" and k8s["graph"] == "gtc-demo"


def test_local_prometheus_targets_label_every_frontend_by_id(rendered):
    file_sd = json.loads((rendered["local_reordered"].root / "file_sd.json").read_text())
    assert file_sd["frontend"] == [
        {"targets": [f"127.0.0.1:{REORDERED_FRONTENDS[i]['local_port']}"], "labels": {"routing": i}} for i in IDS]
    assert file_sd["worker"] == [{"targets": ["127.0.0.1:9101", "127.0.0.1:9102"]}]


def _verify_results(run) -> list[dict[str, Any]]:
    (task,) = [t for t in run.tasks() if t.action == "do_solutions.gtc_demo.validate_inference"]
    return task.result["results"]


def test_local_check_sends_a_request_through_every_frontend(tmp_path):
    fakes = {i: dynamo_routes(FakeOpenAI()).start() for i in IDS}
    try:
        mapping = {i: {**REORDERED_FRONTENDS[i], "local_port": int(fakes[i].url.rsplit(":", 1)[1])} for i in IDS}
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps({"gtc_demo_frontends": mapping}))
        run = run_playbook(VERIFY, "-e", f"@{extra}", inventory="inventories/local", json_output=True, timeout=300)
        assert run.returncode == 0, run.output[-3000:]
        results = _verify_results(run)
        assert [r["item"]["id"] for r in results] == IDS
        assert [r["url"] for r in results] == [fakes[i].url for i in IDS]
        for frontend_id in IDS:
            fake = fakes[frontend_id]
            assert len(fake.requests("/v1/models")) == 1
            assert len(fake.requests("/v1/chat/completions", stream=False)) == 1
            assert len(fake.requests("/v1/chat/completions", stream=True)) == 1
    finally:
        for fake in fakes.values():
            fake.stop()


def _kubeconfig(path: Path, server: str, ca: Path, token: str) -> None:
    import base64  # pylint: disable=import-outside-toplevel

    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "do-test",
        "clusters": [{"name": "do-test", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()}}],
        "contexts": [{"name": "do-test", "context": {"cluster": "do-test", "user": "do-test-admin"}}],
        "users": [{"name": "do-test-admin", "user": {"token": token}}],
    }))


def test_cluster_check_goes_through_every_frontends_service_proxy(tmp_path):
    context, cert = self_signed_tls(tmp_path)
    api = FakeOpenAI(tls=context)
    prefixes = {i: f"/api/v1/namespaces/gtc-demo/services/http:gtc-demo-{COMPONENTS[i]}:8000/proxy" for i in IDS}
    template = dynamo_routes(FakeOpenAI())
    for prefix in prefixes.values():
        for (method, route), replies in template.routes.items():
            api.on(method, prefix + route, *replies)
    api.start()
    try:
        token = "test-token-" + "x" * 20
        kubeconfig = tmp_path / "kubeconfig"
        _kubeconfig(kubeconfig, api.url, cert, token)
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps({"gtc_demo_frontends": REORDERED_FRONTENDS, "gtc_demo_kubeconfig": str(kubeconfig),
                                     "dynamo_verify_urls": {}}))
        run = run_playbook(VERIFY, "-e", f"@{extra}", inventory="inventories/dev", json_output=True, timeout=300)
        assert run.returncode == 0, run.output[-3000:]
        results = _verify_results(run)
        assert [r["item"]["id"] for r in results] == IDS
        assert [r["url"] for r in results] == [api.url + prefixes[i] for i in IDS]
        for frontend_id in IDS:
            seen = api.requests(prefixes[frontend_id] + "/v1/models")
            assert len(seen) == 1 and seen[0].headers["Authorization"] == f"Bearer {token}"
        # The token stays out of what Ansible reports.
        assert token not in run.stdout
    finally:
        api.stop()


def test_a_frontend_of_verify_urls_is_asked_there(tmp_path):
    """dynamo_verify_urls (the rehearsal's port-forward) replaces one frontend's service proxy, by id."""
    context, cert = self_signed_tls(tmp_path)
    api = FakeOpenAI(tls=context)
    proxied = [i for i in IDS if i != "kv"]
    for frontend_id in proxied:
        prefix = f"/api/v1/namespaces/gtc-demo/services/http:gtc-demo-{COMPONENTS[frontend_id]}:8000/proxy"
        for (method, route), replies in dynamo_routes(FakeOpenAI()).routes.items():
            api.on(method, prefix + route, *replies)
    api.start()
    direct = dynamo_routes(FakeOpenAI()).start()
    try:
        kubeconfig = tmp_path / "kubeconfig"
        _kubeconfig(kubeconfig, api.url, cert, "t0ken-for-the-test")
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps({"gtc_demo_frontends": REORDERED_FRONTENDS, "gtc_demo_kubeconfig": str(kubeconfig),
                                     "dynamo_verify_urls": {"kv": direct.url}}))
        run = run_playbook(VERIFY, "-e", f"@{extra}", inventory="inventories/dev", json_output=True, timeout=300)
        assert run.returncode == 0, run.output[-3000:]
        urls = {r["item"]["id"]: r["url"] for r in _verify_results(run)}
        assert urls["kv"] == direct.url and len(direct.requests("/v1/models")) == 1
        assert all(urls[i].startswith(api.url + "/api/v1/") for i in proxied)
    finally:
        api.stop()
        direct.stop()


def test_a_frontend_that_does_not_answer_fails_the_check(tmp_path):
    fakes = {i: dynamo_routes(FakeOpenAI()).start() for i in IDS}
    try:
        mapping = {i: {**REORDERED_FRONTENDS[i], "local_port": int(fakes[i].url.rsplit(":", 1)[1])} for i in IDS}
        fakes["random"].stop()  # its port now refuses
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps({"gtc_demo_frontends": mapping, "dynamo_validate_timeout": 0}))
        run = run_playbook(VERIFY, "-e", f"@{extra}", inventory="inventories/local", json_output=True, timeout=300)
        assert run.returncode != 0
        failed = {r["item"]["id"]: r.get("failed", False) for r in _verify_results(run)}
        assert failed == {"round_robin": False, "kv": False, "random": True}
    finally:
        for fake in fakes.values():
            fake.stop()
