#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: wait_for_dynamo_graph
short_description: Wait until a DynamoGraphDeployment is Ready, or fail as soon as the operator fails it
version_added: 0.2.0
description:
  - Looks at a C(nvidia.com/v1beta1) DynamoGraphDeployment until the Dynamo operator reports the
    current generation ready (C(status.observedGeneration) is the generation and the C(Ready)
    condition of that generation is C(True)).
  - Fails at once, with the operator's message, when the operator reports state C(failed) for the
    current generation (for example a KAI queue that does not exist), instead of waiting for
    O(timeout).
  - A C(Ready) condition of an older generation does not count, so a graph whose spec was just
    changed is not taken for ready before the operator has seen the change. M(kubernetes.core.k8s)'s
    C(wait_condition) cannot tell the two apart.
  - Connection failures and HTTP 408, 429, 500, 502, 503 and 504 are retried until O(timeout); other
    API errors fail at once.
  - Never changes the cluster; RV(ignore:changed) is always V(false).
author:
  - DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - do_solutions.gtc_demo.checks
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module looks once and does not wait or fail on a graph that is not ready.
options:
  name:
    description: Name of the DynamoGraphDeployment.
    type: str
    required: true
  namespace:
    description: Its namespace.
    type: str
    required: true
  timeout:
    description: Seconds to wait for the graph to become ready.
    type: int
    default: 600
    aliases: [wait_timeout]
  poll_interval:
    description: Seconds between two looks.
    type: int
    default: 5
    aliases: [wait_sleep]
notes:
  - The status fields are those the operator of dynamo-platform 1.6.1 writes (ai-dynamo/dynamo
    C(deploy/operator/internal/controller/dgd_workload_program.go)).
"""

EXAMPLES = r"""
- name: Wait for the inference graph
  do_solutions.gtc_demo.wait_for_dynamo_graph:
    kubeconfig: "{{ gtc_demo_kubeconfig }}"
    name: gtc-demo
    namespace: gtc-demo
    timeout: 3600
    poll_interval: 15
"""

RETURN = r"""
ready:
  description: Whether the current generation is ready.
  returned: always
  type: bool
  sample: true
state:
  description: V(ready), V(failed), V(pending) (still on its way, or the time ran out) or V(absent).
  returned: always
  type: str
  sample: ready
message:
  description: The Ready condition's message, or what was seen.
  returned: always
  type: str
  sample: All resources are ready
generation:
  description: The graph's C(metadata.generation); V(null) when absent.
  returned: always
  type: int
  sample: 3
status:
  description: The graph's C(status) as last seen.
  returned: always
  type: dict
  sample: {"state": "successful", "observedGeneration": 3}
attempts:
  description: How many looks it took.
  returned: always
  type: int
  sample: 4
elapsed:
  description: Seconds waited.
  returned: always
  type: float
  sample: 12.5
"""

import json

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.dynamo_graph import ABSENT, FAILED, READY, GraphWaiter, TransientError

try:
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.exceptions import ApiException
except ImportError:  # kubernetes.core's module reports the missing library
    CustomObjectsApi = None  # type: ignore[misc,assignment]
    ApiException = None  # type: ignore[misc,assignment]

TRANSIENT_STATUSES = frozenset((408, 429, 500, 502, 503, 504))


def main():
    spec = dict(
        name=dict(type='str', required=True),
        namespace=dict(type='str', required=True),
        timeout=dict(type='int', default=600, aliases=['wait_timeout']),
        poll_interval=dict(type='int', default=5, aliases=['wait_sleep']),
    )
    spec.update(AUTH_ARG_SPEC)
    module = AnsibleK8SModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    if params['timeout'] < 0 or params['poll_interval'] < 1:
        module.fail_json(msg='timeout must be 0 or more and poll_interval 1 or more')
    clients = []

    def get_graph():
        try:
            if not clients:
                # Made in the loop: an API server that is not up yet is worth another look.
                clients.append(CustomObjectsApi(get_api_client(module).client.client))
            response = clients[0].get_namespaced_custom_object(
                'nvidia.com', 'v1beta1', params['namespace'], 'dynamographdeployments', params['name'],
                _preload_content=False, _request_timeout=30)
            return json.loads(response.data)
        except CoreException as exc:
            module.fail_json(msg='Cannot reach the Kubernetes API: %s' % exc, changed=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status in TRANSIENT_STATUSES:
                raise TransientError('HTTP %s %s' % (exc.status, (exc.reason or '').strip())) from exc
            module.fail_json(msg='Reading DynamoGraphDeployment %s/%s failed: HTTP %s %s'
                             % (params['namespace'], params['name'], exc.status, (exc.reason or '').strip()),
                             changed=False)
        except OSError as exc:
            raise TransientError('%s: %s' % (type(exc).__name__, exc)) from exc
        except Exception as exc:  # pylint: disable=broad-except
            # urllib3's connection errors are not OSErrors in every version.
            if type(exc).__module__.startswith('urllib3'):
                raise TransientError('%s: %s' % (type(exc).__name__, exc)) from exc
            raise
        return None  # not reached: fail_json exits

    waiter = GraphWaiter(get_graph, params['timeout'], params['poll_interval'])
    state, message, graph, attempts, elapsed = waiter.run(wait=not module.check_mode)
    where = 'DynamoGraphDeployment %s/%s' % (params['namespace'], params['name'])
    result = dict(changed=False, ready=state == READY, state=state, message=message,
                  generation=((graph or {}).get('metadata') or {}).get('generation'),
                  status=(graph or {}).get('status') or {}, attempts=attempts, elapsed=round(elapsed, 3))
    if state == READY or module.check_mode:
        module.exit_json(**result)
    if state == FAILED:
        module.fail_json(msg='%s: the operator reports it failed: %s' % (where, message), **result)
    if state == ABSENT:
        module.fail_json(msg='%s does not exist' % where, **result)
    module.fail_json(msg='%s is not ready after %ss: %s. Status: %s'
                     % (where, params['timeout'], message, json.dumps(result['status'], sort_keys=True)), **result)


if __name__ == '__main__':
    main()
