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
      - The diff shows the program file before and after.
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
      - V(absent) stops the group, unloads it and removes O(conf_file).
    type: str
    choices: [present, restarted, absent]
    default: present
  clear_paths:
    description:
      - Files or folders removed while the group is stopped, before it starts again after a
        change or a restart (for example a discovery folder whose entries would point at
        processes that are gone).
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
    config: "{{ infra__output.supervisor.config }}"
    name: dynamo
    conf_file: "{{ infra__output.supervisor.conf_dir }}/dynamo.conf"
    content: "{{ lookup('ansible.builtin.template', 'supervisor-dynamo.conf.j2') }}"
    clear_paths:
      - "{{ infra__output.local_root }}/dynamo/discovery"
    wait_timeout: 120

- name: Restart the load generator after its code changed
  do_solutions.gtc_demo.supervisor_programs:
    config: "{{ infra__output.supervisor.config }}"
    name: loadgen
    conf_file: "{{ infra__output.supervisor.conf_dir }}/loadgen.conf"
    content: "{{ lookup('ansible.builtin.template', 'supervisor-loadgen.conf.j2') }}"
    state: restarted

- name: Remove the graph
  do_solutions.gtc_demo.supervisor_programs:
    config: "{{ infra__output.supervisor.config }}"
    name: dynamo
    conf_file: "{{ infra__output.supervisor.conf_dir }}/dynamo.conf"
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
  description: What was done, in order (V(stopped), V(cleared), V(wrote), V(loaded), V(started), V(removed), V(deleted file)).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.supervisor import (
    ProgramGroup, SupervisorError, clear, connect, summary)


def reconcile(module: AnsibleModule, group: ProgramGroup) -> dict:
    params = module.params
    state = params["state"]
    before = group.current_content()
    actions: list[str] = []
    result: dict = {"changed": False, "actions": actions}

    if state == "absent":
        loaded = bool(group.processes())
        result["changed"] = loaded or before is not None
        result["diff"] = {"before": before or "", "after": ""}
        if not module.check_mode and result["changed"]:
            if loaded:
                group.remove()
                actions.append("removed")
            if before is not None:
                os.unlink(params["conf_file"])
                actions.append("deleted file")
        result["programs"] = [] if not module.check_mode else summary(group.processes())
        return result

    content = params["content"]
    file_changed = before != content
    restart = state == "restarted"
    need_start = not group.all_running()
    result["changed"] = file_changed or restart or need_start
    result["diff"] = {"before": before or "", "after": content,
                      "before_header": params["conf_file"], "after_header": params["conf_file"]}
    if module.check_mode or not result["changed"]:
        result["programs"] = summary(group.processes())
        return result

    if file_changed or restart:
        if group.stop():
            actions.append("stopped")
        if clear(params["clear_paths"]):
            actions.append("cleared")
    if file_changed:
        group.write(content)
        actions.append("wrote")
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
            clear_paths=dict(type="list", elements="path", default=[]),
            wait_timeout=dict(type="int", default=60),
            log_lines=dict(type="int", default=20),
        ),
        required_if=[("state", "present", ("conf_file", "content")),
                     ("state", "restarted", ("conf_file", "content"))],
        supports_check_mode=True,
    )
    try:
        group = ProgramGroup(connect(module.params["config"]), module.params["name"], module.params["conf_file"])
        result = reconcile(module, group)
    except SupervisorError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
