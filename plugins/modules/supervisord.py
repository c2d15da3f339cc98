#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: supervisord
short_description: Run, reload or stop the supervisord that one configuration file describes
version_added: 0.2.0
description:
  - Keeps one supervisord running from O(config). It writes the configuration from O(content) when
    given, starts supervisord when nothing answers on the control socket the configuration names,
    reloads a running one when its configuration changed (as C(supervisorctl reload) does), and
    waits until supervisord answers with the state C(RUNNING).
  - With O(state=stopped) it shuts supervisord down, with every program it runs, and waits until
    the process has exited.
  - Talks to supervisord through its XML-RPC API (C(supervisor.getState), C(supervisor.restart),
    C(supervisor.shutdown)); nothing depends on the wording of C(supervisorctl) output.
  - The programs themselves are the business of M(do_solutions.gtc_demo.supervisor_programs).
author:
  - DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module asks supervisord whether it runs and compares the file; it starts,
        reloads, stops and writes nothing.
  diff_mode:
    support: full
    details:
      - The diff shows the configuration file before and after, when O(content) is given.
  platform:
    platforms: posix
options:
  config:
    description:
      - Path of supervisord's configuration file. Its C([supervisorctl] serverurl), else its
        C([unix_http_server] file), says where supervisord listens.
    type: path
    required: true
  content:
    description:
      - The configuration file's content. When given, the file is written (mode C(0644)) if it
        differs, and a running supervisord is reloaded to read it.
      - When left out, the file must already exist and is used as it is.
    type: str
  executable:
    description:
      - Path of the C(supervisord) program that starts supervisord when it is not running.
      - Required with O(state=started) and O(state=restarted).
    type: path
  state:
    description:
      - V(started) writes the file, starts supervisord if it is not running and reloads it if the file changed.
      - V(restarted) does the same and reloads a running supervisord even when nothing changed.
      - V(stopped) shuts supervisord and its programs down.
    type: str
    choices: [started, restarted, stopped]
    default: started
  wait_timeout:
    description:
      - Seconds to wait until supervisord answers after a start or a reload, or until it has exited
        after a shutdown.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Run supervisord for the local demo
  do_solutions.gtc_demo.supervisord:
    config: /home/me/.local/state/gtc-demo/supervisor/supervisord.conf
    content: "{{ lookup('ansible.builtin.template', 'supervisord.conf.j2') }}"
    executable: /home/me/.local/state/gtc-demo/venvs/supervisor/bin/supervisord

- name: Stop it and every program it runs
  do_solutions.gtc_demo.supervisord:
    config: /home/me/.local/state/gtc-demo/supervisor/supervisord.conf
    state: stopped
"""

RETURN = r"""
pid:
  description: Process id of supervisord after the task; C(0) when it is not running.
  returned: always
  type: int
  sample: 4242
running:
  description: Whether supervisord runs after the task (in check mode, whether it runs now).
  returned: always
  type: bool
actions:
  description: What was done, in order (V(wrote), V(started), V(reloaded), V(stopped)).
  returned: always
  type: list
  elements: str
  sample: [wrote, reloaded]
"""

import configparser
import os
import tempfile
import time
import xmlrpc.client

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.supervisor import SupervisorError, connect

# supervisor/states.py: SupervisorStates.RUNNING's name, as getState() reports it.
RUNNING = "RUNNING"
POLL = 0.2


def read(path: str) -> str | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def write(path: str, content: str) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".supervisord-", suffix=".conf")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def answering_pid(config: str) -> int:
    """The pid of the supervisord that answers, RUNNING, on the socket ``config`` names; 0 if none does.

    A supervisord that is starting, reloading or shutting down answers another state name
    (supervisor/rpcinterface.py: getState reports options.mood), and counts as not answering yet.
    """
    if not os.path.exists(config):
        return 0
    try:
        rpc = connect(config, timeout=5.0)
        if rpc.supervisor.getState()["statename"] != RUNNING:
            return 0
        return int(rpc.supervisor.getPID())
    except (OSError, xmlrpc.client.Error):
        return 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log_tail(config: str, lines: int = 20) -> str:
    """The end of supervisord's own log ([supervisord] logfile), for a failure message."""
    parser = configparser.RawConfigParser(strict=False, inline_comment_prefixes=(";", "#"))
    try:
        parser.read(config)
        path = parser.get("supervisord", "logfile")
    except (configparser.Error, OSError):
        return ""
    here = os.path.dirname(os.path.abspath(config))
    path = path.replace("%(here)s", here)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


