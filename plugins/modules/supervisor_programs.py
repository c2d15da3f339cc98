#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: supervisor_programs
short_description: Reconcile one process group of a running supervisord
version_added: 0.2.0
description:
  - Writes the program file of one supervisord process group (a C([group:x]) section with its
    C([program:y]) sections, or one lone C([program:x])), loads a changed file into the running
    supervisord the way C(supervisorctl update NAME) does, starts what is not running and waits
    until every program of the group is C(RUNNING).
  - Talks to supervisord through its XML-RPC API on the control socket that O(config) names, so
    nothing depends on the wording of C(supervisorctl) output.
  - A program that ends C(FATAL), or a group that is not all C(RUNNING) after O(wait_timeout),
    fails the task with every program's state and the end of each failing program's log.
  - Only the group O(name) is touched; changes other files make to other groups stay pending.
author:
  - DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module compares the file and the processes' states and changes nothing.
  diff_mode:
    support: full
    details:
      - The diff shows the program file before and after; with O(files), a list of diffs, the program
        file's and then those of the files that change.
  platform:
    platforms: posix
options:
  config:
    description:
      - Path of supervisord's configuration; its C([supervisorctl] serverurl) (or
        C([unix_http_server] file)) says where supervisord listens.
    type: path
    required: true
  name:
    description:
      - The process group, that is the name of a C([group:NAME]) section or of a lone C([program:NAME]).
    type: str
    required: true
  conf_file:
    description:
      - The program file of the group, in a folder supervisord's C([include]) reads.
      - Required unless O(state=absent) is given without it (then only the running group is removed).
    type: path
  content:
    description:
      - The program file's content. Required with O(state=present) and O(state=restarted).
    type: str
  state:
    description:
      - V(present) writes the file, loads it if it changed and makes every program run.
      - V(restarted) does the same and restarts the group even when nothing changed.
      - V(absent) stops the group, unloads it and removes O(conf_file). When no supervisord answers on
        the control socket (it was stopped first), nothing of the group runs and only the file is removed.
    type: str
    choices: [present, restarted, absent]
    default: present
  files:
    description:
      - Other files the group's programs read (a policy file, say), written with the program file.
      - A change to one of them restarts the group, with O(clear_paths) cleared while it is stopped.
      - With O(state=absent) they are removed.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Where the file goes.
        type: path
        required: true
      content:
        description: Its content.
        type: str
        required: true
      mode:
        description: Its permissions, as an octal string.
        type: str
        default: "0644"
  clear_paths:
    description:
      - Files or folders removed while the group is stopped, before it starts again after a
        change or a restart (for example a discovery folder whose entries would point at
        processes that are gone).
      - With O(state=absent), removed after the group is gone.
    type: list
    elements: path
    default: []
  wait_timeout:
    description:
      - Seconds to wait until every program of the group is C(RUNNING). C(0) does not wait.
    type: int
    default: 60
  log_lines:
    description:
      - Lines of each failing program's log in the failure message.
    type: int
    default: 20
"""

EXAMPLES = r"""
- name: Run the inference graph's programs
  do_solutions.gtc_demo.supervisor_programs:
    config: "{{ infra__output.local.supervisor.config }}"
    name: dynamo
    conf_file: "{{ infra__output.local.supervisor.conf_dir }}/dynamo.conf"
    content: "{{ lookup('ansible.builtin.template', 'supervisor-dynamo.conf.j2') }}"
    files:
      - path: "{{ infra__output.local.run }}/dynamo-router-policy.yaml"
        content: "{{ lookup('ansible.builtin.template', 'router_policy.yaml.j2') }}"
    clear_paths:
      - "{{ infra__output.local.run }}/dynamo-discovery"
    wait_timeout: 120

- name: Restart the load generator after its code changed
  do_solutions.gtc_demo.supervisor_programs:
    config: "{{ infra__output.local.supervisor.config }}"
    name: loadgen
    conf_file: "{{ infra__output.local.supervisor.conf_dir }}/loadgen.conf"
    content: "{{ lookup('ansible.builtin.template', 'supervisor-loadgen.conf.j2') }}"
    state: restarted

- name: Remove the graph
  do_solutions.gtc_demo.supervisor_programs:
    config: "{{ infra__output.local.supervisor.config }}"
    name: dynamo
    conf_file: "{{ infra__output.local.supervisor.conf_dir }}/dynamo.conf"
    state: absent
