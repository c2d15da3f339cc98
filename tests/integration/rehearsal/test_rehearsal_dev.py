"""`site.yml`, `validate.yml` and `teardown.yml -i inventories/dev`, run as a user runs them, rehearsed here.

What each part of the run talks to is listed in tests/rehearsal/harness.py. The
stages build on each other (bad inputs on the empty cloud, the first run, a
rerun, check mode, validation, teardown, a second teardown); each test asks for
the stages it needs through ``stage``, so any one of them can be run alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import PlaybookRun
from rehearsal.harness import (FAKE_SECRETS, KINDS_REPORTED, OVERLAY_KEYS, Rehearsal, counted, files_holding,
                               list_objects, secret_forms)

pytestmark = pytest.mark.integration

# Roles site.yml runs, in order; each one's tag.
ROLES = ("infra", "cluster_config", "model_sync", "dynamo", "loadgen", "gateway")
RELEASES = {"cert-manager", "external-dns", "kube-prometheus-stack", "dcgm-exporter", "keda", "dynamo-platform"}


class Stages:
    """Runs each stage of the rehearsal once, in order, on first demand."""

    ORDER = ("bad_inputs", "site", "rerun", "check", "validate", "tags", "model_change", "teardown",
             "teardown_again")

    def __init__(self, rehearsal: Rehearsal) -> None:
        self.rehearsal = rehearsal
        self.done: dict[str, Any] = {}

    def __call__(self, name: str) -> Any:
        for earlier in self.ORDER[: self.ORDER.index(name) + 1]:
            if earlier not in self.done:
                self.done[earlier] = getattr(self, f"_{earlier}")()
        return self.done[name]

    # Each stage returns what its tests look at.

    def _bad_inputs(self) -> dict[str, Any]:
        r = self.rehearsal
        results = {}
        cases: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
            "missing secret": ((), ("HF_TOKEN",)),
            "model typo": (("-e", "gtc_demo_model=nvidia/Llama-3.1-70B-Instrukt-FP8"), ()),
            "pool too small": (("-e", '{"dynamo_replicas": 3}'), ()),
            "image not pushed": (("-e", "loadgen_image_tag=20200101-0badc0d"), ()),
            "DNS zone not in the account": (("-e", "gtc_demo_hostname=gtc-demo.not-our-zone.example"), ()),
        }
        for case, (extra, drop) in cases.items():
            before_log = len(r.cloud.log())
            before_objects = object_digests(r)
            run = r.run("site.yml", *extra, drop=drop, json_output=True)
            results[case] = {"run": run, "writes": [e for e in r.cloud.log()[before_log:] if e["method"] != "GET"],
                             "calls": len(r.cloud.log()) - before_log,
                             "objects_changed": changed_objects(before_objects, object_digests(r))}
        return results

    def _site(self) -> dict[str, Any]:
        r = self.rehearsal
        baseline = object_digests(r)
        # -vvv: module arguments and results are printed, so a secret without no_log would show.
        run = r.run("site.yml", "-vvv", json_output=True)
        return {"run": run, "baseline": baseline, "after": object_digests(r), "report": r.report()}

    def _rerun(self) -> dict[str, Any]:
        r = self.rehearsal
        before, mark = object_digests(r), len(r.cloud.log())
        run = r.run("site.yml", json_output=True)
        return {"run": run, "writes": writes_since(r, mark), "objects_changed": changed_objects(before, object_digests(r))}

    def _check(self) -> dict[str, Any]:
        r = self.rehearsal
        before, mark = object_digests(r), len(r.cloud.log())
        run = r.run("site.yml", "--check", "--diff", "-vvv")  # a diff of a Secret would show its data
        return {"run": run, "writes": writes_since(r, mark), "objects_changed": changed_objects(before, object_digests(r))}

    def _validate(self) -> dict[str, Any]:
        r = self.rehearsal
        before, mark = object_digests(r), len(r.cloud.log())
        run = r.run("playbooks/validate.yml")
        return {"run": run, "writes": writes_since(r, mark), "objects_changed": changed_objects(before, object_digests(r))}

    def _tags(self) -> dict[str, Any]:
        """`--tags dynamo` with one replica: only dynamo changes; Jobs and Helm releases stay as they are."""
        r = self.rehearsal
        before, mark = object_digests(r), len(r.cloud.log())
        run = r.run("site.yml", "--tags", "dynamo", "-e", '{"dynamo_replicas": 1}', json_output=True)
        return {"run": run, "writes": writes_since(r, mark),
                "objects_changed": changed_objects(before, object_digests(r)), "graph": graph(r)}

    def _model_change(self) -> dict[str, Any]:
        """Another model in one run: new copy Jobs, the workers redeployed, the load generator rolled."""
        r = self.rehearsal
        before = {"graph": graph(r), "jobs": job_names(r), "loadgen": loadgen_template(r)}
        # The inference check would ask the local frontend for a model it does not serve.
        run = r.run("site.yml", "-e", json.dumps({"gtc_demo_model": OTHER_MODEL, "dynamo_validate": False}))
        return {"run": run, "before": before,
                "after": {"graph": graph(r), "jobs": job_names(r), "loadgen": loadgen_template(r)}}

    def _teardown(self) -> dict[str, Any]:
        r = self.rehearsal
        run = r.run("playbooks/teardown.yml")
        nodes = [n.metadata.name for n in r.cluster.core().list_node().items]
        return {"run": run, "cloud": r.cloud_resources(), "nodes": nodes,
                "left": changed_objects(self.done["site"]["baseline"], object_digests(r))}

    def _teardown_again(self) -> dict[str, Any]:
        r = self.rehearsal
        mark = len(r.cloud.log())
        run = r.run("playbooks/teardown.yml", json_output=True)
        return {"run": run, "writes": writes_since(r, mark)}


OTHER_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def graph(r: Rehearsal) -> dict[str, Any]:
    from kubernetes import dynamic  # pylint: disable=import-outside-toplevel

    dyn = dynamic.DynamicClient(r.cluster.api_client())
    dgd = dyn.resources.get(api_version="nvidia.com/v1beta1", kind="DynamoGraphDeployment")
    return dgd.get(namespace="gtc-demo", name="gtc-demo").to_dict()


def worker(graph_obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in graph_obj["spec"]["components"] if c["name"] == "worker")


def job_names(r: Rehearsal) -> set[str]:
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    batch = client.BatchV1Api(r.cluster.api_client())
    return {j.metadata.name for j in batch.list_namespaced_job("gtc-demo").items}


def loadgen_template(r: Rehearsal) -> dict[str, Any]:
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    apps = client.AppsV1Api(r.cluster.api_client())
    deployment = apps.read_namespaced_deployment("loadgen", "gtc-demo")  # loadgen_k8s_name
    return r.cluster.api_client().sanitize_for_serialization(deployment.spec.template)


def writes_since(r: Rehearsal, mark: int) -> list[dict[str, Any]]:
    return [e for e in r.cloud.log()[mark:] if e["method"] != "GET"]


KEEP = "helm.sh/resource-policy"


def object_digests(r: Rehearsal) -> dict[str, str]:
    """A digest per object in the cluster (status and the API server's bookkeeping left out).

    Objects Helm keeps on uninstall by design (``helm.sh/resource-policy:
    keep``) get a key ending in `` (kept)``.
    """
    digests = {}
    for kind, api_version in KINDS_REPORTED:
        for item in list_objects(r.cluster.api_client(), kind, api_version):
            if not counted(kind, item):
                continue
            body = item.to_dict()
            body.pop("status", None)
            meta = body["metadata"]
            for key in ("resourceVersion", "managedFields", "generation"):
                meta.pop(key, None)
            # Controllers' heartbeats and leader leases are not what a run changed.
            if kind == "ConfigMap" and meta.get("name", "").endswith(("-leader", "-leader-election")):
                continue
            digest = hashlib.sha1(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]
            kept = " (kept)" if (meta.get("annotations") or {}).get(KEEP) == "keep" else ""
            digests[f"{kind}/{meta.get('namespace') or ''}/{meta['name']}{kept}"] = digest
    return digests


def changed_objects(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k]),
    }


def rehearsal_nodes(result: dict[str, Any]) -> list[str]:
    return result["nodes"]


def explain(run: PlaybookRun) -> str:
    return f"rc={run.returncode}\n{run.output[-8000:]}"


@pytest.fixture(scope="module")
def rehearsal(local_demo) -> Iterator[Rehearsal]:
    """The rehearsal's cloud, cluster, charts and stand-ins; the local demo answers the inference check."""
    r = Rehearsal("dev", frontend_urls=dict(local_demo.frontends), public_url=local_demo.loadgen_url)
    try:
        r.start()
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def stage(rehearsal) -> Callable[[str], Any]:
    return Stages(rehearsal)


# -- the overlay ---------------------------------------------------------------

def test_overlay_changes_endpoints_only(rehearsal):
    overlay = json.loads(rehearsal.overlay_file.read_text())
    assert set(overlay) <= set(OVERLAY_KEYS)
    assert all(key.endswith(("_url", "_urls", "_endpoint")) for key in overlay)
    urls = [u for value in overlay.values() for u in (value.values() if isinstance(value, dict) else [value])]
    assert urls and all(u.startswith("http://127.0.0.1:") for u in urls), overlay


# -- bad input costs nothing ------------------------------------------------------

@pytest.mark.parametrize("case, named", [
    ("missing secret", "HF_TOKEN"),
    ("model typo", "Instrukt"),
    ("pool too small", "dynamo_replicas"),
    ("image not pushed", "playbooks/images.yml"),
    ("DNS zone not in the account", "not-our-zone.example"),
])
def test_bad_input_fails_before_any_write(stage, case, named):
    result = stage("bad_inputs")[case]
    run = result["run"]
    assert run.returncode != 0, explain(run)
    messages = [str(t.result.get("msg", "")) for t in run.failed_tasks()]
    assert len(messages) == 1 and named in messages[0], messages
    assert result["writes"] == [], f"{case}: DigitalOcean writes before the refusal: {result['writes']}"
    assert not any(result["objects_changed"].values()), result["objects_changed"]
    if case == "missing secret":
        # Checks that need only the inventory and the environment come before any look at the cloud.
        assert result["calls"] == 0, f"the preflight read the cloud {result['calls']} times before refusing"


# -- the first run -----------------------------------------------------------

def test_site_runs_every_role(stage):
    run = stage("site")["run"]
    assert run.returncode == 0, explain(run)
    ran = {t.role for t in run.tasks() if not t.skipped}
    assert {f"do_solutions.gtc_demo.{role}" for role in ROLES} <= ran, ran
    print(stage("site")["report"])


def test_the_cluster_only_ever_had_loopback_addresses(stage, rehearsal):
    """Webhooks, APIServices and Services the real charts made: kube-apiserver never dials off this machine."""
    stage("site")
    assert rehearsal.cluster.non_loopback_addresses() == []


def test_site_made_the_cloud_resources(stage, rehearsal):
    stage("site")
    state = rehearsal.cloud_resources()
    assert [v["name"] for v in state["vpcs"]] == ["gtc-demo-dev-vpc"] or len(state["vpcs"]) == 1, state["vpcs"]
    (cluster,) = state["clusters"]
    sizes = sorted(p["size"] for p in cluster["node_pools"])
    assert "gpu-h100x8-640gb" in sizes, sizes
    assert len(state["shares"]) == 1


def test_site_installed_the_real_charts_from_the_mirror(stage, rehearsal):
    stage("site")
    releases = {r["name"]: r for r in rehearsal.helm_releases()}
    assert set(releases) == RELEASES
    assert all(r["status"] == "deployed" for r in releases.values()), releases
    served = [line for line in rehearsal.charts.requests if ".tgz" in line]
    for name in RELEASES:
        assert any(f"/charts/{name}-" in line for line in served), (name, served)


def test_the_graph_runs_on_the_gpu_node(stage, rehearsal):
    stage("site")
    core = rehearsal.cluster.core()
    pods = core.list_namespaced_pod("gtc-demo").items
    workers = [p for p in pods if "worker" in p.metadata.name and p.status.phase == "Running"]
    assert len(workers) == 2, [(p.metadata.name, p.status.phase) for p in pods]
    nodes = {n.metadata.name: n for n in core.list_node().items}
    for pod in workers:
        node = nodes[pod.spec.node_name]
        assert node.metadata.labels.get("doks.digitalocean.com/gpu-brand") == "nvidia", pod.spec.node_name
        gpus = sum(int((c.resources.limits or {}).get("nvidia.com/gpu", 0)) for c in pod.spec.containers)
        assert gpus == 4


def test_no_secret_reached_an_output_the_state_or_an_object(stage, rehearsal):
    """A distinct fake value in every secret variable; `site.yml -vvv` and `--check --diff -vvv`
    print none, the state directory holds none, and no object but a Secret holds one."""
    stage("check")
    runs = [" ".join(run.args[-4:]) for run in rehearsal.runs]
    assert any("-vvv" in run for run in runs), runs
    for run in rehearsal.runs:
        for name, value in FAKE_SECRETS.items():
            assert not any(form in run.output for form in secret_forms(value)), f"{name} in the output of {run.args}"
    assert files_holding(rehearsal.home, FAKE_SECRETS) == {}
    holding = rehearsal.objects_holding_secrets()
    assert holding["others"] == {}
    # The values did arrive where they are meant to (else this test would prove nothing): each in a Secret.
    # The DigitalOcean token is the deployer's own and external-dns's; Spaces keys feed model_sync's Jobs.
    assert set(holding["secrets"]) == set(FAKE_SECRETS), holding["secrets"]


# -- reruns -------------------------------------------------------------------

def test_second_run_changes_nothing(stage):
    result = stage("rerun")
    assert result["run"].returncode == 0, explain(result["run"])
    assert [(t.role, t.name) for t in result["run"].tasks() if t.changed] == []
    assert result["writes"] == []
    assert not any(result["objects_changed"].values()), result["objects_changed"]


def test_check_mode_writes_nothing(stage):
    result = stage("check")
    assert result["run"].returncode == 0, explain(result["run"])
    assert result["writes"] == []
    assert not any(result["objects_changed"].values()), result["objects_changed"]


# -- validation ------------------------------------------------------------------

def test_validate_checks_the_running_environment(stage):
    result = stage("validate")
    run = result["run"]
    assert run.returncode == 0, explain(run)
    assert result["writes"] == []
    assert not any(result["objects_changed"].values()), result["objects_changed"]


def test_validate_fails_when_the_frontend_does_not_answer(stage, rehearsal):
    stage("validate")
    dead = {key: "http://127.0.0.1:9" for key in rehearsal.frontend_urls}
    run = rehearsal.run("playbooks/validate.yml", "-e",
                        json.dumps({"dynamo_verify_urls": dead, "dynamo_validate_timeout": 5}), json_output=True)
    assert run.returncode != 0, explain(run)
    failed = run.failed_tasks()
    assert [(t.role, t.action) for t in failed] == [("do_solutions.gtc_demo.dynamo", "do_solutions.gtc_demo.validate_inference")], explain(run)
    # Every frontend was tried, and each one's failure says where.
    attempts = failed[0].result["results"]
    assert [a["item"]["id"] for a in attempts] == list(rehearsal.frontend_urls)
    assert all(a["failed"] for a in attempts), attempts


# -- changes a user makes -------------------------------------------------------

def test_tag_dynamo_reruns_only_dynamo(stage):
    result = stage("tags")
    run = result["run"]
    assert run.returncode == 0, explain(run)
    # Other roles run only their always-tagged input checks and read-only outputs: no task of theirs
    # that writes anything runs, and none changes anything.
    writers = {"kubernetes.core.k8s", "kubernetes.core.helm", "ansible.builtin.copy", "ansible.builtin.template",
               "ansible.builtin.file", "ansible.builtin.pip", "do_solutions.gtc_demo.do_vpc",
               "do_solutions.gtc_demo.do_kubernetes_cluster", "do_solutions.gtc_demo.do_kubernetes_node_pool",
               "do_solutions.gtc_demo.do_nfs_share", "do_solutions.gtc_demo.supervisor_programs"}
    others = [t for t in run.tasks() if t.role != "do_solutions.gtc_demo.dynamo" and not t.skipped]
    assert others, "the preflight and the outputs of the other roles run with any tag"
    assert [(t.role, t.name) for t in others if t.changed or t.action in writers] == []
    assert worker(result["graph"])["replicas"] == 1
    assert result["writes"] == []
    changed = result["objects_changed"]
    assert changed["changed"] and all("DynamoGraphDeployment" in k or "ConfigMap/gtc-demo/" in k
                                      for k in changed["changed"]), changed
    assert not any(k.startswith(("Job/", "Secret/")) for k in changed["added"] + changed["removed"]), changed


def test_a_model_change_resyncs_and_redeploys_in_one_run(stage):
    result = stage("model_change")
    run = result["run"]
    assert run.returncode == 0, explain(run)
    before, after = result["before"], result["after"]
    main = next(c for c in worker(after["graph"])["podTemplate"]["spec"]["containers"] if c["name"] == "main")
    assert OTHER_MODEL in " ".join(main.get("args", []) + main.get("command", [])), main
    assert worker(after["graph"])["replicas"] == 2  # the inventory's, back from --tags dynamo's 1
    rollout = worker(after["graph"])["podTemplate"]["metadata"]["annotations"]["gtc-demo/rollout"]
    assert rollout != worker(before["graph"])["podTemplate"]["metadata"]["annotations"]["gtc-demo/rollout"]
    assert len(after["jobs"] - before["jobs"]) == 2, (before["jobs"], after["jobs"])
    assert after["loadgen"] != before["loadgen"], "the load generator was not rolled for the new model"


# -- teardown ----------------------------------------------------------------

def test_teardown_leaves_the_cloud_empty_and_the_cluster_as_it_was(stage):
    result = stage("teardown")
    assert result["run"].returncode == 0, explain(result["run"])
    cloud = result["cloud"]
    assert not (cloud["vpcs"] or cloud["clusters"] or cloud["shares"] or cloud["registry"]), cloud
    left = result["left"]
    # Deleting the DOKS cluster deletes everything in it; before that, Stack 2's
    # teardown removes what it made, except what Helm keeps by design: CRDs
    # (a chart's crds/ folder is never deleted on uninstall) and objects marked
    # helm.sh/resource-policy: keep (cert-manager's CRDs, KAI's default queues).
    kept = [k for k in left["added"] if k.startswith("CustomResourceDefinition/") or k.endswith(" (kept)")]
    assert [k for k in left["added"] if k not in kept] == [], left["added"]
    assert left["removed"] == [] and left["changed"] == [], left
    assert not rehearsal_nodes(result), "the GPU and CPU pools' nodes are still in the cluster"


def test_second_teardown_changes_nothing(stage):
    result = stage("teardown_again")
    assert result["run"].returncode == 0, explain(result["run"])
    assert [(t.role, t.name) for t in result["run"].tasks() if t.changed] == []
    assert result["writes"] == []
