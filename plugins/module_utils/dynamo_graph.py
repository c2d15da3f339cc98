# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Reading a DynamoGraphDeployment's status: ready, failed, or still on its way.

What the Dynamo operator (dynamo-platform 1.6.1, ai-dynamo/dynamo
deploy/operator/internal/controller/dgd_workload_program.go and
dgd_workload_result.go) writes:
- on a reconcile that succeeded: ``status.state`` ``successful``,
  ``status.observedGeneration`` and a ``Ready`` condition ``True`` carrying the
  generation it is about;
- on a reconcile that failed (a KAI queue that does not exist, say): state
  ``failed`` and ``Ready`` ``False`` with the error as its message, for the
  generation, and no new ``status.observedGeneration``.
A Ready condition of an older generation says nothing about the spec just
applied, so both verdicts need the condition of the current generation.
"""

from __future__ import annotations

import time

READY = 'ready'
FAILED = 'failed'
PENDING = 'pending'
ABSENT = 'absent'


def _ready_condition(graph):
    for condition in (graph.get('status') or {}).get('conditions') or []:
        if condition.get('type') == 'Ready':
            return condition
    return None


def verdict(graph):
    """(state, message) of a graph object (a dict as the API serves it, or None)."""
    if not graph:
        return ABSENT, 'the graph does not exist'
    generation = (graph.get('metadata') or {}).get('generation')
    status = graph.get('status') or {}
    condition = _ready_condition(graph)
    current = condition is not None and condition.get('observedGeneration') == generation
    if (current and condition.get('status') == 'True' and status.get('observedGeneration') == generation):
        return READY, condition.get('message') or 'Ready'
    if current and status.get('state') == FAILED:
        return FAILED, condition.get('message') or condition.get('reason') or 'the operator reports state failed'
    seen = 'state %r' % status.get('state', '') if status.get('state') else 'no status yet'
    if condition is not None:
        seen += ', Ready=%s (%s) for generation %s' % (condition.get('status'), condition.get('reason') or '',
                                                       condition.get('observedGeneration'))
    return PENDING, '%s; generation %s' % (seen, generation)


class GraphWaiter:
    """Look at the graph until it is ready, the operator fails it, or the time is up."""

    def __init__(self, get_graph, timeout, interval, clock=time.monotonic, sleep=time.sleep):
        self.get_graph = get_graph
        self.timeout = timeout
        self.interval = interval
        self.clock = clock
        self.sleep = sleep

    def run(self, wait=True):
        """(state, message, graph, attempts, elapsed); transient errors in get_graph are retried."""
        start = self.clock()
        attempts = 0
        while True:
            attempts += 1
            graph = None
            try:
                graph = self.get_graph()
                state, message = verdict(graph)
            except TransientError as exc:
                state, message = PENDING, 'the API did not answer: %s' % exc
            elapsed = self.clock() - start
            if state in (READY, FAILED) or not wait or elapsed >= self.timeout:
                return state, message, graph, attempts, elapsed
            self.sleep(min(self.interval, max(self.timeout - elapsed, 0)))


class TransientError(Exception):
    """An API error worth another look (a connection failure, 429 or 5xx)."""
