"""The local demo, run the way a newcomer runs it: site.yml on inventories/local.

The session fixture `local_demo` (tests/integration/conftest.py) performed the
first run; these tests check what it built, rerun it, and tear it down.
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from helpers import processes_mentioning

pytestmark = pytest.mark.integration


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def _stream_chat(base_url: str, model: str, text: str) -> tuple[str, dict]:
    """Send a streaming chat completion; return the streamed text and the last nvext."""
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
    content, nvext = [], {}
    with urllib.request.urlopen(req, timeout=60) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: "):])
            for choice in chunk.get("choices", []):
                content.append(choice.get("delta", {}).get("content") or "")
            nvext = chunk.get("nvext") or nvext
    return "".join(content), nvext


def test_first_run_built_the_demo(local_demo) -> None:
    run = local_demo.first_run
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap["failed"] == 0
    assert run.recap["changed"] > 0, "a first run on an empty GTC_DEMO_HOME must change things"
    # validate_inference ran through both frontends as the last step of dynamo.
    assert "Check inference end to end through each frontend" in run.output


def test_both_frontends_serve_the_model(local_demo) -> None:
    for url in (local_demo.kv_url, local_demo.round_robin_url):
        served = [m["id"] for m in _get_json(f"{url}/v1/models")["data"]]
        assert local_demo.model in served, (url, served)
        text, _nvext = _stream_chat(url, local_demo.model, "Explain KV cache aware routing in one line.")
        # The offline tokenizer turns the mocker's token ids into words.
        assert len(text.split()) >= 5, repr(text)


def test_round_robin_uses_every_replica(local_demo) -> None:
    workers = set()
    for i in range(4 * local_demo.replicas):
        _text, nvext = _stream_chat(local_demo.round_robin_url, local_demo.model, f"question number {i}")
        workers.add(nvext["worker_id"]["decode_worker_id"])
    assert len(workers) == local_demo.replicas, workers


def test_kv_frontend_reuses_the_cache_of_a_conversation(local_demo) -> None:
    document = " ".join(f"section {i} describes routing tables and cache blocks" for i in range(200))
    _text, first = _stream_chat(local_demo.kv_url, local_demo.model, document)
    _text, again = _stream_chat(local_demo.kv_url, local_demo.model, document)
    assert again["worker_id"]["decode_worker_id"] == first["worker_id"]["decode_worker_id"]
    assert again["timing"]["kv_hit_rate"] > 0.9, again


def test_worker_metrics_are_served(local_demo) -> None:
    for url in local_demo.worker_metrics_urls:
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            assert b"dynamo_" in resp.read()


def test_second_run_changes_nothing(local_demo) -> None:
    run = local_demo.playbook("site.yml")
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap["changed"] == 0, run.changed_tasks()


def test_check_and_diff_mode_on_an_unchanged_demo(local_demo) -> None:
    run = local_demo.playbook("site.yml", "--check", "--diff")
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap["changed"] == 0, run.changed_tasks()


def test_check_mode_reports_a_changed_setting_without_applying_it(local_demo) -> None:
    conf = local_demo.home / "supervisor" / "conf.d" / "gtc-dynamo.conf"
    before = conf.read_text()
    run = local_demo.playbook("site.yml", "--check", "--diff", "-e", "dynamo_local_speedup_ratio=2.0")
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap["changed"] >= 1
    assert "--speedup-ratio 2.0" in run.output  # the diff shows what would change
    assert conf.read_text() == before


def test_tags_rerun_only_one_part(local_demo) -> None:
    run = local_demo.playbook("site.yml", "--tags", "dynamo")
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap["changed"] == 0, run.changed_tasks()
    assert "do_solutions.gtc_demo.dynamo : Write the supervisord programs" in run.output
    assert "do_solutions.gtc_demo.infra : Install supervisord" not in run.output
    assert "do_solutions.gtc_demo.model_sync : Write the offline tokenizer" not in run.output


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("dynamo_replicas=3", "dynamo_replicas"),
        ("dynamo_tensor_parallel_size=3", "dynamo_tensor_parallel_size"),
        ("gtc_demo_model=", "model_sync_model"),
        ("infra_local_root=relative/path", "infra_local_root"),
        ("dynamo_local_worker_metrics_port_base=39100", "dynamo_local_worker_metrics_port_base"),
    ],
)
def test_bad_input_fails_before_anything_changes(local_demo, override: str, named: str) -> None:
    conf_dir = local_demo.home / "supervisor" / "conf.d"
    before = {p.name: p.read_text() for p in conf_dir.iterdir()}
    run = local_demo.playbook("site.yml", "-e", override)
    assert run.returncode != 0
    assert named in run.output, run.output[-3000:]
    assert run.recap["changed"] == 0, run.changed_tasks()
    assert {p.name: p.read_text() for p in conf_dir.iterdir()} == before


@pytest.mark.local_demo_teardown
def test_teardown_leaves_nothing_behind(local_demo) -> None:
    home: Path = local_demo.home
    assert processes_mentioning(str(home)), "the demo should be running before teardown"
    run = local_demo.playbook("playbooks/teardown.yml")
    assert run.returncode == 0, run.output[-4000:]
    assert processes_mentioning(str(home)) == []
    assert not home.exists()
    again = local_demo.playbook("playbooks/teardown.yml")
    assert again.returncode == 0, again.output[-4000:]
    assert again.recap["changed"] == 0, again.changed_tasks()
