"""A Dynamo frontend restarts under the booth preset (the local demo, A/B so both routings carry
load): the load generator counts the failures by kind, marks the affected turns, keeps the other
frontend's conversations untouched and recovers by itself once the frontend answers again.
The figures come from /api/state (stats.requests_by_routing) and the conversation viewer."""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import pytest

from helpers import wait_for

pytestmark = pytest.mark.integration

RESTARTED = "kv"
OTHER = "round_robin"
# roles/dynamo's program of the kv routing's frontend (group gtc-dynamo, ids with '-' for '_').
PROGRAM = "gtc-dynamo:gtc-dynamo-frontend-kv"


def _counts(loadgen) -> dict[str, dict]:
    return loadgen.get("/api/state")["stats"]["requests_by_routing"]


def _serves(url: str, model: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/v1/models", timeout=5) as resp:
            return model in {m["id"] for m in json.load(resp)["data"]}
    except OSError:
        return False


def test_a_frontend_restart_is_counted_and_recovered_from(local_demo, loadgen) -> None:
    supervisorctl = [str(local_demo.home / "venvs" / "supervisor" / "bin" / "supervisorctl"),
                     "-c", str(local_demo.home / "supervisor" / "supervisord.conf")]
    loadgen.stop_and_drain()
    before = loadgen.get("/api/state")["settings"]
    t0 = time.time()
    base = _counts(loadgen)
    try:
        loadgen.post("/api/preset/booth", {})
        loadgen.post("/api/settings", {"ab": True, "auto": False, "max_tokens": 24, "running": True})

        def ok_since_start(routing: str) -> int:
            return _counts(loadgen)[routing]["ok"] - base[routing]["ok"]
        wait_for(lambda: ok_since_start(RESTARTED) >= 2 and ok_since_start(OTHER) >= 2, 60,
                 what="both routings answering under the booth preset")
        at_restart = _counts(loadgen)
        convs = loadgen.get("/api/conversations")["conversations"]
        other_live = {c["id"] for c in convs if c["routing"] == OTHER and c["status"] == "active"}
        restarted_at = time.monotonic()
        proc = subprocess.run([*supervisorctl, "restart", PROGRAM], capture_output=True, text=True, timeout=120,
                              check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert "started" in proc.stdout, proc.stdout + proc.stderr

        def recovered() -> bool:
            c = _counts(loadgen)[RESTARTED]
            return c["outages"] > at_restart[RESTARTED]["outages"] and c["down_since"] is None
        wait_for(recovered, 120, interval=0.25, what="the load generator's own recovery on the restarted frontend")
        recovered_s = time.monotonic() - restarted_at
        after = _counts(loadgen)
        details = [loadgen.get(f"/api/conversations/{c['id']}")
                   for c in loadgen.get("/api/conversations")["conversations"] if c["created_at"] >= t0]
    finally:
        loadgen.stop_and_drain()
        loadgen.post("/api/settings", {k: before[k] for k in (
            "concurrency", "rate", "think_min_s", "think_max_s", "max_tokens", "routing", "ab", "auto", "preset")})
        wait_for(lambda: _serves(local_demo.kv_url, local_demo.model), 120, what="the kv frontend serving again")

    def delta(routing: str, key: str) -> int:
        return after[routing][key] - base[routing][key]
    kinds = {k: v - base[RESTARTED]["failed_by_kind"].get(k, 0) for k, v in after[RESTARTED]["failed_by_kind"].items()}
    kinds = {k: v for k, v in kinds.items() if v}
    print(f"\nfrontend restart under the booth preset (load average {os.getloadavg()[0]:.2f}): "
          f"{RESTARTED}: sent {delta(RESTARTED, 'sent')}, failed {delta(RESTARTED, 'failed')} {kinds}, "
          f"affected conversations {delta(RESTARTED, 'affected_conversations')}, down {after[RESTARTED]['last_down_s']} s "
          f"(first failure to first success), recovered {recovered_s:.1f} s after the restart command; "
          f"{OTHER}: sent {delta(OTHER, 'sent')}, failed {delta(OTHER, 'failed')}")
    # Counted by kind, on the restarted routing only.
    assert delta(RESTARTED, "failed") >= 1 and sum(kinds.values()) == delta(RESTARTED, "failed")
    assert delta(RESTARTED, "affected_conversations") >= 1
    assert after[RESTARTED]["last_down_s"] is not None and after[RESTARTED]["last_down_s"] > 0
    # The other frontend's conversations: none failed, and those live at the restart went on.
    assert delta(OTHER, "failed") == 0, after[OTHER]
    assert delta(OTHER, "ok") > 0
    other = {d["id"]: d for d in details if d["routing"] == OTHER}
    assert not [d["id"] for d in other.values() if d["affected"]]
    assert all(other[cid]["status"] in ("active", "done", "stopped") and other[cid]["errors"] == 0
               for cid in other_live if cid in other)
    # The failed turns are marked in the viewer, with the kind counted above.
    marked = [t for d in details if d["routing"] == RESTARTED for t in d["turns"] if t.get("affected")]
    assert marked and {t["error_kind"] for t in marked} <= set(kinds), (marked[:3], kinds)
