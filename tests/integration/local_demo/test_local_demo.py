"""The local demo, run the way a newcomer runs it: site.yml on inventories/local.

The session fixture `local_demo` (tests/integration/conftest.py) performed the
first run; these tests check what it built, rerun it, and tear it down.
"""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from gtc_loadgen.chat_stream import ChatStream
from helpers import processes_mentioning

pytestmark = pytest.mark.integration


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def _stream_chat(base_url: str, model: str, text: str) -> ChatStream:
    """Send a streaming chat completion; return the stream as the collection's one parser read it."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 12,
        "stream": True,
        "stream_options": {"include_usage": True},
        "nvext": {"extra_fields": ["timing", "worker_id"]},
    }
    req = urllib.request.Request(
        f"{base_url}/v1/chat/completions", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    stream = ChatStream()
    with urllib.request.urlopen(req, timeout=60) as resp:
        for raw in resp:
            stream.feed_line(raw, time.monotonic())
    stream.close()
    assert stream.finished, "the stream ended without [DONE]"
    return stream


def test_first_run_built_the_demo(local_demo) -> None:
    run = local_demo.first_run
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap["failed"] == 0
    assert run.recap["changed"] > 0, "a first run on an empty GTC_DEMO_HOME must change things"


def test_every_frontend_serves_the_model(local_demo) -> None:
    assert list(local_demo.frontends) == ["kv", "round_robin"]  # roles/_common's order
    for url in local_demo.frontends.values():
        served = [m["id"] for m in _get_json(f"{url}/v1/models")["data"]]
        assert local_demo.model in served, (url, served)
        stream = _stream_chat(url, local_demo.model, "Explain KV cache aware routing in one line.")
        # The offline tokenizer turns the mocker's token ids into words.
        assert len(stream.text.split()) >= 5, repr(stream.text)


def test_round_robin_uses_every_replica(local_demo) -> None:
    workers = set()
    for i in range(4 * local_demo.replicas):
        stream = _stream_chat(local_demo.round_robin_url, local_demo.model, f"question number {i}")
        workers.add(stream.worker_id)
    assert len(workers) == local_demo.replicas, workers


def test_kv_frontend_reuses_the_cache_of_a_conversation(local_demo) -> None:
    document = " ".join(f"section {i} describes routing tables and cache blocks" for i in range(200))
    first = _stream_chat(local_demo.kv_url, local_demo.model, document)
    again = _stream_chat(local_demo.kv_url, local_demo.model, document)
    assert again.worker_id == first.worker_id
    assert again.server_timing("kv_hit_rate") > 0.9, again.nvext


def test_worker_metrics_are_served(local_demo) -> None:
    for url in local_demo.worker_metrics_urls:
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            assert b"dynamo_" in resp.read()


def test_second_run_changes_nothing(local_demo) -> None:
    run = local_demo.playbook("site.yml", json_output=True)
    assert run.returncode == 0, run.output[-4000:]
    assert [(t.role, t.name) for t in run.tasks() if t.changed] == []
    # The rerun still checked inference through every frontend (dynamo's verify).
    checks = [t for t in run.tasks() if t.action == "do_solutions.gtc_demo.validate_inference" and not t.skipped]
    # One looped task, one result per frontend, each with the URL it answered on.
    answered = [r["url"] for t in checks for r in t.result.get("results", [t.result]) if not r.get("skipped")]
    assert sorted(answered) == sorted(local_demo.frontends.values()), answered


def test_stop_keeps_what_is_installed_and_start_brings_it_back(local_demo) -> None:
    """make stop, then make start (site.yml): nothing is rebuilt, and every frontend answers again."""
    home: Path = local_demo.home
    venvs = sorted(p.name for p in (home / "venvs").iterdir())
    stop = local_demo.playbook("playbooks/stop.yml", json_output=True)
    assert stop.returncode == 0, stop.output[-4000:]
    assert [t.name for t in stop.tasks() if t.changed] == ["Stop supervisord and every program it runs"]
    assert processes_mentioning(str(home)) == [], "stop leaves no program of the demo running"
    assert sorted(p.name for p in (home / "venvs").iterdir()) == venvs, "stop keeps the venvs"
    again = local_demo.playbook("playbooks/stop.yml", json_output=True)
    assert again.returncode == 0 and not [t for t in again.tasks() if t.changed], again.output[-4000:]
    started = time.monotonic()
    start = local_demo.playbook("site.yml", json_output=True)
    seconds = time.monotonic() - started
    assert start.returncode == 0, start.output[-4000:]
    # Only supervisord's start is a change: no venv, model or program is made again.
    assert [(t.role, t.name) for t in start.tasks() if t.changed] == [
        ("do_solutions.gtc_demo.infra", "Run supervisord (reloaded when its configuration changed)")], [
        (t.role, t.name) for t in start.tasks() if t.changed]
    for url in local_demo.frontends.values():
        assert _get_json(f"{url}/v1/models")["data"][0]["id"] == local_demo.model
    print(f"make start after make stop: {seconds:.0f} s")


def test_check_and_diff_mode_on_an_unchanged_demo(local_demo) -> None:
    run = local_demo.playbook("site.yml", "--check", "--diff", json_output=True)
    assert run.returncode == 0, run.output[-4000:]
    assert [(t.role, t.name) for t in run.tasks() if t.changed] == []


def test_check_mode_reports_a_changed_setting_without_applying_it(local_demo) -> None:
    conf = local_demo.home / "supervisor" / "conf.d" / "gtc-dynamo.conf"
    before = conf.read_text()
    run = local_demo.playbook("site.yml", "--check", "--diff", "-e", "dynamo_local_speedup_ratio=2.0")
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap["changed"] >= 1
    assert "--speedup-ratio 2.0" in run.output  # the diff shows what would change
    assert conf.read_text() == before


def test_tags_rerun_only_one_part(local_demo) -> None:
    run = local_demo.playbook("site.yml", "--tags", "dynamo", json_output=True)
    assert run.returncode == 0, run.output[-4000:]
    assert [(t.role, t.name) for t in run.tasks() if t.changed] == []
    # Only dynamo reconciles its processes; the other roles only publish their outputs.
    work = {"do_solutions.gtc_demo.supervisor_programs", "do_solutions.gtc_demo.supervisord",
            "ansible.builtin.pip", "ansible.builtin.command", "ansible.builtin.copy", "ansible.builtin.template"}
    ran = {(t.role, t.action) for t in run.tasks() if t.action in work and not t.skipped}
    assert ("do_solutions.gtc_demo.dynamo", "do_solutions.gtc_demo.supervisor_programs") in ran, ran
    assert {role for role, _action in ran} == {"do_solutions.gtc_demo.dynamo"}, ran


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("dynamo_replicas=3", "dynamo_replicas"),
        ("dynamo_tensor_parallel_size=3", "dynamo_tensor_parallel_size"),
        ("gtc_demo_model=", "gtc_demo_model"),
        ("gtc_demo_local_root=relative/path", "gtc_demo_local_root"),
        ("dynamo_local_worker_metrics_port_base=39100", "dynamo_local_worker_metrics_port_base"),
    ],
)
def test_bad_input_fails_before_anything_changes(local_demo, override: str, named: str) -> None:
    conf_dir = local_demo.home / "supervisor" / "conf.d"
    before = {p.name: p.read_text() for p in conf_dir.iterdir()}
    run = local_demo.playbook("site.yml", "-e", override, json_output=True)
    assert run.returncode != 0
    failed = run.failed_tasks()
    assert len(failed) == 1 and named in failed[0].result["msg"], [(t.role, t.name, t.result.get("msg")) for t in failed]
    assert [(t.role, t.name) for t in run.tasks() if t.changed] == []
    assert {p.name: p.read_text() for p in conf_dir.iterdir()} == before


@pytest.mark.local_demo_teardown
def test_teardown_leaves_nothing_behind(local_demo) -> None:
    home: Path = local_demo.home
    assert processes_mentioning(str(home)), "the demo should be running before teardown"
    run = local_demo.playbook("playbooks/teardown.yml")
    assert run.returncode == 0, run.output[-4000:]
    assert processes_mentioning(str(home)) == []
    assert not home.exists()
    again = local_demo.playbook("playbooks/teardown.yml", json_output=True)
    assert again.returncode == 0, again.output[-4000:]
    assert [(t.role, t.name) for t in again.tasks() if t.changed] == []
