"""meta/runtime.yml: the action group of the DigitalOcean modules, and what it is for (module_defaults)."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml
from fake_do.server import FakeServer

from helpers import REPO, run_playbook

RUNTIME = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())


def test_the_digitalocean_group_is_exactly_the_do_modules() -> None:
    present = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("do_*.py"))
    assert present, "no do_* modules found"
    assert RUNTIME["action_groups"]["digitalocean"] == present
    assert list(RUNTIME["action_groups"]) == ["digitalocean"]


def test_requires_ansible_is_what_is_tested() -> None:
    pinned = [line.split("==")[1].split()[0] for line in (REPO / "requirements" / "demo.txt").read_text().splitlines()
              if line.startswith("ansible-core==")]
    assert pinned and pinned[0].startswith("2.19.")
    assert RUNTIME["requires_ansible"] == ">=2.19.0"


PLAYBOOK = """
- name: Without the group's defaults
  hosts: localhost
  gather_facts: false
  tasks:
    - name: No token, no endpoint
      do_solutions.gtc_demo.do_vpc_info:
        name: gtc-demo-dev-vpc
      ignore_errors: true

- name: With the group's defaults
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/do_solutions.gtc_demo.digitalocean:
      token: "{{ lookup('ansible.builtin.env', 'GROUP_TEST_TOKEN') }}"
      api_endpoint: "{{ lookup('ansible.builtin.env', 'GROUP_TEST_ENDPOINT') }}"
      api_retries: 0
  tasks:
    - name: The VPC, through the defaults
      do_solutions.gtc_demo.do_vpc_info:
        name: gtc-demo-dev-vpc
    - name: The cluster, through the same defaults
      do_solutions.gtc_demo.do_kubernetes_cluster_info:
        name: gtc-demo-dev
"""


def test_module_defaults_through_the_group_reach_every_do_module(tmp_path: Path, monkeypatch) -> None:
    for name in ("DIGITALOCEAN_ACCESS_TOKEN", "DIGITALOCEAN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    server = FakeServer("group-token").start()
    try:
        playbook = tmp_path / "group.yml"
        playbook.write_text(PLAYBOOK)
        inventory = tmp_path / "hosts"
        inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
        run = run_playbook(str(playbook), inventory=str(inventory), json_output=True, timeout=300,
                           env={"GROUP_TEST_TOKEN": "group-token", "GROUP_TEST_ENDPOINT": server.url})
        tasks = {t.name: t for t in run.tasks()}
        assert run.returncode == 0, run.output[-3000:]
        bare = tasks["No token, no endpoint"]
        assert bare.failed and "No DigitalOcean API token" in bare.result["msg"]
        for name in ("The VPC, through the defaults", "The cluster, through the same defaults"):
            assert not tasks[name].failed and tasks[name].result["api_attempts"] == 1, tasks[name].result
        # Both reached the fake (the endpoint came from the defaults) with the group's token (it accepts only it).
        assert [(e["method"], e["path"], e["status"]) for e in server.fake.log] == [
            ("GET", "/v2/vpcs", 200), ("GET", "/v2/kubernetes/clusters", 200)]
    finally:
        server.stop()
