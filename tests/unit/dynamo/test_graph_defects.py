"""The DynamoGraphDeployment the dynamo role renders, against what the Dynamo
operator and the TensorRT-LLM worker of the pinned release read from it.

Upstream (ai-dynamo/dynamo; tests/stand_ins/README.md has the commit):
- deploy/operator/internal/consts/consts.go: the annotation
  nvidia.com/kai-scheduler-queue, the pod label kai.scheduler/queue, the
  default queue "dynamo", the annotation nvidia.com/enable-grove;
- deploy/operator/internal/dynamo/grove.go: resolveKaiSchedulerQueueName reads
  the DGD's metadata annotations (not its labels), ensureQueueExists fails the
  reconcile when the scheduling.run.ai/v2 Queue is missing, and
  injectKaiSchedulerIfEnabled overwrites the pods' queue label;
- deploy/operator/internal/controller/dgd_workload_provider.go: Grove unless
  the annotation says "false";
- components/src/dynamo/trtllm/workers/llm_worker.py (and the same file in the
  pinned wheel): DEFAULT_KV_EVENT_BUFFER_MAX_SIZE, kept only when the engine
  config leaves event_buffer_max_size unset.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from dynamo_render import main_container  # type: ignore[import-not-found]

QUEUE_ANNOTATION = "nvidia.com/kai-scheduler-queue"
GROVE_ANNOTATION = "nvidia.com/enable-grove"


# --- 3. KAI queue -------------------------------------------------------------

@pytest.mark.parametrize("scenario", ["dev", "kind"])
def test_graph_names_the_kai_queue_the_platform_creates(rendered, scenario):
    r = rendered[scenario]
    annotations = r.graph["metadata"].get("annotations") or {}
    assert QUEUE_ANNOTATION in annotations, (
        "the operator reads the queue from the DGD annotation nvidia.com/kai-scheduler-queue; without it it "
        f"uses 'dynamo', which nothing creates. Annotations: {sorted(annotations)}")
    queue = annotations[QUEUE_ANNOTATION]
    values = r.yaml("values-dynamo-platform.yaml")
    created = values["kai-scheduler"]["defaultQueue"]
    assert created["createDefaultQueue"] is True
    # One shared input (gtc_demo_kai_queue) names the queue for both roles.
    assert queue == created["childName"] == r.vars["gtc_demo_kai_queue"]
    # Labels the operator overwrites must not disagree with the annotation.
    labels = [r.graph["spec"].get("labels") or {}] + [
        (c["podTemplate"].get("metadata") or {}).get("labels") or {} for c in r.graph["spec"]["components"]]
    assert {lab["kai.scheduler/queue"] for lab in labels if "kai.scheduler/queue" in lab} <= {queue}


# --- 5. Frontends have the model ----------------------------------------------

@pytest.mark.parametrize("scenario", ["dev", "kind"])
def test_frontends_mount_the_model_volume_read_only_where_the_worker_reads_it(rendered, scenario):
    r = rendered[scenario]
    worker = r.components()["worker"]
    args = main_container(worker)["args"]
    flag = "--model" if "--model" in args else "--model-path"
    model_path = args[args.index(flag) + 1]
    worker_mount = next(m for m in main_container(worker)["volumeMounts"] if m["name"] == "models")
    assert model_path.startswith(worker_mount["mountPath"] + "/"), (model_path, worker_mount)
    assert r.frontends(), "no frontend in the graph"
    for frontend in r.frontends():
        spec = frontend["podTemplate"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        mounts = [m for m in main_container(frontend).get("volumeMounts") or []
                  if m["name"] in volumes and "persistentVolumeClaim" in volumes[m["name"]]]
        assert mounts, f"frontend {frontend['name']} mounts no model volume: the tokenizer would come from Hugging Face"
        (mount,) = mounts
        claim = volumes[mount["name"]]["persistentVolumeClaim"]
        assert claim["claimName"] == r.vars["dynamo_k8s_model_pvc"]
        assert claim.get("readOnly") is True and mount.get("readOnly") is True
        assert mount["mountPath"] == worker_mount["mountPath"], "the worker registers paths under its own mount"


# --- 6. Event buffer ----------------------------------------------------------

def _pinned_default_buffer(dynamo_python: Path) -> int:
    # Asked of the interpreter: benchmarks/run prints a per-checkout launcher, not the venv's own python.
    where = subprocess.run([str(dynamo_python), "-c", "import dynamo; print(list(dynamo.__path__)[0])"],
                           capture_output=True, text=True, timeout=120, check=True).stdout.strip().splitlines()[-1]
    source = (Path(where) / "trtllm" / "workers" / "llm_worker.py").read_text()
    match = re.search(r"^DEFAULT_KV_EVENT_BUFFER_MAX_SIZE\s*=\s*([0-9_]+)", source, re.MULTILINE)
    assert match, "DEFAULT_KV_EVENT_BUFFER_MAX_SIZE not found in the pinned dynamo.trtllm"
    return int(match.group(1).replace("_", ""))


def test_engine_config_does_not_lower_dynamos_kv_event_buffer(rendered, dynamo_python):
    default = _pinned_default_buffer(dynamo_python)
    assert default >= 100_000, default
    engine = yaml.safe_load(rendered["dev"].text("trtllm_engine.yaml"))
    size = engine["kv_cache_config"].get("event_buffer_max_size")
    # Dynamo keeps an explicit value and applies its default only when unset or 0.
    assert size is None or size >= default, (
        f"event_buffer_max_size {size} lowers the pinned Dynamo's default of {default}: "
        "TensorRT-LLM discards KV events once its buffer is full")
    configmap = yaml.safe_load(rendered["dev"].text("engine_configmap.yaml"))
    assert yaml.safe_load(configmap["data"]["engine.yaml"]) == engine


# --- 10. Grove fallback -------------------------------------------------------

def test_grove_is_the_operators_default_and_can_be_turned_off(rendered):
    on = rendered["dev"].graph["metadata"].get("annotations") or {}
    off = rendered["dev_no_grove"].graph["metadata"].get("annotations") or {}
    assert GROVE_ANNOTATION not in on, "Grove is what the operator picks without the annotation"
    assert off.get(GROVE_ANNOTATION) == "false", (
        f"dynamo_k8s_grove=false must set {GROVE_ANNOTATION}: 'false' (plain Deployments); got {off}")
    # Nothing else differs.
    a, b = rendered["dev"].graph, rendered["dev_no_grove"].graph
    b["metadata"]["annotations"].pop(GROVE_ANNOTATION)
    assert a == b
