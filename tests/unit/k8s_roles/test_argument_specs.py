"""Each Stack 2 role's defaults and its argument spec (main entry point) list the same variables."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"


@pytest.mark.parametrize("role", ["cluster_config", "model_sync", "dynamo", "gateway"])
def test_defaults_and_argument_spec_agree(role):
    defaults = set(yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()))
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = set(specs["main"]["options"])
    assert defaults - options == set(), f"in defaults but not in argument_specs: {sorted(defaults - options)}"
    assert options - defaults == set(), f"in argument_specs but not in defaults: {sorted(options - defaults)}"
    assert specs["teardown"]["options"] == specs["main"]["options"]


@pytest.mark.parametrize("role", ["cluster_config", "gateway"])
def test_every_option_is_documented(role):
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    for name, option in specs["main"]["options"].items():
        assert option.get("description"), f"{role}: {name} has no description"
        assert option.get("type"), f"{role}: {name} has no type"
