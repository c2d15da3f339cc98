#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: wait_for_dynamo_frontends
short_description: Wait until every Dynamo frontend lists the model and sees every worker
version_added: 0.2.0
description:
  - Polls each Dynamo frontend of O(frontends), all in one task, until its V(/v1/models) lists
    O(model) and its V(/health) lists at least O(workers) distinct worker instances of the
    C(generate) endpoint.
  - Waiting for every worker matters for a KV-aware router, since a frontend that has discovered one
    worker of two sends the first conversations all to it.
  - Connection failures and HTTP errors count as not ready yet; after O(timeout) the task fails
    with what each frontend that is not ready last answered.
  - Only reads; RV(ignore:changed) is always V(false).
author:
  - DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - do_solutions.gtc_demo.checks
attributes:
  check_mode:
    support: full
    details:
      - In check mode the frontends are asked once; the task does not wait and does not fail.
options:
  frontends:
    description:
      - Routing id to the frontend's base URL (without V(/v1)), for example C(kv) to V(http://127.0.0.1:8000).
    type: dict
    required: true
  model:
    description: The served model name each frontend must list.
    type: str
    required: true
  workers:
    description: The least number of worker instances each frontend must see.
    type: int
    default: 1
  timeout:
    description: Seconds to wait for all of them.
    type: int
    default: 240
  poll_interval:
    description: Seconds between two rounds of looks.
    type: float
    default: 1
  request_timeout:
    description: Seconds one request may take.
    type: float
    default: 5
notes:
  - V(/health) of Dynamo 1.6.1's frontend lists C(instances), one entry per endpoint of each discovered
    worker, each with its C(endpoint) and C(instance_id).
"""

EXAMPLES = r"""
- name: Wait for the local frontends
  do_solutions.gtc_demo.wait_for_dynamo_frontends:
    frontends:
      kv: http://127.0.0.1:8000
      round_robin: http://127.0.0.1:8001
    model: nvidia/Llama-3.1-70B-Instruct-FP8
    workers: 2
"""

RETURN = r"""
frontends:
  description: What each frontend last answered.
  returned: always
  type: dict
  sample:
    kv: {"url": "http://127.0.0.1:8000", "ready": true, "models": ["nvidia/Llama-3.1-70B-Instruct-FP8"], "workers": 2, "error": ""}
ready:
  description: Whether every frontend is ready.
  returned: always
  type: bool
  sample: true
elapsed:
  description: Seconds waited.
  returned: always
  type: float
  sample: 1.2
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url


def _get_json(url, timeout):
    response = open_url(url, method='GET', timeout=timeout, headers={'Accept': 'application/json'},
                        use_proxy=False, follow_redirects='none')
    return json.loads(response.read())


def look(base_url, model, workers, timeout):
    """One look at one frontend: {url, ready, models, workers, error}."""
    seen = dict(url=base_url, ready=False, models=[], workers=0, error='')
    base = base_url.rstrip('/')
    try:
        listed = _get_json(base + '/v1/models', timeout)
        seen['models'] = [m.get('id') for m in listed.get('data') or [] if isinstance(m, dict)]
        health = _get_json(base + '/health', timeout)
        seen['workers'] = len({i.get('instance_id') for i in health.get('instances') or []
                               if isinstance(i, dict) and i.get('endpoint') == 'generate'})
    except Exception as exc:  # pylint: disable=broad-except
        # Not up yet (refused, HTTP 5xx while starting, not JSON yet): look again.
        seen['error'] = '%s: %s' % (type(exc).__name__, exc)
        return seen
    if model not in seen['models']:
        seen['error'] = 'does not list %s yet (lists: %s)' % (model, ', '.join(map(str, seen['models'])) or 'nothing')
    elif seen['workers'] < workers:
        seen['error'] = 'sees %d of %d workers' % (seen['workers'], workers)
    else:
        seen['ready'] = True
    return seen


def main():
    module = AnsibleModule(
        argument_spec=dict(
            frontends=dict(type='dict', required=True),
            model=dict(type='str', required=True),
            workers=dict(type='int', default=1),
            timeout=dict(type='int', default=240),
            poll_interval=dict(type='float', default=1.0),
            request_timeout=dict(type='float', default=5.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not p['frontends']:
        module.fail_json(msg='frontends is empty')
    start = time.monotonic()
    seen = {}
    while True:
        for frontend_id, url in p['frontends'].items():
            if not seen.get(frontend_id, {}).get('ready'):
                seen[frontend_id] = look(str(url), p['model'], p['workers'], p['request_timeout'])
        ready = all(s['ready'] for s in seen.values())
        elapsed = time.monotonic() - start
        if ready or module.check_mode or elapsed >= p['timeout']:
            break
        time.sleep(p['poll_interval'])
    result = dict(changed=False, ready=ready, frontends=seen, elapsed=round(elapsed, 3))
    if ready or module.check_mode:
        module.exit_json(**result)
    waiting = '; '.join('%s (%s): %s' % (k, v['url'], v['error']) for k, v in seen.items() if not v['ready'])
    module.fail_json(msg='Dynamo frontends not ready after %ss: %s' % (p['timeout'], waiting), **result)


if __name__ == '__main__':
    main()
