"""supervisor_programs against a real supervisord (supervisor 4.3.0 from PyPI, as the local demo runs it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import run_module_adhoc

SUPERVISORD = Path(sys.executable).with_name("supervisord")
SLEEPER = f"{sys.executable} -c 'import time; time.sleep(600)'"
FAILER = f"{sys.executable} -c 'import sys; print(\"cannot bind 127.0.0.1:9: address in use\"); sys.exit(3)'"


def program(name: str, command: str, startsecs: int = 1) -> str:
    return textwrap.dedent(f"""\
        [program:{name}]
        command={command}
        autostart=true
        autorestart=false
        startsecs={startsecs}
        startretries=0
        stopasgroup=true
        killasgroup=true
        redirect_stderr=true
        """)


def group(name: str, programs: dict[str, str]) -> str:
    return f"[group:{name}]\nprograms={','.join(programs)}\n\n" + "\n".join(
        program(p, cmd) for p, cmd in programs.items())


@pytest.fixture
def supervisord(tmp_path):
    """A supervisord of its own, with an include folder, stopped afterwards."""
    if not SUPERVISORD.exists():
        pytest.fail(f"{SUPERVISORD} is missing: supervisor is pinned in requirements/dev.txt (make setup)")
    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    config = tmp_path / "supervisord.conf"
    config.write_text(textwrap.dedent(f"""\
        [unix_http_server]
        file={tmp_path}/s.sock
        chmod=0700
        [supervisord]
        logfile={tmp_path}/supervisord.log
        pidfile={tmp_path}/supervisord.pid
        childlogdir={tmp_path}
        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
        [supervisorctl]
        serverurl=unix://{tmp_path}/s.sock
        [include]
        files = {conf_dir}/*.conf
        """))
    subprocess.run([str(SUPERVISORD), "-c", str(config)], check=True)
    deadline = time.monotonic() + 20
    while not (tmp_path / "s.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    yield config, conf_dir
    pid = int((tmp_path / "supervisord.pid").read_text())
    os.kill(pid, 15)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def run_module(config: Path, *flags: str, **args) -> dict:
    """The module as a playbook runs it (ansible ad hoc, JSON callback)."""
    return run_module_adhoc("do_solutions.gtc_demo.supervisor_programs", {"config": str(config), **args}, *flags)


def states(result: dict) -> dict[str, str]:
    return {p["name"]: p["state"] for p in result.get("programs", [])}


def test_present_writes_loads_and_waits_until_running(supervisord):
    config, conf_dir = supervisord
    conf = conf_dir / "demo.conf"
    content = group("demo", {"demo-a": SLEEPER, "demo-b": SLEEPER})
    result = run_module(config, name="demo", conf_file=str(conf), content=content)
    assert result["changed"] is True, result
    assert states(result) == {"demo-a": "RUNNING", "demo-b": "RUNNING"}
    assert conf.read_text() == content
    assert result["actions"] == ["wrote", "loaded"]

    again = run_module(config, name="demo", conf_file=str(conf), content=content)
    assert again["changed"] is False, again
    assert again["actions"] == []


def test_check_mode_shows_the_diff_and_changes_nothing(supervisord):
    config, conf_dir = supervisord
    conf = conf_dir / "demo.conf"
    first = group("demo", {"demo-a": SLEEPER})
    run_module(config, name="demo", conf_file=str(conf), content=first)
    pid = run_module(config, name="demo", conf_file=str(conf), content=first)["programs"][0]["pid"]
    second = group("demo", {"demo-a": SLEEPER, "demo-b": SLEEPER})
    result = run_module(config, "--check", "--diff", name="demo", conf_file=str(conf), content=second)
    assert result["changed"] is True
    assert "demo-b" in result["diff"]["after"] and "demo-b" not in result["diff"]["before"]
    assert conf.read_text() == first
    assert states(result) == {"demo-a": "RUNNING"}
    assert result["programs"][0]["pid"] == pid


def test_a_changed_file_stops_clears_and_reloads_only_its_group(supervisord, tmp_path):
    config, conf_dir = supervisord
    other = conf_dir / "other.conf"
    run_module(config, name="other", conf_file=str(other), content=program("other", SLEEPER))
    other_pid = run_module(config, name="other", conf_file=str(other), content=program("other", SLEEPER))
    other_pid = other_pid["programs"][0]["pid"]
    conf = conf_dir / "demo.conf"
    discovery = tmp_path / "discovery"
    run_module(config, name="demo", conf_file=str(conf), content=group("demo", {"demo-a": SLEEPER}))
    (discovery / "stale").mkdir(parents=True)
    changed = group("demo", {"demo-a": SLEEPER, "demo-c": SLEEPER})
    result = run_module(config, name="demo", conf_file=str(conf), content=changed, clear_paths=[str(discovery)])
    assert result["actions"] == ["stopped", "cleared", "wrote", "loaded"], result
    assert states(result) == {"demo-a": "RUNNING", "demo-c": "RUNNING"}
    assert not discovery.exists()
    still = run_module(config, name="other", conf_file=str(other), content=program("other", SLEEPER))
    assert still["changed"] is False and still["programs"][0]["pid"] == other_pid


def test_a_stopped_program_is_started_and_reported_as_a_change(supervisord):
    config, conf_dir = supervisord
    conf = conf_dir / "solo.conf"
    content = program("solo", SLEEPER)
    first = run_module(config, name="solo", conf_file=str(conf), content=content)
    subprocess.run([str(SUPERVISORD.with_name("supervisorctl")), "-c", str(config), "stop", "solo"],
                   check=True, capture_output=True)
    result = run_module(config, name="solo", conf_file=str(conf), content=content)
    assert result["changed"] is True and result["actions"] == ["started"]
    assert result["programs"][0]["pid"] != first["programs"][0]["pid"]


def test_restarted_restarts_an_unchanged_group(supervisord):
    config, conf_dir = supervisord
    conf = conf_dir / "solo.conf"
    content = program("solo", SLEEPER)
    first = run_module(config, name="solo", conf_file=str(conf), content=content)
    result = run_module(config, name="solo", conf_file=str(conf), content=content, state="restarted")
    assert result["changed"] is True and result["actions"] == ["stopped", "started"]
    assert result["programs"][0]["pid"] != first["programs"][0]["pid"]


def test_a_fatal_program_fails_with_its_log(supervisord):
    config, conf_dir = supervisord
    conf = conf_dir / "demo.conf"
    result = run_module(config, name="demo", conf_file=str(conf),
                        content=group("demo", {"demo-ok": SLEEPER, "demo-bad": FAILER}), wait_timeout=30)
    assert result.get("failed") is True, result
    assert "demo-bad: FATAL" in result["msg"]
    assert "address in use" in result["msg"]
    # It fails as soon as one program is FATAL; the other may not have finished starting.
    assert re.search(r"demo-ok: (STARTING|RUNNING)", result["msg"]), result["msg"]


def test_absent_stops_unloads_and_removes_the_file(supervisord):
    config, conf_dir = supervisord
    conf = conf_dir / "demo.conf"
    run_module(config, name="demo", conf_file=str(conf), content=group("demo", {"demo-a": SLEEPER}))
    result = run_module(config, name="demo", conf_file=str(conf), state="absent")
    assert result["changed"] is True and result["actions"] == ["removed", "deleted file"]
    assert not conf.exists()
    again = run_module(config, name="demo", conf_file=str(conf), state="absent")
    assert again["changed"] is False


def test_an_unreachable_supervisord_is_a_clear_error(tmp_path):
    config = tmp_path / "supervisord.conf"
    config.write_text(f"[supervisorctl]\nserverurl=unix://{tmp_path}/none.sock\n")
    result = run_module(config, name="demo", conf_file=str(tmp_path / "x.conf"), content="")
    assert result.get("failed") is True
    assert "supervisord does not answer" in result["msg"]


def test_a_changed_extra_file_restarts_the_group_and_is_written_while_it_is_stopped(supervisord, tmp_path):
    config, conf_dir = supervisord
    conf = conf_dir / "demo.conf"
    policy = tmp_path / "run" / "policy.yaml"
    content = group("demo", {"demo-a": SLEEPER})
    first = run_module(config, name="demo", conf_file=str(conf), content=content,
                       files=[{"path": str(policy), "content": "credit: 1\n"}])
    assert first["changed"] is True and first["actions"] == ["wrote", "wrote files", "loaded"], first
    assert policy.read_text() == "credit: 1\n" and oct(policy.stat().st_mode & 0o777) == "0o644"
    pid = first["programs"][0]["pid"]

    same = run_module(config, name="demo", conf_file=str(conf), content=content,
                      files=[{"path": str(policy), "content": "credit: 1\n"}])
    assert same["changed"] is False and same["programs"][0]["pid"] == pid

    dry = run_module(config, "--check", "--diff", name="demo", conf_file=str(conf), content=content,
                     files=[{"path": str(policy), "content": "credit: 2\n"}])
    assert dry["changed"] is True and policy.read_text() == "credit: 1\n"
    assert [d["after_header"] for d in dry["diff"]] == [str(conf), str(policy)]
    assert dry["diff"][1]["before"] == "credit: 1\n" and dry["diff"][1]["after"] == "credit: 2\n"

    changed = run_module(config, name="demo", conf_file=str(conf), content=content,
                         files=[{"path": str(policy), "content": "credit: 2\n"}])
    assert changed["actions"] == ["stopped", "wrote files", "started"], changed
    assert policy.read_text() == "credit: 2\n"
    assert changed["programs"][0]["state"] == "RUNNING" and changed["programs"][0]["pid"] != pid

    gone = run_module(config, name="demo", conf_file=str(conf), state="absent",
                      files=[{"path": str(policy), "content": ""}])
    assert gone["actions"] == ["removed", "deleted file", "deleted files"] and not policy.exists()


def test_absent_without_a_running_supervisord_removes_what_is_left(tmp_path):
    """Teardown after supervisord was stopped (or its configuration removed) has nothing to stop."""
    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    conf = conf_dir / "demo.conf"
    conf.write_text(group("demo", {"demo-a": SLEEPER}))
    leftover = tmp_path / "discovery"
    (leftover / "stale").mkdir(parents=True)
    config = tmp_path / "supervisord.conf"
    config.write_text(f"[supervisorctl]\nserverurl=unix://{tmp_path}/none.sock\n")
    result = run_module(config, name="demo", conf_file=str(conf), state="absent", clear_paths=[str(leftover)])
    assert not result.get("failed"), result
    assert result["changed"] is True and result["actions"] == ["deleted file", "cleared"]
    assert not conf.exists() and not leftover.exists()
    config.unlink()
    again = run_module(config, name="demo", conf_file=str(conf), state="absent", clear_paths=[str(leftover)])
    assert not again.get("failed") and again["changed"] is False, again
    # Anything but absent still needs supervisord.
    config.write_text(f"[supervisorctl]\nserverurl=unix://{tmp_path}/none.sock\n")
    present = run_module(config, name="demo", conf_file=str(conf), content="x")
    assert present.get("failed") is True and "supervisord does not answer" in present["msg"]
