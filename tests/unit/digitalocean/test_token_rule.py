"""One rule for the DigitalOcean API token everywhere (issue 12, defect 13).

DIGITALOCEAN_ACCESS_TOKEN, else DIGITALOCEAN_TOKEN, the first set and not
empty (plugins/module_utils/digitalocean.py, TOKEN_ENV). The modules apply it
through their option fallback (test_module_utils.py); these tests hold the
roles and playbooks that read the token themselves to the same rule.
"""
from __future__ import annotations

import re

import yaml

from helpers import REPO
from ansible_collections.do_solutions.gtc_demo.plugins.module_utils import digitalocean as do


def test_images_playbook_reads_the_token_by_the_rule() -> None:
    (play,) = yaml.safe_load((REPO / "playbooks" / "images.yml").read_text())
    assert play["vars"]["images_token_env"] == do.TOKEN_ENV


def test_cluster_config_secrets_fall_back_by_the_rule() -> None:
    defaults = yaml.safe_load((REPO / "roles" / "cluster_config" / "defaults" / "main.yml").read_text())
    first, second = do.TOKEN_ENV
    uses = [s for s in defaults["cluster_config_secrets"] if first in s["data"].values()]
    assert uses, "cluster_config makes no secret from the DigitalOcean token"
    assert defaults["cluster_config_env_fallbacks"].get(first) == [second]


def test_infra_checks_the_token_by_the_rule() -> None:
    """infra's preflight (validate, which includes its doks checks) asks for the token by the rule."""
    validate = (REPO / "roles" / "infra" / "tasks" / "validate.yml").read_text()
    assert "_validate_doks.yml" in validate
    text = (REPO / "roles" / "infra" / "tasks" / "_validate_doks.yml").read_text()
    assert re.search(r"query\('ansible\.builtin\.env', 'DIGITALOCEAN_ACCESS_TOKEN', 'DIGITALOCEAN_TOKEN'", text)


def test_no_other_token_name_is_read() -> None:
    """No role, playbook or plugin reads a DigitalOcean token under another name."""
    names = re.compile(r"\b(DO_API_TOKEN|DO_API_KEY|DO_OAUTH_TOKEN|OAUTH_TOKEN)\b")
    for folder in ("roles", "playbooks", "plugins"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".yml", ".yaml", ".py", ".j2") and path.is_file():
                assert not names.search(path.read_text()), f"{path} reads another token name"
