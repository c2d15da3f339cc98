"""The supervisord module against a real supervisord (supervisor 4.3.0 from PyPI, as the local demo runs it).

Every call goes through ansible (ad hoc, JSON callback), as a playbook runs the module;
what the tests check is the process table, supervisord's own XML-RPC answers and the files.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
import xmlrpc.client
from pathlib import Path

import pytest

from helpers import REPO, run_module_adhoc

SUPERVISORD = Path(sys.executable).with_name("supervisord")
SLEEPER = f"{sys.executable} -c 'import time; time.sleep(600)'"


def config_text(root: Path, identifier: str = "gtc-test", programs: str = "") -> str:
    return textwrap.dedent(f"""\
        [unix_http_server]
        file={root}/run/s.sock
        chmod=0700
        [supervisord]
        logfile={root}/supervisord.log
        pidfile={root}/run/supervisord.pid
        childlogdir={root}
        identifier={identifier}
        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
        [supervisorctl]
        serverurl=unix://{root}/run/s.sock
        """) + programs


def rpc(root: Path):
    # The module's own connection helper is the one under test elsewhere; ask supervisord directly here.
    sys.path.insert(0, str(REPO / ".collections"))
    from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.supervisor import connect  # noqa: E402

    return connect(str(root / "supervisor" / "supervisord.conf"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.fixture
def root(tmp_path):
    """A state folder like infra's (run/ for the socket); any supervisord left is killed afterwards."""
    if not SUPERVISORD.exists():
        pytest.fail(f"{SUPERVISORD} is missing: supervisor is pinned in requirements/dev.txt (make setup)")
    (tmp_path / "run").mkdir()
    yield tmp_path
    pidfile = tmp_path / "run" / "supervisord.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def run_module(root: Path, *flags: str, **args) -> dict:
    module_args = {"config": str(root / "supervisor" / "supervisord.conf"), "executable": str(SUPERVISORD), **args}
    return run_module_adhoc("do_solutions.gtc_demo.supervisord", module_args, *flags)


def test_check_mode_on_nothing_says_it_would_start_and_does_nothing(root):
    conf = root / "supervisor" / "supervisord.conf"
    result = run_module(root, "--check", "--diff", content=config_text(root))
    assert result["changed"] is True and result["running"] is False and result["pid"] == 0, result
    assert result["actions"] == []
    assert "identifier=gtc-test" in result["diff"]["after"] and result["diff"]["before"] == ""
    assert not conf.exists() and not (root / "run" / "s.sock").exists()


def test_starts_writes_answers_then_a_rerun_changes_nothing(root):
    conf = root / "supervisor" / "supervisord.conf"
    content = config_text(root)
    first = run_module(root, content=content)
    assert first["changed"] is True and first["actions"] == ["wrote", "started"], first
    assert conf.read_text() == content and oct(conf.stat().st_mode & 0o777) == "0o644"
    pid = int((root / "run" / "supervisord.pid").read_text())
    assert first["pid"] == pid and alive(pid)
    assert rpc(root).supervisor.getState()["statename"] == "RUNNING"

    again = run_module(root, content=content)
    assert again["changed"] is False and again["actions"] == [] and again["pid"] == pid, again

    # Without content the file on disk is used as it is.
    bare = run_module(root)
    assert bare["changed"] is False and bare["pid"] == pid


def test_a_changed_configuration_is_written_and_reloaded_in_place(root):
    run_module(root, content=config_text(root))
    pid = int((root / "run" / "supervisord.pid").read_text())
    assert rpc(root).supervisor.getIdentification() == "gtc-test"
    changed = config_text(root, identifier="gtc-test-2")

    dry = run_module(root, "--check", "--diff", content=changed)
    assert dry["changed"] is True and dry["actions"] == []
    assert "identifier=gtc-test-2" in dry["diff"]["after"] and "identifier=gtc-test\n" in dry["diff"]["before"]
    assert rpc(root).supervisor.getIdentification() == "gtc-test", "check mode reloaded supervisord"

    result = run_module(root, content=changed)
    assert result["changed"] is True and result["actions"] == ["wrote", "reloaded"], result
    # The same process, now running the new file.
    assert result["pid"] == pid and alive(pid)
    assert rpc(root).supervisor.getIdentification() == "gtc-test-2"


def test_restarted_reloads_an_unchanged_configuration(root):
    content = config_text(root, programs="[program:sleeper]\ncommand=" + SLEEPER + "\nstartsecs=0\n")
    run_module(root, content=content)
    before = rpc(root).supervisor.getProcessInfo("sleeper")["pid"]
    result = run_module(root, content=content, state="restarted")
    assert result["changed"] is True and result["actions"] == ["reloaded"], result
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = rpc(root).supervisor.getProcessInfo("sleeper")
        if info["statename"] == "RUNNING":
            break
        time.sleep(0.2)
    assert info["pid"] != before and not alive(before), "a reload restarts the programs"


def test_stopped_shuts_supervisord_and_its_programs_down(root):
    run_module(root, content=config_text(root, programs="[program:sleeper]\ncommand=" + SLEEPER + "\nstartsecs=0\n"))
    pid = int((root / "run" / "supervisord.pid").read_text())
    deadline = time.monotonic() + 20
    while rpc(root).supervisor.getProcessInfo("sleeper")["statename"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    child = rpc(root).supervisor.getProcessInfo("sleeper")["pid"]

    dry = run_module(root, "--check", state="stopped")
    assert dry["changed"] is True and dry["running"] is True and alive(pid)

    result = run_module(root, state="stopped")
    assert result["changed"] is True and result["actions"] == ["stopped"] and result["pid"] == 0, result
    assert not alive(pid) and not alive(child)
    again = run_module(root, state="stopped")
    assert again["changed"] is False and again["actions"] == []


def test_a_configuration_supervisord_refuses_fails_with_the_reason(root):
    bad = config_text(root) + "[program:broken]\n"  # a program without a command
    result = run_module(root, content=bad, wait_timeout=5)
    assert result.get("failed") is True, result
    assert "exited with" in result["msg"] and "command" in result["msg"], result["msg"]
    with pytest.raises((OSError, xmlrpc.client.Error)):
        rpc(root).supervisor.getState()


def test_starting_needs_a_supervisord_program(root):
    result = run_module(root, content=config_text(root), executable=str(root / "nowhere" / "supervisord"))
    assert result.get("failed") is True
    assert "is not an executable program" in result["msg"]
