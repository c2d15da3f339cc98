"""Corpus curation, conversation state and follow-up writing."""

import asyncio

import aiohttp
import pytest

from gtc_loadgen.client import TurnResult
from gtc_loadgen.conversation import Conversation, TurnRecord
from gtc_loadgen.corpus import CorpusError, curate_folder, default_corpus_dir, load_seeds, write_seeds
from gtc_loadgen.followup import Exchange, FollowupWriter, offline_followup


@pytest.fixture(scope="module")
def seeds():
    return load_seeds(None)


def test_default_corpus_is_a_dozen_long_documents(seeds):
    assert len(seeds) >= 12
    assert len({s.title for s in seeds}) == len(seeds)
    for s in seeds:
        assert s.words >= 1000, (s.id, s.words)
        assert len(s.sections) >= 3, s.id
        assert len(s.keywords) >= 10, s.id
    # Two documents per context (the default) make a few thousand tokens.
    assert min(a.words + b.words for a in seeds for b in seeds if a is not b) >= 2000


def test_curate_round_trip(tmp_path, seeds):
    out = tmp_path / "seeds.json"
    write_seeds(seeds, out)
    again = load_seeds(out)
    assert [s.id for s in again] == [s.id for s in seeds] and again[0].text == seeds[0].text


def test_curate_refuses_bad_input(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        curate_folder(tmp_path / "nope")
    with pytest.raises(CorpusError, match="no .md or .txt"):
        curate_folder(tmp_path)
    (tmp_path / "tiny.md").write_text("# Tiny\n\ntoo short")
    with pytest.raises(CorpusError, match="too short"):
        curate_folder(tmp_path)
    assert default_corpus_dir().is_dir()


def _ok(text):
    return TurnResult(ok=True, text=text, ttft_ms=10.0)


def test_messages_grow_turn_by_turn(seeds):
    conv = Conversation(id="c1", seed=seeds[0], routing="kv", turns_planned=3, visitor="SRE #1234",
                        related=(seeds[1],))
    first = conv.messages_for("q1")
    assert [m["role"] for m in first] == ["system", "user"]
    # The conversation's own line opens the system prompt (a unique first KV block).
    assert first[0]["content"].startswith("Booth session c1, visitor SRE #1234.")
    assert seeds[0].text in first[0]["content"] and seeds[1].text in first[0]["content"]
    assert conv.detail()["document_words"] == seeds[0].words + seeds[1].words
    conv.turns.append(TurnRecord(1, "q1", "opening", 0.0, _ok("a1")))
    conv.turns.append(TurnRecord(2, "q2", "offline", 0.0, TurnResult(ok=False, error_kind="timeout")))
    second = conv.messages_for("q3")
    # Each turn's prompt extends the previous one: the prefix KV reuse needs.
    assert second[: len(first) - 1] == first[:-1]
    assert [m["content"] for m in second[1:]] == ["q1", "a1", "q3"]  # the failed turn is left out
    assert conv.history() == [Exchange("q1", "a1")]
    assert conv.next_turn == 3 and not conv.finished
    d = conv.detail()
    assert d["turns"][0]["answer"] == "a1" and d["turns"][1]["error_kind"] == "timeout"
    assert conv.summary()["errors"] == 1


def test_offline_followup_depends_on_the_conversation(seeds):
    seed = seeds[0]
    h1 = [Exchange(seed.opening_question(), "the router scores cached blocks per worker")]
    h2 = [Exchange(seed.opening_question(), "tensor parallel shards split attention heads evenly")]
    q1 = offline_followup(seed, h1, "c1")
    assert q1 == offline_followup(seed, h1, "c1")  # deterministic
    assert len(q1) > 20
    # It is about the document or the last answer.
    vocab = {k.lower() for k in seed.keywords} | {w.lower() for sec in seed.sections for w in sec.split()}
    vocab |= set(h1[0].answer.split())
    assert vocab & set(q1.lower().replace("?", " ").replace(",", " ").replace('"', " ").split())
    # Different answers (or a longer history) give different questions.
    asked = {offline_followup(seed, h, cid) for h in (h1, h2) for cid in ("c1", "c2", "c3")}
    assert len(asked) >= 4
    longer = h1 + [Exchange(q1, "prefill cost grows with uncached tokens")]
    assert offline_followup(seed, longer, "c1") != q1


def test_writer_without_key_is_offline(seeds, monkeypatch):
    monkeypatch.delenv("GRADIENT_API_KEY", raising=False)
    w = FollowupWriter(None)
    q, src = asyncio.run(w.write(seeds[1], [Exchange("q", "some answer words here")], "c9"))
    assert src == "offline" and q and not w.remote_enabled and w.offline == 1


def test_writer_falls_back_fast_when_the_service_is_unreachable(seeds):
    async def go():
        async with aiohttp.ClientSession() as session:
            # Nothing listens on 127.0.0.1:9; the key is a dummy and never leaves this machine.
            w = FollowupWriter(session, base_url="http://127.0.0.1:9/v1", api_key="dummy", timeout_s=1.0)
            q, src = await w.write(seeds[2], [Exchange("q", "an answer")], "c3")
            q2, src2 = await w.write(seeds[2], [Exchange("q", "an answer")], "c3")
            return w, src, src2, q, q2
    w, src, src2, q, q2 = asyncio.run(go())
    assert (src, src2) == ("offline", "offline") and q == q2
    # The failed call switched the remote writer off for a while: one attempt, not two.
    assert w.remote_failed == 1 and w.offline == 2


def test_writer_asks_the_remote_service_with_the_conversation(seeds):
    from aiohttp import web

    seen = []

    async def handler(request):
        seen.append((request.headers.get("Authorization"), await request.json()))
        return web.json_response({"choices": [{"message": {"content": ' "Which worker held the cache?" '}}]})

    async def go():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                w = FollowupWriter(session, base_url=f"http://127.0.0.1:{port}/v1", model="small", api_key="k-test")
                history = [Exchange("What is prefill?", "prefill processes the whole prompt at once")]
                return w, await w.write(seeds[0], history, "c1")
        finally:
            await runner.cleanup()

    w, (question, source) = asyncio.run(go())
    assert (question, source) == ("Which worker held the cache?", "remote") and w.remote_ok == 1
    auth, body = seen[0]
    assert auth == "Bearer k-test" and body["model"] == "small"
    prompt = body["messages"][-1]["content"]
    # The service sees the conversation so far, so its question can follow it.
    assert "prefill processes the whole prompt at once" in prompt and seeds[0].title in prompt