def wait_answering(config: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        pid = answering_pid(config)
        if pid:
            return pid
        if time.monotonic() >= deadline:
            tail = log_tail(config)
            raise SupervisorError(f"supervisord ({config}) did not answer within {timeout:g}s"
                                  + (f"; the end of its log:\n{tail}" if tail else ""))
        time.sleep(POLL)


def call(rpc, what: str) -> None:
    try:
        getattr(rpc.supervisor, what)()
    except xmlrpc.client.Fault as fault:
        raise SupervisorError(f"supervisord refused {what}: {fault.faultString}") from fault
    except OSError as exc:
        raise SupervisorError(f"supervisord does not answer ({what}): {exc}") from exc


def start(module: AnsibleModule, config: str) -> None:
    executable = module.params["executable"]
    if not executable or not os.access(executable, os.X_OK):
        raise SupervisorError(f"cannot start supervisord: {executable!r} is not an executable program")
    # supervisord forks into the background once its control socket is open (supervisord.py, run()).
    rc, out, err = module.run_command([executable, "-c", config])
    if rc != 0:
        raise SupervisorError(f"{executable} -c {config} exited with {rc}: {(out + err).strip()}")


def started(module: AnsibleModule, result: dict) -> dict:
    params = module.params
    config, content = params["config"], params["content"]
    before = read(config)
    if content is None and before is None:
        raise SupervisorError(f"{config} does not exist and no content was given")
    file_changed = content is not None and before != content
    # The running supervisord, if any, listens where the file it was started from says.
    pid = answering_pid(config)
    reload = bool(pid) and (file_changed or params["state"] == "restarted")
    result["changed"] = file_changed or not pid or reload
    if content is not None:
        result["diff"] = {"before": before or "", "after": content, "before_header": config, "after_header": config}
    if module.check_mode or not result["changed"]:
        result.update(pid=pid, running=bool(pid))
        return result
    # Through the socket of the file supervisord was started from, before a new file names another.
    rpc = connect(config) if reload else None
    if file_changed:
        write(config, content)
        result["actions"].append("wrote")
    if not pid:
        start(module, config)
        result["actions"].append("started")
    elif reload:
        # restart() sets supervisord's mood to RESTARTING before it answers, so a later getState
        # that says RUNNING comes from the new run, which has read the file again
        # (supervisor/rpcinterface.py restart; supervisord.py main).
        call(rpc, "restart")
        result["actions"].append("reloaded")
    pid = wait_answering(config, params["wait_timeout"])
    result.update(pid=pid, running=True)
    return result


def stopped(module: AnsibleModule, result: dict) -> dict:
    config = module.params["config"]
    pid = answering_pid(config)
    result["changed"] = bool(pid)
    if module.check_mode or not pid:
        result.update(pid=pid, running=bool(pid))
        return result
    call(connect(config), "shutdown")
    result["actions"].append("stopped")
    deadline = time.monotonic() + module.params["wait_timeout"]
    while alive(pid):
        if time.monotonic() >= deadline:
            raise SupervisorError(f"supervisord (pid {pid}) was asked to shut down and still runs after "
                                  f"{module.params['wait_timeout']}s")
        time.sleep(POLL)
    result.update(pid=0, running=False)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type="path", required=True),
            content=dict(type="str"),
            executable=dict(type="path"),
            state=dict(type="str", default="started", choices=["started", "restarted", "stopped"]),
            wait_timeout=dict(type="int", default=30),
        ),
        required_if=[("state", "started", ("executable",)), ("state", "restarted", ("executable",))],
        supports_check_mode=True,
    )
    result: dict = {"changed": False, "actions": []}
    try:
        if module.params["state"] == "stopped":
            result = stopped(module, result)
        else:
            result = started(module, result)
    except SupervisorError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