"""

RETURN = r"""
programs:
  description: The group's programs after the task, as supervisord reports them.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The program's name within the group.
      type: str
    state:
      description: supervisord's state name (C(RUNNING), C(STOPPED), C(FATAL), ...).
      type: str
    pid:
      description: The process id, 0 when not running.
      type: int
    description:
      description: supervisord's one-line description (uptime, or why it stopped).
      type: str
    log:
      description: Path of the program's stdout log.
      type: str
  sample:
    - {name: dynamo-worker-0, state: RUNNING, pid: 4242, description: "pid 4242, uptime 0:00:05", log: /tmp/w0.log}
actions:
  description:
    - What was done, in order (V(stopped), V(cleared), V(wrote), V(wrote files), V(loaded), V(started), V(removed),
      V(deleted file), V(deleted files)).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.supervisor import (
    ProgramGroup,
    SupervisorDown,
    SupervisorError,
    clear,
    connect,
    read_file,
    summary,
    write_file,
)


def reconcile(module: AnsibleModule, group: ProgramGroup) -> dict:
    params = module.params
    state = params["state"]
    before = group.current_content()
    actions: list[str] = []
    result: dict = {"changed": False, "actions": actions}

    if state == "absent":
        try:
            loaded = bool(group.processes())
        except SupervisorDown:
            # No supervisord runs: nothing of the group runs either; only the file is left to remove.
            loaded = False
            result["msg"] = "supervisord is not running"
        leftovers = [p for p in params["clear_paths"] if os.path.lexists(p)]
        extra = [f["path"] for f in params["files"] if os.path.lexists(f["path"])]
        result["changed"] = loaded or before is not None or bool(leftovers) or bool(extra)
        result["diff"] = {"before": before or "", "after": ""}
        if not module.check_mode and result["changed"]:
            if loaded:
                group.remove()
                actions.append("removed")
            if before is not None:
                os.unlink(params["conf_file"])
                actions.append("deleted file")
            if clear(extra):
                actions.append("deleted files")
            if clear(leftovers):
                actions.append("cleared")
        result["programs"] = [] if not module.check_mode or not loaded else summary(group.processes())
        return result

    content = params["content"]
    file_changed = before != content
    others = [(f, read_file(f["path"])) for f in params["files"]]
    others_changed = [(f, old) for f, old in others if old != f["content"]]
    restart = state == "restarted"
    need_start = not group.all_running()
    result["changed"] = file_changed or bool(others_changed) or restart or need_start
    diff = {"before": before or "", "after": content,
            "before_header": params["conf_file"], "after_header": params["conf_file"]}
    result["diff"] = diff if not params["files"] else [diff] + [
        {"before": old or "", "after": f["content"], "before_header": f["path"], "after_header": f["path"]}
        for f, old in others_changed]
    if module.check_mode or not result["changed"]:
        result["programs"] = summary(group.processes())
        return result

    if file_changed or others_changed or restart:
        if group.stop():
            actions.append("stopped")
        if clear(params["clear_paths"]):
            actions.append("cleared")
    if file_changed:
        group.write(content)
        actions.append("wrote")
    if others_changed:
        for f, _old in others_changed:
            write_file(f["path"], f["content"], int(f["mode"], 8))
        actions.append("wrote files")
    if group.apply_files():
        actions.append("loaded")
    if group.start():
        actions.append("started")
    if params["wait_timeout"] > 0:
        result["programs"] = summary(group.wait_running(params["wait_timeout"], params["log_lines"]))
    else:
        result["programs"] = summary(group.processes())
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            config=dict(type="path", required=True),
            name=dict(type="str", required=True),
            conf_file=dict(type="path"),
            content=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "restarted", "absent"]),
            files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                content=dict(type="str", required=True),
                mode=dict(type="str", default="0644"),
            )),
            clear_paths=dict(type="list", elements="path", default=[]),
            wait_timeout=dict(type="int", default=60),
            log_lines=dict(type="int", default=20),
        ),
        required_if=[("state", "present", ("conf_file", "content")),
                     ("state", "restarted", ("conf_file", "content"))],
        supports_check_mode=True,
    )
    for extra in module.params["files"]:
        try:
            int(extra["mode"], 8)
        except ValueError:
            module.fail_json(msg=f"files: mode of {extra['path']} must be an octal string like 0644, got {extra['mode']!r}")
    try:
        try:
            rpc = connect(module.params["config"])
        except SupervisorDown:
            # Without its configuration no supervisord runs the group: absent needs none.
            if module.params["state"] != "absent":
                raise
            rpc = None
        group = ProgramGroup(rpc, module.params["name"], module.params["conf_file"])
        result = reconcile(module, group)
    except SupervisorError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
