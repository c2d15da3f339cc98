"""validate_inference against the real Dynamo 1.6.1 frontends and mocker workers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.openai_client import (
    InferenceValidation,
    ModelNotServed,
    OpenAIClient,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

# Long enough to fill several 32-token KV blocks, so a repeat can hit the cache.
SYSTEM_PROMPT = ' '.join(['You are the assistant at the DigitalOcean booth and you explain how the router '
                          'sends each turn of a conversation to the worker that already holds its prefix.'] * 8)


def run_ansible(**module_args: Any) -> dict[str, Any]:
    """Run the module the way a playbook does: by its FQCN through ansible."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json',
               ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([str(REPO / '.venv' / 'bin' / 'ansible'), 'localhost', '-m',
                           'do_solutions.gtc_demo.validate_inference', '-a', json.dumps(module_args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)
    try:
        return json.loads(proc.stdout)['plays'][0]['tasks'][0]['hosts']['localhost']
    except (ValueError, KeyError, IndexError):
        pytest.fail('ansible gave no JSON result (rc %d):\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr))


def test_kv_frontend_answers_with_timing_worker_and_kv_hit_rate(dynamo_frontends):
    result = run_ansible(url=dynamo_frontends['kv_url'], model=dynamo_frontends['model'], max_tokens=12)
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] is False
    assert dynamo_frontends['model'] in result['models']
    assert result['answer'].strip() and result['stream']['answer'].strip()
    assert result['stream']['content_chunks'] >= 1
    assert result['ttft_ms'] > 0 and result['server_ttft_ms'] > 0
    assert result['usage']['completion_tokens'] == 12 and result['usage']['prompt_tokens'] > 0
    assert isinstance(result['worker_id'], int) and result['worker_id'] > 0
    assert isinstance(result['kv_hit_rate'], float) and 0.0 <= result['kv_hit_rate'] <= 1.0
    assert result['cached_tokens'] is not None
    assert result['empty_content'] is False


def test_round_robin_frontend_answers_without_kv_hit_rate(dynamo_frontends):
    result = run_ansible(url=dynamo_frontends['round_robin_url'] + '/v1', model=dynamo_frontends['model'])
    assert not result.get('failed'), result.get('msg')
    assert result['answer'].strip() and result['ttft_ms'] > 0
    assert result['worker_id'] > 0
    assert result['kv_hit_rate'] is None


def test_repeated_prefix_hits_the_kv_cache(dynamo_frontends):
    """The demo's point, seen through the module: the same long prefix again is served from cache."""
    client = OpenAIClient(dynamo_frontends['kv_url'], retries=2, retry_delay=1, timeout=30)
    messages = [{'role': 'system', 'content': SYSTEM_PROMPT},
                {'role': 'user', 'content': 'Which worker holds my conversation?'}]
    runs = []
    for dummy in range(2):
        check = InferenceValidation(client, dynamo_frontends['model'], messages=messages, max_tokens=4, checks=['stream'])
        runs.append(check.run())
    first, second = runs
    assert first['usage']['prompt_tokens'] > 96  # at least three 32-token blocks
    assert second['kv_hit_rate'] > 0.5, (first['nvext'], second['nvext'])
    assert second['cached_tokens'] >= 96
    assert second['worker_id'] == first['worker_id']  # the KV router went back to the worker with the prefix


def test_model_not_served_names_what_dynamo_serves(dynamo_frontends):
    client = OpenAIClient(dynamo_frontends['kv_url'], retries=0)
    with pytest.raises(ModelNotServed) as failure:
        InferenceValidation(client, 'meta/not-this-one').run()
    assert dynamo_frontends['model'] in failure.value.msg
    assert failure.value.details['served_models'] == [dynamo_frontends['model']]


def test_dynamo_http_error_is_reported_with_status_and_body(dynamo_frontends):
    # Skip the model list so the completion itself meets Dynamo's 404.
    result = run_ansible(url=dynamo_frontends['kv_url'], model='meta/not-this-one', checks=['chat'], retries=0)
    assert result['failed'] is True
    assert result['status'] == 404
    assert 'Model not found' in result['msg'] and 'returned HTTP 404' in result['msg']
