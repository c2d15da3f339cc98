"""kill -9 one mocker worker under the booth preset: no request fails (issue 16).

The load generator runs the booth preset in A/B mode (both routings, as at the booth) through its
own API; one worker is killed with SIGKILL while conversations are in flight; supervisord starts
it again (autorestart). With request migration on (dynamo_migration_limit, 3 in the inventory) a
request whose worker vanished moves to the other one: the frontends count it in
``dynamo_frontend_model_migration_total`` (Dynamo 1.6.1 prometheus_names.py MODEL_MIGRATION_TOTAL,
labels migration_type new_request | ongoing_request). Before issue 16 (no --migration-limit) the
same kill failed the requests in flight on that worker and, for a few seconds, new ones sent to
it (HTTP 503).

Figures printed: requests sent and failed per routing (the load generator's fault counters,
/api/state stats.requests_by_routing), migrations per frontend, and how long until supervisord
has the worker RUNNING again and until every frontend lists exactly the configured replicas.
The demo is left as found: load stopped, settings restored, every program RUNNING.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest
from faults_support import metric_sum, program_pids, routing_counts, wait_until  # type: ignore[import-not-found]
from gtc_bench.soak import Page

pytestmark = pytest.mark.integration

WARM_S = 8.0  # booth load before the kill: conversations in flight on both workers
AFTER_S = 16.0  # load after it: past the file discovery's expiry of the dead instance (10 s TTL)
MIGRATIONS = "dynamo_frontend_model_migration_total"


def _instances(url: str) -> frozenset[int]:
    """The worker instances serving `generate` that a frontend's /health lists."""
    with urllib.request.urlopen(url + "/health", timeout=5) as resp:
        health = json.load(resp)
    return frozenset(i["instance_id"] for i in health.get("instances", []) if i.get("endpoint") == "generate")


def test_kill_one_worker_under_booth_load_fails_no_request(local_demo):
    page = Page(local_demo.loadgen_url, getattr(local_demo, "presenter_token", None))
    worker = "gtc-dynamo:gtc-dynamo-worker-0"
    before = program_pids(local_demo.home)
    assert worker in before, sorted(before)
    saved = page.state()["settings"]
    migrations_before = {r: metric_sum(url + "/metrics", MIGRATIONS) for r, url in local_demo.frontends.items()}
    instances_before = {r: _instances(url) for r, url in local_demo.frontends.items()}
    assert all(len(i) == local_demo.replicas for i in instances_before.values()), instances_before
    try:
        page.post("/api/preset/booth")
        page.post("/api/settings", {"ab": True})
        page.post("/api/reset")
        page.post("/api/settings", {"running": True})
        time.sleep(WARM_S)
        at_kill = routing_counts(page.state())
        load_avg = os.getloadavg()
        os.kill(before[worker], signal.SIGKILL)
        killed_at = time.monotonic()
        back_s = wait_until(lambda: program_pids(local_demo.home).get(worker, before[worker]) != before[worker], 30)
        # back: each frontend lists the configured replicas again, the killed one's entry gone
        # (file discovery drops it 10 s after its last keep-alive) and the new one's there
        replicas_s = wait_until(lambda: all(
            len(now := _instances(u)) == local_demo.replicas and now != instances_before[r]
            for r, u in local_demo.frontends.items()), 40)
        time.sleep(max(0.0, AFTER_S - (time.monotonic() - killed_at)))
        page.post("/api/settings", {"running": False})
        drained = wait_until(lambda: all(c.sent == c.ok + c.failed for c in routing_counts(page.state()).values()), 40)
        state = page.state()
    finally:
        page.post("/api/settings", {"running": False})
        page.post("/api/settings", saved)  # as found, running or not
    counts = routing_counts(state)
    migrations = {r: metric_sum(url + "/metrics", MIGRATIONS) - migrations_before[r]
                  for r, url in local_demo.frontends.items()}
    report = {
        "load_average_at_kill": [round(x, 2) for x in load_avg],
        "sent": {r: c.sent for r, c in counts.items()},
        "sent_before_kill": {r: c.sent for r, c in at_kill.items()},
        "failed": {r: c.failed for r, c in counts.items()},
        "failed_by_kind": {r: c.failed_by_kind for r, c in counts.items()},
        "migrated": migrations,
        "worker_running_again_s": None if back_s is None else round(back_s, 1),
        "frontends_see_replicas_s": None if replicas_s is None else round(replicas_s, 1),
        "last_errors": state["stats"].get("last_errors", []),
    }
    print("worker kill: " + json.dumps(report))
    # the fault happened under load, and the demo is whole again
    assert back_s is not None, f"supervisord did not start {worker} again within 30 s"
    assert replicas_s is not None, "the frontends did not list the configured replicas again within 40 s"
    assert drained is not None, f"requests still in flight 40 s after the load stopped: {report}"
    after = program_pids(local_demo.home)
    assert set(after) == set(before), (sorted(before), sorted(after))
    assert page.state()["settings"] == saved  # left as found
    assert all(at_kill[r].sent > 0 and counts[r].sent > at_kill[r].sent for r in counts), report
    # the target: no request failed
    assert sum(c.failed for c in counts.values()) == 0, f"requests failed after the kill: {report}"
