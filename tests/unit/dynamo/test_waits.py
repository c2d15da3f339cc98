"""The two waits of the dynamo role, as modules.

- wait_for_dynamo_graph's verdict on a DynamoGraphDeployment's status
  (plugins/module_utils/dynamo_graph.py): ready only for the current
  generation, failed at once when the operator fails that generation. The
  statuses are the shapes the operator writes (deploy/operator/internal/
  controller/dgd_workload_program.go; the same as tests/stand_ins/
  dynamo_operator.py writes, which tests/integration/operator runs the role
  against).
- wait_for_dynamo_frontends against scripted frontends on 127.0.0.1: every
  frontend must list the model and see every worker in /health.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers import REPO

sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins"))
sys.path.insert(0, str(REPO / ".collections"))
from openai_fake_server import MODEL, FakeOpenAI, Reply, models_body  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.dynamo_graph import (  # noqa: E402  pylint: disable=wrong-import-position
    FAILED, PENDING, READY, GraphWaiter, TransientError, verdict)


def graph(generation: int, state: str | None = None, observed: int | None = None,
          ready: tuple[str, int] | None = None, message: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {}
    if state:
        status["state"] = state
    if observed is not None:
        status["observedGeneration"] = observed
    if ready:
        status["conditions"] = [{"type": "Ready", "status": ready[0], "observedGeneration": ready[1],
                                 "reason": "r", "message": message}]
    return {"metadata": {"name": "gtc-demo", "generation": generation}, "status": status}


def test_ready_only_for_the_current_generation():
    assert verdict(graph(3, "successful", 3, ("True", 3)))[0] == READY
    # The spec was just changed: the Ready of generation 2 says nothing about 3.
    assert verdict(graph(3, "successful", 2, ("True", 2)))[0] == PENDING
    assert verdict(graph(3, "pending", 3, ("False", 3)))[0] == PENDING
    assert verdict(None)[0] == "absent"


def test_failed_for_the_current_generation_stops_the_wait_with_the_operators_message():
    failed = graph(2, "failed", None, ("False", 2), "queue 'no-such-queue' not found in cluster")
    assert verdict(failed) == (FAILED, "queue 'no-such-queue' not found in cluster")
    # A failure of an older generation may be fixed by the new one.
    assert verdict(graph(3, "failed", None, ("False", 2), "old"))[0] == PENDING
    # The waiter stops at the first look, not after its timeout.
    slept = []
    state, _message, _graph, attempts, _elapsed = GraphWaiter(lambda: failed, timeout=3600, interval=15,
                                                              sleep=slept.append).run()
    assert (state, attempts, slept) == (FAILED, 1, [])


def test_the_waiter_looks_until_ready_and_retries_transient_errors():
    seen = [TransientError("HTTP 503"), graph(2, "pending", 1, ("True", 1)), graph(2, "successful", 2, ("True", 2))]
    clock = [0.0]

    def get_graph():
        item = seen.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    waiter = GraphWaiter(get_graph, timeout=60, interval=5, clock=lambda: clock[0],
                         sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    state, _message, last, attempts, elapsed = waiter.run()
    assert (state, attempts, elapsed) == (READY, 3, 10.0) and last["status"]["observedGeneration"] == 2


def test_the_waiter_gives_up_after_the_timeout():
    clock = [0.0]
    waiter = GraphWaiter(lambda: graph(2, "pending", 1, ("False", 1)), timeout=12, interval=5, clock=lambda: clock[0],
                         sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    state, message, _graph, attempts, elapsed = waiter.run()
    assert state == PENDING and elapsed == 12 and attempts == 4 and "generation 2" in message


def run_module(module: str, **args: Any) -> dict[str, Any]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", "-m", module, "-a", json.dumps(args)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def health(*workers: int) -> Reply:
    instances = [{"component": "backend", "endpoint": e, "instance_id": w, "namespace": "dynamo"}
                 for w in workers for e in ("generate", "clear_kv_blocks")]
    return Reply(body=json.dumps({"status": "healthy", "instances": instances}).encode())


def test_frontends_wait_until_each_lists_the_model_and_every_worker():
    ready = FakeOpenAI().on("GET", "/v1/models", Reply(body=models_body(MODEL))).on("GET", "/health", health(1, 2)).start()
    # Lists nothing, then the model with one worker, then both workers.
    late = (FakeOpenAI()
            .on("GET", "/v1/models", Reply(body=models_body()), Reply(body=models_body(MODEL)))
            .on("GET", "/health", health(), health(7), health(7), health(7, 8)).start())
    try:
        result = run_module("do_solutions.gtc_demo.wait_for_dynamo_frontends", model=MODEL, workers=2,
                            frontends={"kv": ready.url, "round_robin": late.url}, poll_interval=0.2, timeout=60)
        assert not result.get("failed"), result.get("msg")
        assert result["ready"] is True and result["changed"] is False
        assert result["frontends"]["round_robin"]["workers"] == 2 and result["frontends"]["kv"]["workers"] == 2
        assert len(ready.requests("/health")) == 1  # a ready frontend is not asked again
        assert len(late.requests("/health")) >= 3
    finally:
        ready.stop()
        late.stop()


def test_frontends_wait_fails_naming_what_each_lacks():
    one = FakeOpenAI().on("GET", "/v1/models", Reply(body=models_body(MODEL))).on("GET", "/health", health(1)).start()
    try:
        result = run_module("do_solutions.gtc_demo.wait_for_dynamo_frontends", model=MODEL, workers=2,
                            frontends={"kv": one.url, "down": "http://127.0.0.1:9"}, poll_interval=0.2, timeout=2)
        assert result.get("failed") is True and result["ready"] is False
        assert f"kv ({one.url}): sees 1 of 2 workers" in result["msg"]
        assert "down (http://127.0.0.1:9): " in result["msg"]
    finally:
        one.stop()


def test_frontends_wait_in_check_mode_looks_once_and_does_not_fail():
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    start = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-i", "localhost,", "-c", "local", "--check",
         "-e", f"ansible_python_interpreter={sys.executable}", "-m", "do_solutions.gtc_demo.wait_for_dynamo_frontends",
         "-a", json.dumps({"model": MODEL, "frontends": {"down": "http://127.0.0.1:9"}, "timeout": 60})],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert not result.get("failed") and result["ready"] is False
    assert time.monotonic() - start < 30
