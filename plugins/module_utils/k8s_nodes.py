# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Node readiness evaluation and a waiter for GPU nodes.

The engine behind the ``wait_for_gpu_nodes`` module. It works on nodes as
plain dictionaries (the JSON the API server returns), so the judgement of one
node is a pure function, and the waiter takes the function that lists nodes,
the clock and the sleep as arguments.

``list_nodes_with_client`` talks to the API through the client that
``kubernetes.core`` builds from its auth options; it is the only part that
needs the ``kubernetes`` Python library.
"""

from __future__ import annotations

import json
import time

try:
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException
except ImportError:  # reported by the module through AnsibleK8SModule
    CoreV1Api = None  # type: ignore[misc,assignment]
    ApiException = None  # type: ignore[misc,assignment]

try:
    from urllib3.exceptions import HTTPError as Urllib3HTTPError
except ImportError:  # urllib3 comes with kubernetes
    Urllib3HTTPError = None  # type: ignore[misc,assignment]

DEFAULT_GPU_RESOURCE = 'nvidia.com/gpu'
DEFAULT_LABEL_SELECTORS = ('doks.digitalocean.com/gpu-brand=nvidia',)

# Labels DOKS puts on its nodes, echoed in results so a reader sees which pool
# and GPU model a node belongs to.
POOL_LABEL = 'doks.digitalocean.com/node-pool'
GPU_MODEL_LABEL = 'doks.digitalocean.com/gpu-model'

# HTTP statuses worth another look: the API server or a proxy in front of it
# is busy or restarting (a DOKS control plane does that while it scales).
TRANSIENT_STATUSES = frozenset({0, 408, 429, 500, 502, 503, 504})


class NodeListError(Exception):
    """The node list could not be read; ``transient`` says if retrying may help."""

    def __init__(self, message, transient):
        super().__init__(message)
        self.transient = transient


def parse_count(value):
    """Return an extended-resource quantity as an int, or None if it is not a count.

    Extended resources such as ``nvidia.com/gpu`` are whole numbers, but the
    API returns quantities as strings; tolerate ints and plain decimal strings.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _ready_condition(node):
    for condition in (node.get('status') or {}).get('conditions') or []:
        if condition.get('type') == 'Ready':
            return condition
    return None


def evaluate_node(node, gpu_resource=DEFAULT_GPU_RESOURCE, gpus_per_node=1):
    """Judge one node: is it Ready, schedulable and with enough allocatable GPUs?

    Returns a dict that is safe to return from a module: the node's name, pool,
    GPU model, allocatable and capacity GPU counts, ``ready``,
    ``schedulable``, ``eligible`` and, when not eligible, ``reasons``.
    """
    metadata = node.get('metadata') or {}
    labels = metadata.get('labels') or {}
    status = node.get('status') or {}
    spec = node.get('spec') or {}
    reasons = []

    condition = _ready_condition(node)
    ready = bool(condition) and condition.get('status') == 'True'
    if condition is None:
        reasons.append('no Ready condition yet')
    elif not ready:
        detail = condition.get('reason') or 'no reason given'
        if condition.get('message'):
            detail = '%s: %s' % (detail, condition['message'])
        reasons.append('Ready is %s (%s)' % (condition.get('status'), detail))

    schedulable = not spec.get('unschedulable', False)
    if not schedulable:
        reasons.append('cordoned (spec.unschedulable is true)')

    raw_allocatable = (status.get('allocatable') or {}).get(gpu_resource)
    gpus = parse_count(raw_allocatable)
    gpu_capacity = parse_count((status.get('capacity') or {}).get(gpu_resource))
    if raw_allocatable is None:
        reasons.append('no allocatable %s' % gpu_resource)
        gpus = 0
    elif gpus is None:
        reasons.append('allocatable %s is %r, not a count' % (gpu_resource, raw_allocatable))
        gpus = 0
    elif gpus < gpus_per_node:
        reasons.append('allocatable %s is %d, want at least %d' % (gpu_resource, gpus, gpus_per_node))

    return {
        'name': metadata.get('name'),
        'node_pool': labels.get(POOL_LABEL),
        'gpu_model': labels.get(GPU_MODEL_LABEL),
        'gpus': gpus,
        'gpu_capacity': gpu_capacity if gpu_capacity is not None else 0,
        'ready': ready,
        'schedulable': schedulable,
        'eligible': not reasons,
        'reasons': reasons,
    }


def evaluate_nodes(nodes, gpu_resource=DEFAULT_GPU_RESOURCE, gpus_per_node=1):
    """Evaluate every node, sorted by name so results are stable."""
    evaluated = [evaluate_node(n, gpu_resource, gpus_per_node) for n in nodes]
    return sorted(evaluated, key=lambda n: n['name'] or '')


