"""Running playbooks/images.yml against the test's engine and registry."""
from __future__ import annotations

import json

from helpers import PlaybookRun, run_playbook

# The registry's path under its host, like DigitalOcean's registry name (gtc_demo_image_registry).
REGISTRY_PATH = "gtc-demo"


def images_playbook(docker_engine, image_registry, token: str, *extra: str) -> PlaybookRun:
    env = {**docker_engine.env(), "DIGITALOCEAN_ACCESS_TOKEN": token, "DIGITALOCEAN_TOKEN": ""}
    variables = {"gtc_demo_image_registry": image_registry.prefix, "images_build_network": "host"}
    return run_playbook("playbooks/images.yml", "-e", json.dumps(variables), *extra, env=env, json_output=True,
                        timeout=900)
