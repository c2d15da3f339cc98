"""Every role keeps its contract: argument specs in step with defaults, a
README, prefixed variables, and site.yml tags each role with its own name."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import REPO

ROLES = ["infra", "cluster_config", "model_sync", "dynamo", "loadgen", "gateway"]


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_match_defaults(role: str) -> None:
    defaults = _yaml(REPO / "roles" / role / "defaults" / "main.yml") or {}
    specs = _yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    options = specs["main"]["options"]
    assert set(defaults) == set(options), (
        f"only in defaults: {sorted(set(defaults) - set(options))}; "
        f"only in argument_specs: {sorted(set(options) - set(defaults))}"
    )
    for name, spec in options.items():
        assert spec.get("description"), f"{role}: {name} has no description"
        assert "type" in spec, f"{role}: {name} has no type"


@pytest.mark.parametrize("role", ROLES)
def test_role_variables_are_prefixed(role: str) -> None:
    defaults = _yaml(REPO / "roles" / role / "defaults" / "main.yml") or {}
    assert all(k.startswith(f"{role}_") for k in defaults), sorted(defaults)


@pytest.mark.parametrize("role", ROLES)
def test_role_has_readme_and_platform_tasks(role: str) -> None:
    base = REPO / "roles" / role
    readme = (base / "README.md").read_text()
    assert f"do_solutions.gtc_demo.{role}" in readme
    for platform in ("local", "doks", "kind"):
        assert (base / "tasks" / f"{platform}.yml").is_file(), f"{role} lacks tasks/{platform}.yml"
        assert (base / "tasks" / f"teardown_{platform}.yml").is_file(), f"{role} lacks teardown_{platform}.yml"


def test_site_chains_the_roles_in_order_with_their_tags() -> None:
    plays = _yaml(REPO / "site.yml")
    chain = [(r["role"], r["tags"]) for play in plays for r in play.get("roles", [])]
    assert [name for name, _tags in chain] == [f"do_solutions.gtc_demo.{r}" for r in ROLES]
    for name, tags in chain:
        assert tags == [name.rsplit(".", 1)[1]]


def test_site_checks_every_role_before_changing_anything() -> None:
    preflight = _yaml(REPO / "site.yml")[0]
    assert preflight["tags"] == ["always"]
    checked = preflight["tasks"][0]["loop"]
    assert checked == ROLES


def test_teardown_goes_in_reverse_order() -> None:
    plays = _yaml(REPO / "playbooks" / "teardown.yml")
    stack2 = next(t for t in plays[0]["tasks"] if "loop" in t)["loop"]
    assert stack2 + ["infra"] == list(reversed(ROLES))


@pytest.mark.parametrize("env", ["local", "dev", "prod", "kind"])
def test_inventories_fit_their_gpus(env: str) -> None:
    data = _yaml(REPO / "inventories" / env / "group_vars" / "all.yml")
    gpus = data["gtc_demo_gpus_per_node"] * data["gtc_demo_gpu_node_count"]
    assert data["dynamo_replicas"] * data["dynamo_tensor_parallel_size"] <= gpus
    assert data["gtc_demo_platform"] in {"local", "doks", "kind"}


def test_environments_match_the_brief() -> None:
    dev = _yaml(REPO / "inventories/dev/group_vars/all.yml")
    prod = _yaml(REPO / "inventories/prod/group_vars/all.yml")
    assert (dev["gtc_demo_gpu_node_size"], dev["infra_region"]) == ("gpu-h100x8-640gb", "ams3")
    assert (prod["gtc_demo_gpu_node_size"], prod["infra_region"]) == ("gpu-h200x8-1128gb-contracted", "atl1")
    assert dev["gtc_demo_hostname"] == "gtc-2026-dev.digitalocean.solutions"
    assert prod["gtc_demo_hostname"] == "gtc-2026.digitalocean.solutions"
    for env in (dev, prod):
        assert (env["dynamo_replicas"], env["dynamo_tensor_parallel_size"]) == (2, 4)