def describe(evaluated, count, gpus_per_node, gpu_resource, selector):
    """One readable sentence about what a look saw, for messages and failures."""
    eligible = [n for n in evaluated if n['eligible']]
    head = '%d of %d wanted node(s) matching %s are Ready, schedulable and have >= %d allocatable %s' % (
        len(eligible), count, selector or '(all nodes)', gpus_per_node, gpu_resource)
    if not evaluated:
        return head + '; no node matches the selector'
    parts = []
    for node in evaluated:
        if node['eligible']:
            parts.append('%s: ok (%d GPUs)' % (node['name'], node['gpus']))
        else:
            parts.append('%s: %s' % (node['name'], '; '.join(node['reasons'])))
    return head + '. ' + ', '.join(parts)


def _error_text(exc):
    if ApiException is not None and isinstance(exc, ApiException):
        return 'HTTP %s %s' % (exc.status, (exc.reason or '').strip())
    return '%s: %s' % (type(exc).__name__, exc)


def classify_error(exc):
    """Wrap an exception from the Kubernetes client as a NodeListError."""
    if ApiException is not None and isinstance(exc, ApiException):
        return NodeListError(_error_text(exc), exc.status in TRANSIENT_STATUSES)
    transient_types = (OSError, TimeoutError)
    if Urllib3HTTPError is not None:
        transient_types = transient_types + (Urllib3HTTPError,)
    return NodeListError(_error_text(exc), isinstance(exc, transient_types))


def list_nodes_with_client(api_client, label_selector, request_timeout):
    """List nodes as plain dicts through a kubernetes ApiClient.

    The raw JSON is used on purpose: the evaluation reads camelCase fields the
    way the API serves them, with no model classes in between.
    """
    try:
        response = CoreV1Api(api_client).list_node(
            label_selector=label_selector or '',
            _preload_content=False,
            _request_timeout=request_timeout,
        )
        body = json.loads(response.data)
    except Exception as exc:  # pylint: disable=broad-except
        raise classify_error(exc) from exc
    return body.get('items') or []


class WaitResult:
    """What a wait ended with."""

    def __init__(self, satisfied, nodes, elapsed, attempts, errors, last_error, looked):
        self.satisfied = satisfied
        self.nodes = nodes
        self.elapsed = elapsed
        self.attempts = attempts
        self.errors = errors
        self.last_error = last_error
        # False when no look ever succeeded (the API was never reachable).
        self.looked = looked

    @property
    def eligible(self):
        return [n for n in self.nodes if n['eligible']]


class GpuNodeWaiter:
    """Poll the node list until enough nodes are eligible or time runs out.

    ``list_nodes(request_timeout)`` returns node dicts or raises
    NodeListError; transient errors are retried until the deadline, others end
    the wait at once. Time is read from a monotonic clock so a wall-clock jump
    neither cuts a wait short nor stretches it.
    """

    def __init__(self, list_nodes, count, gpu_resource=DEFAULT_GPU_RESOURCE, gpus_per_node=1,
                 timeout=900, poll_interval=10, clock=time.monotonic, sleep=time.sleep,
                 max_request_timeout=30):
        self.list_nodes = list_nodes
        self.count = count
        self.gpu_resource = gpu_resource
        self.gpus_per_node = gpus_per_node
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.clock = clock
        self.sleep = sleep
        self.max_request_timeout = max_request_timeout

    def _satisfied(self, nodes):
        return sum(1 for n in nodes if n['eligible']) >= self.count

    def run(self, wait=True):
        """Look once (``wait=False``) or until satisfied or the timeout passes."""
        start = self.clock()
        deadline = start + self.timeout
        attempts = 0
        errors = 0
        last_error = None
        nodes = []
        looked = False
        while True:
            attempts += 1
            remaining = deadline - self.clock()
            request_timeout = max(1.0, min(self.max_request_timeout, remaining))
            try:
                raw = self.list_nodes(request_timeout)
            except NodeListError as exc:
                errors += 1
                last_error = str(exc)
                if not exc.transient:
                    raise
            else:
                looked = True
                last_error = None
                nodes = evaluate_nodes(raw, self.gpu_resource, self.gpus_per_node)
                if self._satisfied(nodes):
                    return WaitResult(True, nodes, self.clock() - start, attempts, errors, None, looked)
            now = self.clock()
            if not wait or now >= deadline:
                return WaitResult(False, nodes, now - start, attempts, errors, last_error, looked)
            self.sleep(max(0.0, min(self.poll_interval, deadline - now)))
