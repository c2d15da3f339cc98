"""A frontend that restarts: its failures are counted by kind and routing, the affected turns are
marked, the other routing's conversations go on untouched, and the load recovers by itself."""

import asyncio
import random
import socket

import aiohttp
from aiohttp import web

from gtc_loadgen.corpus import load_seeds
from gtc_loadgen.engine import Engine
from gtc_loadgen.followup import FollowupWriter
from gtc_loadgen.settings import DEFAULT_PRESETS, Settings
from gtc_loadgen.stats import Stats
from gtc_loadgen.targets import Targets, frontend
from fake_openai import FakeServer, fake_server

SEEDS = load_seeds(None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RestartableFrontend:
    """fake_openai's "ok" answers on a fixed port that can go away (connections refused) and come back."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._fake = FakeServer()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{mode}/v1/chat/completions", self._fake.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def _wait_for(pred, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_a_frontend_restart_is_counted_marked_and_recovered_from():
    async def go():
        kv = RestartableFrontend()
        await kv.start()
        async with fake_server() as other, aiohttp.ClientSession() as session:
            stats = Stats()
            t = Targets((frontend("kv", f"{kv.base}/ok"), frontend("round_robin", f"{other.base}/ok_other")), "m")
            engine = Engine(t, session, SEEDS, FollowupWriter(None), stats, DEFAULT_PRESETS,
                            Settings(concurrency=6, ab=True, think_min_s=0.0, think_max_s=0.05, rate=0.0,
                                     turns_min=8, turns_max=10, max_tokens=4),
                            rng=random.Random(3))
            engine.start()
            engine.update({"running": True})
            c = stats.counts
            await _wait_for(lambda: c["kv"].ok >= 5 and c["round_robin"].ok >= 5)
            await kv.stop()
            await _wait_for(lambda: c["kv"].failed >= 5)
            rr_ok_during = c["round_robin"].ok
            await asyncio.sleep(0.3)
            rr_progress = c["round_robin"].ok - rr_ok_during
            await kv.start()
            await _wait_for(lambda: c["kv"].outages == 1)
            ok_after = c["kv"].ok
            await _wait_for(lambda: c["kv"].ok >= ok_after + 5)
            snap = stats.snapshot()
            convs = [conv.detail() for conv in stats.conversations.values()]
            alive = engine._loop_task is not None and not engine._loop_task.done()
            engine.update({"running": False})
            await engine.close()
            await kv.stop()
            return snap, convs, rr_progress, alive
    snap, convs, rr_progress, alive = asyncio.run(go())
    figures = snap["requests_by_routing"]
    kv, rr = figures["kv"], figures["round_robin"]
    print(f"\nkv: {kv}\nround_robin: {rr}")
    assert alive
    # Counted by kind: a refused connection is "unreachable"; a request cut by the stop, "stream_cut".
    assert kv["failed"] >= 5 and set(kv["failed_by_kind"]) <= {"unreachable", "stream_cut"}
    assert sum(kv["failed_by_kind"].values()) == kv["failed"] == kv["affected_turns"]
    assert kv["affected_conversations"] >= 1 and kv["outages"] == 1 and kv["down_since"] is None
    assert kv["last_down_s"] > 0 and kv["sent"] >= kv["ok"] + kv["failed"]
    # The other frontend's conversations never failed and kept going while kv was down.
    assert rr["failed"] == 0 and rr["affected_conversations"] == 0 and rr_progress > 0
    rr_convs = [cv for cv in convs if cv["routing"] == "round_robin"]
    assert rr_convs and not any(cv["affected"] for cv in rr_convs)
    # Each failed turn is marked in the conversation viewer's record, with its kind.
    marked = [t for cv in convs if cv["routing"] == "kv" for t in cv["turns"] if t.get("affected")]
    assert marked and all(t["ok"] is False and t["error_kind"] in kv["failed_by_kind"] for t in marked)
    assert sum(1 for cv in convs if cv["affected"]) >= 1


def test_counts_reset_keeps_requests_in_flight():
    from gtc_loadgen.client import TurnResult

    stats = Stats()
    stats.track(["kv"])
    stats.sent("kv")
    stats.sent("kv")
    stats.record("kv", 1, TurnResult(ok=False, error_kind="unreachable", error="x"), now=10.0, first_failure=True)
    assert stats.counts["kv"].to_dict()["in_flight"] == 1
    stats.reset()
    stats.record("kv", 1, TurnResult(ok=True, text="a"), now=11.0)
    d = stats.counts["kv"].to_dict()
    assert (d["sent"], d["ok"], d["failed"], d["in_flight"]) == (1, 1, 0, 0)


def test_only_a_request_sent_after_the_first_failure_ends_an_outage():
    from gtc_loadgen.client import TurnResult

    stats = Stats()
    stats.record("kv", 1, TurnResult(ok=False, error_kind="stream_cut", error="x"), now=10.0, sent_at=9.0)
    # Sent before the failure, still streaming then: finishing fine says nothing about recovery.
    stats.record("kv", 2, TurnResult(ok=True, text="a"), now=11.0, sent_at=8.0)
    assert stats.counts["kv"].down_since == 10.0 and stats.counts["kv"].outages == 0
    stats.record("kv", 2, TurnResult(ok=True, text="a"), now=13.5, sent_at=12.0)
    c = stats.counts["kv"]
    assert (c.down_since, c.outages, c.last_down_s) == (None, 1, 3.5)
