"""site.yml's preflight refuses inputs of the wrong type through the argument
specs (the shared ones in roles/_common, each role's on its validate entry point)
before any role changes anything."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run_playbook


@pytest.mark.parametrize(("extra", "role", "message"), [
    ({"dynamo_replicas": "four"}, "do_solutions.gtc_demo.dynamo", "dynamo_replicas"),
    ({"dynamo_tensor_parallel_size": 3}, "do_solutions.gtc_demo.dynamo", "dynamo_tensor_parallel_size"),
    ({"gtc_demo_platform": "cloud"}, "do_solutions.gtc_demo._common", "gtc_demo_platform must be one of: local, doks, kind"),
    ({"gtc_demo_frontends": ["kv", "round_robin"]}, "do_solutions.gtc_demo._common", "gtc_demo_frontends"),
    ({"loadgen_local_port": "http"}, "do_solutions.gtc_demo.loadgen", "loadgen_local_port"),
])
def test_preflight_refuses_a_wrong_type_before_any_change(tmp_path: Path, extra: dict, role: str, message: str) -> None:
    home = tmp_path / "home"
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    run = run_playbook("site.yml", "-e", f"@{vars_file}", env={"GTC_DEMO_HOME": str(home)}, json_output=True)
    assert run.returncode != 0
    failed = run.failed_tasks()
    assert len(failed) == 1, [(t.role, t.name) for t in failed]
    assert (failed[0].role, failed[0].action) == (role, "ansible.builtin.validate_argument_spec")
    assert message in failed[0].result["msg"]
    # Nothing ran but checks: no task changed anything, and the local root was not even made.
    assert not [t for t in run.tasks() if t.changed]
    assert not home.exists()


def test_preflight_names_the_frontend_at_fault(tmp_path: Path) -> None:
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({"gtc_demo_frontends": {
        "kv": {"router_mode": "kv", "local_port": 8000},
        "rr": {"router_mode": "round-robin", "local_port": 8000}}}))
    run = run_playbook("site.yml", "-e", f"@{vars_file}", env={"GTC_DEMO_HOME": str(tmp_path / "home")}, json_output=True)
    assert run.returncode != 0
    failed = run.failed_tasks()
    assert [t.role for t in failed] == ["do_solutions.gtc_demo._common"]
    assert "gtc_demo_frontends: kv and rr have the same local_port 8000" in failed[0].result["msg"]
    assert not (tmp_path / "home").exists()


def test_the_example_inventory_is_refused_until_its_placeholders_are_set(tmp_path: Path) -> None:
    """inventories/example is for copying: site.yml names every CHANGE-ME left, before anything changes."""
    home = tmp_path / "home"
    run = run_playbook("site.yml", inventory="inventories/example", env={"GTC_DEMO_HOME": str(home)}, json_output=True)
    assert run.returncode != 0
    (failed,) = run.failed_tasks()
    assert failed.role == "do_solutions.gtc_demo._common", failed
    assert failed.result["msg"].startswith(
        "gtc_demo_environment, gtc_demo_hostname, gtc_demo_image_registry, infra_region, model_sync_k8s_spaces_bucket "
        "still hold a CHANGE-ME placeholder"), failed.result["msg"]
    assert not [t for t in run.tasks() if t.changed]
    assert not home.exists()


def test_the_example_inventory_with_its_placeholders_set_passes_the_preflight(tmp_path: Path) -> None:
    """The same inventory, every CHANGE-ME replaced, gets past _common's checks into the roles' own."""
    values = {"gtc_demo_environment": "acme", "gtc_demo_hostname": "gtc.acme.example.com",
              "gtc_demo_image_registry": "registry.digitalocean.com/acme", "infra_region": "nyc2",
              "model_sync_k8s_spaces_bucket": "acme-models"}
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(values))
    run = run_playbook("site.yml", "-e", f"@{vars_file}", "--tags", "never", inventory="inventories/example",
                       env={"GTC_DEMO_HOME": str(tmp_path / "home")}, json_output=True)
    checks = [t for t in run.tasks() if t.name == "Check that no inventory value is still a placeholder"]
    assert checks and not [t for t in checks if t.failed or t.skipped], run.output[-3000:]
    assert not [t for t in run.failed_tasks() if t.role == "do_solutions.gtc_demo._common"], run.output[-3000:]
