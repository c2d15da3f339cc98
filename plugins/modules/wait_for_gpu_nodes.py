#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: wait_for_gpu_nodes
short_description: Wait until enough Kubernetes GPU nodes are Ready and schedulable
version_added: 0.1.0
description:
  - Polls the nodes selected by O(label_selectors) until at least O(count) of them are
    C(Ready), not cordoned, and have at least O(gpus_per_node) allocatable O(gpu_resource).
  - Meant for a DigitalOcean Kubernetes (DOKS) GPU node pool that was just created or scaled.
    A GPU node joins the cluster well before the NVIDIA device plugin advertises its GPUs.
  - Time is measured on a monotonic clock. Transient API errors (connection failures,
    HTTP 408, 429, 500, 502, 503, 504) are retried until O(timeout); any other API error
    (for example HTTP 401 or 403) fails at once.
  - On timeout the module fails and reports every node it saw and why each one is not
    eligible.
  - Replaces the former C(scripts/wait-for-gpu.sh [count] [timeout]) with the same
    defaults (3 nodes, 900 seconds).
  - The module never changes the cluster; it always returns RV(ignore:changed=false).
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
      - In check mode the module looks at the nodes once and does not wait. It reports
        RV(ready) and does not fail when too few nodes are eligible yet.
options:
  count:
    description:
      - The least number of eligible nodes to wait for.
    type: int
    default: 3
  label_selectors:
    description:
      - Label selectors that pick the nodes to consider, as in M(kubernetes.core.k8s_info).
      - All of them must match (they are joined with commas).
      - The default selects the GPU nodes of a DOKS cluster. Use
        C(doks.digitalocean.com/node-pool=<pool name>) to wait for one pool.
    type: list
    elements: str
    default:
      - doks.digitalocean.com/gpu-brand=nvidia
  gpu_resource:
    description:
      - The extended resource that counts GPUs in the node's C(status.allocatable).
    type: str
    default: nvidia.com/gpu
  gpus_per_node:
    description:
      - The least allocatable O(gpu_resource) a node needs to count as eligible.
      - DOKS C(gpu-h100x8-640gb) and C(gpu-h200x8-1128gb) nodes have 8.
    type: int
    default: 1
  timeout:
    description:
      - How long to wait, in seconds, before failing.
    type: int
    default: 900
    aliases:
      - wait_timeout
  poll_interval:
    description:
      - Seconds between two looks at the nodes.
    type: int
    default: 10
    aliases:
      - wait_sleep
requirements:
  - python >= 3.9
  - kubernetes >= 24.2.0
  - PyYAML >= 3.11
notes:
  - Node readiness is read from the C(Ready) condition in the node's status; a cordoned
    node (C(spec.unschedulable)) is never eligible, whatever its GPUs.
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Wait for three 8-GPU nodes of the GPU pool (up to 15 minutes)
  do_solutions.gtc_demo.wait_for_gpu_nodes:
    kubeconfig: "{{ infra__output.kubeconfig }}"
    count: 3
    gpus_per_node: 8
    label_selectors:
      - doks.digitalocean.com/node-pool=gpu-h100
  register: gpu_nodes

- name: Show the GPU nodes found
  ansible.builtin.debug:
    msg: "{{ gpu_nodes.nodes | map(attribute='name') | list }} after {{ gpu_nodes.elapsed }} s"

- name: Wait for one GPU node of any model, polling every 30 seconds for an hour
  do_solutions.gtc_demo.wait_for_gpu_nodes:
    count: 1
    timeout: 3600
    poll_interval: 30

- name: Wait on a cluster reached by URL and token (token from the environment)
  do_solutions.gtc_demo.wait_for_gpu_nodes:
    host: "{{ cluster_endpoint }}"
    api_key: "{{ lookup('ansible.builtin.env', 'K8S_AUTH_API_KEY') }}"
    ca_cert: /etc/ssl/doks-ca.crt
    count: 2
  no_log: true
"""

RETURN = r"""
ready:
  description:
    - Whether at least O(count) eligible nodes were found.
    - Always true when the module succeeds outside check mode.
  returned: always
  type: bool
  sample: true
nodes:
  description:
    - Every node the selectors matched at the last look, sorted by name, with the
      verdict on each.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The node's name.
      type: str
      sample: gpu-h100-abc12
    node_pool:
      description: The node's C(doks.digitalocean.com/node-pool) label, if any.
      type: str
      sample: gpu-h100
    gpu_model:
      description: The node's C(doks.digitalocean.com/gpu-model) label, if any.
      type: str
      sample: h100
    gpus:
      description: Allocatable O(gpu_resource) on the node (0 when absent).
      type: int
      sample: 8
    gpu_capacity:
      description: The node's capacity of O(gpu_resource) (0 when absent).
      type: int
      sample: 8
    ready:
      description: Whether the node's C(Ready) condition is C(True).
      type: bool
      sample: true
    schedulable:
      description: Whether the node is not cordoned.
      type: bool
      sample: true
    eligible:
      description: Whether the node counts towards O(count).
      type: bool
      sample: true
    reasons:
      description: Why the node is not eligible; empty when it is.
      type: list
      elements: str
      sample: ["Ready is False (KubeletNotReady: container runtime network not ready)"]
