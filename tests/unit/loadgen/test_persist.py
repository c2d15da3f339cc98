"""The presenter's settings survive a restart of the app: written atomically, read at start,
and a document that cannot be used is reported and ignored."""

import asyncio
import json
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gtc_loadgen.corpus import load_seeds
from gtc_loadgen.persist import FORMAT, FileStore, Keeper
from gtc_loadgen.server import build_app
from gtc_loadgen.settings import DEFAULT_PRESETS, Settings
from gtc_loadgen.targets import Targets, frontend

SEEDS = load_seeds(None)
IDS = ("kv", "round_robin")


def _app(path, initial=None, ids=IDS):
    targets = Targets(tuple(frontend(i, "http://127.0.0.1:9") for i in ids), "m")
    initial = initial or {}
    return build_app(targets, SEEDS, dict(DEFAULT_PRESETS), Settings().patched(initial),
                     followup_base_url="http://127.0.0.1:9/v1", followup_model="x",
                     keeper=Keeper(FileStore(path), initial))


async def _session(app, *posts):
    async with TestClient(TestServer(app)) as client:
        for path, body in posts:
            resp = await client.post(path, json=body)
            assert resp.status == 200, await resp.text()
        return await (await client.get("/api/state")).json()


def test_settings_changed_on_the_page_come_back_after_a_restart(tmp_path):
    path = tmp_path / "state" / "settings.json"
    first = asyncio.run(_session(_app(path), ("/api/preset/busy", {}),
                                 ("/api/settings", {"routing": "round_robin", "ab": True, "auto": True,
                                                    "turns_max": 7})))
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT and doc["initial"] == {}
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temporary file left
    again = asyncio.run(_session(_app(path)))
    assert again["settings"] == first["settings"]
    assert again["settings"]["preset"] == "busy" and again["settings"]["auto"] is True
    assert again["settings"]["routing"] == "round_robin" and again["settings"]["concurrency"] == 48
    assert again["persistence"] == {"store": str(path), "error": None}


@pytest.mark.parametrize(("content", "why"), [
    ("{not json", "not JSON"),
    (json.dumps({"format": "something-else/9", "settings": {}}), "not a gtc-loadgen-settings/1 document"),
    (json.dumps([1, 2]), "not a gtc-loadgen-settings/1 document"),
    (json.dumps({"format": FORMAT, "initial": {}, "settings": {"concurrency": 9999}}), "concurrency must be"),
    (json.dumps({"format": FORMAT, "initial": {}, "settings": {"routing": "gone"}}), "routing must be one of"),
    (json.dumps({"format": FORMAT, "initial": {}, "settings": {"bogus": 1}}), "unknown setting 'bogus'"),
])
def test_a_document_that_cannot_be_used_is_reported_and_ignored(tmp_path, caplog, content, why):
    path = tmp_path / "settings.json"
    path.write_text(content)
    with caplog.at_level(logging.INFO, logger="gtc_loadgen.persist"):
        state = asyncio.run(_session(_app(path)))
    assert state["settings"] == Settings().for_routings(IDS).to_dict()
    assert f"kept settings in {path} ignored" in caplog.text and why in caplog.text


def test_new_initial_settings_from_the_inventory_win_over_kept_ones(tmp_path, caplog):
    path = tmp_path / "settings.json"
    asyncio.run(_session(_app(path), ("/api/settings", {"concurrency": 5})))
    with caplog.at_level(logging.INFO, logger="gtc_loadgen.persist"):
        state = asyncio.run(_session(_app(path, initial={"concurrency": 30})))
    assert state["settings"]["concurrency"] == 30
    assert "the initial settings changed" in caplog.text
    # The same initial settings again: the presenter's change is kept.
    asyncio.run(_session(_app(path, initial={"concurrency": 30}), ("/api/settings", {"concurrency": 6})))
    assert asyncio.run(_session(_app(path, initial={"concurrency": 30})))["settings"]["concurrency"] == 6


def test_a_failed_write_is_reported_and_the_change_stands(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # a file where the folder should be: no write can succeed, even as root
    state = asyncio.run(_session(_app(blocked / "settings.json"), ("/api/settings", {"concurrency": 3})))
    assert state["settings"]["concurrency"] == 3
    assert state["persistence"]["error"].startswith(("FileExistsError", "NotADirectoryError"))


def test_a_refused_change_writes_nothing(tmp_path):
    path = tmp_path / "settings.json"

    async def go():
        async with TestClient(TestServer(_app(path))) as client:
            return (await client.post("/api/settings", json={"concurrency": -1})).status
    assert asyncio.run(go()) == 422
    assert not path.exists()
