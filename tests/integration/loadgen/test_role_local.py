"""The loadgen role on the local platform, against a real supervisord of its own and
stand-in frontends (tests/unit/loadgen/fake_openai.py, one URL per routing id), without
the rest of the demo. The frontends are given as dynamo publishes them, first two
(kv, round_robin), then reordered with a third (round_robin, kv, random): the program,
the page in Chromium, the settings and the metrics' labels follow the ids, in order.
Results come from the JSON callback, the app's API, supervisord and the files written."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from loadgen_support import FLAGS, FakeFrontends, LoadgenAPI
from helpers import free_ports, processes_mentioning, run_playbook, wait_for

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
MODEL = "nvidia/Llama-3.1-70B-Instruct-FP8"
OUTPUT = Path(__file__).resolve().parents[2] / "output"
# A title that needs quoting in a supervisord program: spaces, " #" and " ;" (its
# inline comments) and % (its expansions).
NASTY = "Random #1; 100% pick"


class Local:
    """A supervisord and folders laid out as infra publishes them, and the role run against them."""

    def __init__(self, root: Path, fake: FakeFrontends) -> None:
        self.root, self.fake = root, fake
        self.port = free_ports(1)[0]
        for sub in ("venvs", "logs", "run", "conf.d", "prometheus/targets"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.config = root / "supervisord.conf"
        self.config.write_text(textwrap.dedent(f"""\
            [unix_http_server]
            file={root}/run/s.sock
            chmod=0700
            [supervisord]
            logfile={root}/logs/supervisord.log
            pidfile={root}/run/supervisord.pid
            childlogdir={root}/logs
            [rpcinterface:supervisor]
            supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
            [supervisorctl]
            serverurl=unix://{root}/run/s.sock
            [include]
            files = {root}/conf.d/*.conf
            """))
        self.api = LoadgenAPI(f"http://127.0.0.1:{self.port}")

    def start_supervisord(self) -> None:
        subprocess.run([str(BIN / "supervisord"), "-c", str(self.config)], check=True)
        wait_for((self.root / "run" / "s.sock").exists, 20, what="supervisord's socket")

    def stop_supervisord(self) -> None:
        pidfile = self.root / "run" / "supervisord.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text())
            os.kill(pid, 15)
            wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, what="supervisord to exit")

    def status(self) -> str:
        return subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.config), "status"],
                              capture_output=True, text=True, check=False).stdout

    def frontends(self, order: list[str], titles: dict[str, str]) -> dict:
        return {fid: {"url": self.fake.url(fid), "metrics": self.fake.url(fid) + "/metrics",
                      "router_mode": "kv" if fid == "kv" else "round-robin", "title": titles[fid]} for fid in order}

    def run(self, entry: str, frontends: dict, *extra: str, env: dict[str, str] | None = None):
        vars_file = self.root / "vars.json"
        vars_file.write_text(json.dumps({
            "entry": entry, "loadgen_local_port": self.port,
            "infra__output": {"platform": "local", "local": {
                "root": str(self.root), "venvs": str(self.root / "venvs"), "logs": str(self.root / "logs"),
                "run": str(self.root / "run"), "python": sys.executable,
                "supervisor": {"config": str(self.config), "conf_dir": str(self.root / "conf.d")}}},
            "cluster_config__output": {"platform": "local",
                                       "prometheus": {"targets_dir": str(self.root / "prometheus" / "targets")}},
            "dynamo__output": {"platform": "local", "model": MODEL, "frontends": frontends},
        }))
        # The presenter token only where a test gives one (never the caller's own).
        env = {"GTC_PRESENTER_TOKEN": "", **(env or {})}
        return run_playbook("tests/integration/loadgen/role.yml", "-e", f"@{vars_file}", *extra, env=env,
                            json_output=True)

    def supervisorctl(self, *args: str) -> str:
        proc = subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.config), *args],
                              capture_output=True, text=True, check=False)
        return proc.stdout + proc.stderr


def output_of(run) -> dict:
    facts = [t.result["ansible_facts"]["loadgen__output"] for t in run.tasks()
             if "loadgen__output" in t.result.get("ansible_facts", {})]
    assert facts, run.output[-3000:]
    return facts[-1]


TWO = (["kv", "round_robin"], {"kv": "KV-aware", "round_robin": "Round-robin"})
THREE = (["round_robin", "kv", "random"], {"kv": "KV-aware", "round_robin": "Round-robin", "random": NASTY})


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    fake = FakeFrontends().start()
    stack = Local(tmp_path_factory.mktemp("loadgen-local"), fake)
    stack.start_supervisord()
    yield stack
    stack.stop_supervisord()
    fake.stop()
    assert not processes_mentioning(str(stack.root)), "a process of the test's demo outlived it"


def test_first_run_serves_every_frontend_and_publishes_its_output(local):
    run = local.run("main", local.frontends(*TWO))
    assert run.returncode == 0, run.output[-4000:]
    assert output_of(run) == {"platform": "local", "url": f"http://127.0.0.1:{local.port}",
                              "service": {"name": "", "namespace": "", "port": 0},
                              "image": output_of(run)["image"],
                              "presenter_token_secret": None, "presenter_token_command": None}
    assert "Presenter controls are open (no token in $GTC_PRESENTER_TOKEN)" in run.output
    assert re.search(r"gtc-loadgen\s+RUNNING", local.status()), local.status()
    state = local.api.get("/api/state")
    assert state["frontends"] == [{"id": "kv", "title": "KV-aware"}, {"id": "round_robin", "title": "Round-robin"}]
    assert state["settings"]["routing"] == "kv" and state["model"] == MODEL
    targets = json.loads((local.root / "prometheus" / "targets" / "gtc-loadgen.json").read_text())
    assert targets == [{"targets": [f"127.0.0.1:{local.port}"], "labels": {}}]


def test_a_rerun_changes_nothing_and_is_fast(local):
    started = time.monotonic()
    run = local.run("main", local.frontends(*TWO))
    elapsed = time.monotonic() - started
    assert run.returncode == 0 and run.recap["changed"] == 0, [t.name for t in run.tasks() if t.changed]
    # Asked once each: the install command and supervisor_programs; no pip, no supervisorctl.
    modules = [t.action for t in run.tasks() if t.action not in ("ansible.builtin.assert", "ansible.builtin.set_fact",
                                                                 "ansible.builtin.debug", "ansible.builtin.include_tasks",
                                                                 "ansible.builtin.include_role",
                                                                 "ansible.builtin.validate_argument_spec")
               and not t.skipped]
    assert modules == ["ansible.builtin.command", "do_solutions.gtc_demo.supervisor_programs"], modules
    print(f"\nloadgen role no-op rerun: {elapsed:.1f} s for the whole ansible-playbook run")


def test_check_mode_of_a_reorder_shows_the_change_and_writes_nothing(local):
    program = local.root / "conf.d" / "gtc-loadgen.conf"
    before = program.read_text()
    run = local.run("main", local.frontends(*THREE), "--check", "--diff")
    assert run.returncode == 0, run.output[-4000:]
    changed = [t for t in run.tasks() if t.changed]
    assert [t.action for t in changed] == ["do_solutions.gtc_demo.supervisor_programs"]
    assert "--frontend round_robin=" in changed[0].result["diff"]["after"]
    assert program.read_text() == before
    assert [f["id"] for f in local.api.get("/api/state")["frontends"]] == ["kv", "round_robin"]


def test_reordered_frontends_and_a_third_reach_the_page_settings_and_metrics(local, chromium_path):
    from playwright.sync_api import expect, sync_playwright

    run = local.run("main", local.frontends(*THREE))
    assert run.returncode == 0, run.output[-4000:]
    state = local.api.get("/api/state")
    assert state["frontends"] == [{"id": "round_robin", "title": "Round-robin"}, {"id": "kv", "title": "KV-aware"},
                                  {"id": "random", "title": NASTY}]
    assert state["settings"]["routing"] == "round_robin"  # the first, as nothing else was set
    local.api.post("/api/settings", {"concurrency": 3, "rate": 0, "think_min_s": 0.1, "think_max_s": 0.3,
                                     "turns_min": 2, "turns_max": 2, "max_tokens": 4})
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(local.api.base + "/")
            switch = page.locator("#routing-switch button")
            expect(switch).to_have_text(["Round-robin", "KV-aware", NASTY, "A/B"])
            expect(page.locator("#route-round_robin")).to_have_class(re.compile(r"\bon\b"))
            expect(page.locator(".headline .hl-label")).to_have_text(
                ["Round-robin · follow-up TTFT p90", "KV-aware · follow-up TTFT p90", f"{NASTY} · follow-up TTFT p90",
                 "Follow-up tail (p90) · ratio"])
            page.click("#route-random")
            expect(page.locator("#route-random")).to_have_class(re.compile(r"\bon\b"))
            assert local.api.get("/api/state")["settings"]["routing"] == "random"
            page.click("#btn-start")
            expect(page.locator("#hl-p50-random")).to_have_text(re.compile(r"\d+(\.\d+)? m?s"), timeout=30_000)
            expect(page.locator("#conv-table .pill").first).to_have_text(NASTY, timeout=20_000)
            page.screenshot(path=str(OUTPUT / "loadgen-three-frontends.png"))
            page.click("#route-kv")
            expect(page.locator("#hl-p50-kv")).to_have_text(re.compile(r"\d+(\.\d+)? m?s"), timeout=30_000)
            page.click("#btn-stop")
        finally:
            browser.close()
    local.api.stop_and_drain()
    reached = local.fake.reached()
    assert reached.get("random", 0) > 0 and reached.get("kv", 0) > 0, reached
    with urllib.request.urlopen(local.api.base + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    for fid in ("random", "kv"):
        assert f'loadgen_requests_total{{outcome="ok",routing="{fid}"}}' in metrics, fid
    assert 'loadgen_active_conversations{routing="round_robin"} 0.0' in metrics
    refused = local.api.post_status("/api/settings", {"routing": "least_loaded"})
    assert refused == (422, "routing must be one of round_robin, kv, random, got 'least_loaded'")


# The presenter's settings after a restart: a mix of every kind of control, none of them a default.
KEPT = {"concurrency": 7, "rate": 2.5, "routing": "kv", "ab": True, "turns_min": 2, "turns_max": 6,
        "max_tokens": 12, "auto_ramp_s": 9, "running": False}


def _pid(local) -> int:
    return int(re.search(r"gtc-loadgen\s+RUNNING\s+pid (\d+)", local.status()).group(1))


def test_the_settings_survive_a_stop_and_start_of_the_program(local):
    local.api.post("/api/preset/busy", {})
    local.api.post("/api/settings", KEPT)
    before = local.api.get("/api/state")["settings"]
    pid = _pid(local)
    started = time.monotonic()
    assert "stopped" in local.supervisorctl("stop", "gtc-loadgen")
    assert "started" in local.supervisorctl("start", "gtc-loadgen")
    wait_for(lambda: _healthy(local), 60, what="the restarted app")
    elapsed = time.monotonic() - started
    state = local.api.get("/api/state")
    assert _pid(local) != pid
    assert state["settings"] == before, (state["settings"], before)
    assert {k: state["settings"][k] for k in KEPT} == KEPT and state["settings"]["preset"] == "custom"
    kept = local.root / "run" / "gtc-loadgen-settings.json"
    assert state["persistence"] == {"store": str(kept), "error": None}
    assert json.loads(kept.read_text())["settings"] == before
    print(f"\nloadgen stop + start with its settings back: {elapsed:.1f} s")


def _healthy(local) -> bool:
    try:
        return local.api.get("/healthz")["status"] == "ok"
    except OSError:
        return False


TOKEN = "presenter-sentinel-7c1f0e"  # a sentinel: it must appear nowhere but its own 0600 file


def test_a_presenter_token_guards_the_controls_and_stays_out_of_files_and_output(local, chromium_path):
    from playwright.sync_api import expect, sync_playwright

    settings = local.api.get("/api/state")["settings"]
    run = local.run("main", local.frontends(*THREE), "-vvv", env={"GTC_PRESENTER_TOKEN": TOKEN})
    assert run.returncode == 0, run.output[-4000:]
    assert [t.name for t in run.tasks() if t.changed] == [
        "Keep a hash of the presenter token for the app (mode 0600)", "Run the app under supervisord"], [t.name for t in run.tasks() if t.changed]
    token_file = local.root / "run" / "gtc-loadgen-presenter-token.hash"
    assert token_file.read_text().startswith("scrypt$") and oct(token_file.stat().st_mode & 0o777) == "0o600"
    # The token is nowhere: not in the output of -vvv, the hash, the program file, its log,
    # supervisord's log or the kept settings.
    assert TOKEN not in run.output
    leaks = [str(p) for p in local.root.rglob("*") if p.is_file() and not p.is_socket()
             and TOKEN.encode() in p.read_bytes()]
    assert not leaks, leaks
    program = (local.root / "conf.d" / "gtc-loadgen.conf").read_text()
    assert f'GTC_LOADGEN_PRESENTER_TOKEN_HASH_FILE="{token_file}"' in program
    assert "Presenter controls need the token in $GTC_PRESENTER_TOKEN." in run.output
    # The restart for the token kept the presenter's settings.
    assert local.api.get("/api/state")["settings"] == settings
    assert local.api.get("/api/state")["auth"] == {"required": True}
    assert local.api.post_status("/api/settings", {"concurrency": 3}) == (
        401, "presenter token required: this control needs 'Authorization: Bearer <token>'")
    assert LoadgenAPI(local.api.base, token=TOKEN).post("/api/settings", {"concurrency": 4})["settings"][
        "concurrency"] == 4
    again = local.run("main", local.frontends(*THREE), env={"GTC_PRESENTER_TOKEN": TOKEN})
    assert again.returncode == 0 and again.recap["changed"] == 0, [t.name for t in again.tasks() if t.changed]
    # Check mode with another token: the change is reported, nothing is written or restarted.
    hashed, pid = token_file.read_text(), _pid(local)
    check = local.run("main", local.frontends(*THREE), "--check", env={"GTC_PRESENTER_TOKEN": TOKEN + "-new"})
    assert check.returncode == 0, check.output[-4000:]
    assert [t.name for t in check.tasks() if t.changed] == [
        "Keep a hash of the presenter token for the app (mode 0600)", "Run the app under supervisord"]
    assert token_file.read_text() == hashed and _pid(local) == pid

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(local.api.base + "/")
            # The audience's view: everything drawn, the controls marked as needing the token.
            expect(page.locator("#auth-badge")).to_have_text("view only")
            expect(page.locator("#routing-switch button")).to_have_count(4)
            expect(page.locator("#auth")).to_be_hidden()
            page.click("#preset-idle")
            expect(page.locator("#auth")).to_be_visible()
            expect(page.locator("#auth-state")).to_have_text("presenter token required")
            assert local.api.get("/api/state")["settings"]["preset"] != "idle"
            page.fill("#auth-token", "not-the-token")
            page.click("#auth-submit")
            expect(page.locator("#auth-state")).to_have_text("wrong token")
            assert page.evaluate("sessionStorage.getItem('gtc-loadgen-presenter-token')") is None
            page.fill("#auth-token", TOKEN)
            page.click("#auth-submit")  # sends the preset that met the 401 again
            expect(page.locator("#preset-idle")).to_have_class(re.compile(r"\bon\b"))
            expect(page.locator("#auth")).to_be_hidden()
            expect(page.locator("#auth-badge")).to_have_text("presenter")
            page.click("#preset-booth")  # asked once: the tab keeps the token
            expect(page.locator("#preset-booth")).to_have_class(re.compile(r"\bon\b"))
            page.screenshot(path=str(OUTPUT / "loadgen-presenter-token.png"))
        finally:
            browser.close()
    assert local.api.get("/api/state")["settings"]["preset"] == "booth"

    # No token again: the file goes and the controls are open.
    opened = local.run("main", local.frontends(*THREE))
    assert opened.returncode == 0, opened.output[-4000:]
    assert not token_file.exists()
    assert "GTC_LOADGEN_PRESENTER_TOKEN_HASH_FILE=" not in (local.root / "conf.d" / "gtc-loadgen.conf").read_text()
    assert local.api.get("/api/state")["auth"] == {"required": False}
    assert local.api.post("/api/settings", {"concurrency": 5})["settings"]["concurrency"] == 5


def test_teardown_removes_everything_and_a_second_changes_nothing(local):
    run = local.run("teardown", {})
    assert run.returncode == 0, run.output[-4000:]
    assert "gtc-loadgen" not in local.status()
    for path in ("venvs/loadgen", "venvs/loadgen-src", "conf.d/gtc-loadgen.conf", "prometheus/targets/gtc-loadgen.json",
                 "run/gtc-loadgen-settings.json", "run/gtc-loadgen-presenter-token.hash"):
        assert not (local.root / path).exists(), path
    again = local.run("teardown", {})
    assert again.returncode == 0 and again.recap["changed"] == 0, again.output[-3000:]
    # With supervisord gone as well (infra's teardown stops it), teardown still passes.
    local.stop_supervisord()
    gone = local.run("teardown", {})
    assert gone.returncode == 0 and gone.recap["changed"] == 0, gone.output[-3000:]