eligible_nodes:
  description: Names of the nodes that count towards O(count).
  returned: always
  type: list
  elements: str
  sample: [gpu-h100-abc12, gpu-h100-abc13, gpu-h100-abc14]
total_gpus:
  description: Allocatable O(gpu_resource) summed over the eligible nodes.
  returned: always
  type: int
  sample: 24
elapsed:
  description: Seconds spent waiting, measured on a monotonic clock.
  returned: always
  type: float
  sample: 42.7
attempts:
  description: How many times the node list was read (or tried).
  returned: always
  type: int
  sample: 5
api_errors:
  description: How many of those attempts hit a transient API error.
  returned: always
  type: int
  sample: 0
"""

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.k8s_nodes import (
    DEFAULT_GPU_RESOURCE,
    DEFAULT_LABEL_SELECTORS,
    GpuNodeWaiter,
    NodeListError,
    classify_error,
    describe,
    list_nodes_with_client,
)


def argument_spec():
    spec = dict(
        count=dict(type='int', default=3),
        label_selectors=dict(type='list', elements='str', default=list(DEFAULT_LABEL_SELECTORS)),
        gpu_resource=dict(type='str', default=DEFAULT_GPU_RESOURCE),
        gpus_per_node=dict(type='int', default=1),
        timeout=dict(type='int', default=900, aliases=['wait_timeout']),
        poll_interval=dict(type='int', default=10, aliases=['wait_sleep']),
    )
    spec.update(AUTH_ARG_SPEC)
    return spec


def _results(outcome):
    return dict(
        changed=False,
        ready=outcome.satisfied,
        nodes=outcome.nodes,
        eligible_nodes=[n['name'] for n in outcome.eligible],
        total_gpus=sum(n['gpus'] for n in outcome.eligible),
        elapsed=round(outcome.elapsed, 3),
        attempts=outcome.attempts,
        api_errors=outcome.errors,
    )


def main():
    module = AnsibleK8SModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    for name in ('count', 'gpus_per_node'):
        if params[name] < 0:
            module.fail_json(msg='%s must be 0 or more, got %d' % (name, params[name]))
    for name in ('timeout', 'poll_interval'):
        if params[name] < (0 if name == 'timeout' else 1):
            module.fail_json(msg='%s is out of range: %d' % (name, params[name]))

    selector = ','.join(s.strip() for s in params['label_selectors'] if s and s.strip())
    clients = []

    def list_nodes(request_timeout):
        # kubernetes.core's client asks the API for its version when it is
        # made, so it is made inside the retry loop: an API server that is not
        # up yet is a transient error, not a crash.
        if not clients:
            try:
                clients.append(get_api_client(module).client.client)
            except CoreException as exc:
                raise NodeListError(str(exc), transient=False) from exc
            except Exception as exc:  # pylint: disable=broad-except
                raise classify_error(exc) from exc
        return list_nodes_with_client(clients[0], selector, request_timeout)

    waiter = GpuNodeWaiter(
        list_nodes=list_nodes,
        count=params['count'],
        gpu_resource=params['gpu_resource'],
        gpus_per_node=params['gpus_per_node'],
        timeout=params['timeout'],
        poll_interval=params['poll_interval'],
    )
    try:
        outcome = waiter.run(wait=not module.check_mode)
    except NodeListError as exc:
        module.fail_json(msg='Reading nodes from the Kubernetes API failed: %s' % exc, changed=False)

    results = _results(outcome)
    seen = describe(outcome.nodes, params['count'], params['gpus_per_node'], params['gpu_resource'], selector)
    if outcome.satisfied:
        module.exit_json(msg=seen, **results)
    if not outcome.looked:
        module.fail_json(
            msg='The Kubernetes API could not be reached during %ss (%d attempts); last error: %s'
                % (results['elapsed'], outcome.attempts, outcome.last_error),
            **results)
    if module.check_mode:
        module.exit_json(msg='Check mode, one look: ' + seen, **results)
    tail = '' if outcome.last_error is None else '; the last look failed: %s' % outcome.last_error
    module.fail_json(
        msg='Timed out after %ss waiting for GPU nodes: %s%s' % (results['elapsed'], seen, tail),
        **results)


if __name__ == '__main__':
    main()
