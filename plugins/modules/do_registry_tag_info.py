#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_registry_tag_info
short_description: Look up an image tag in the DigitalOcean Container Registry
version_added: 0.1.0
description:
  - Read-only; never pushes, deletes or changes anything.
  - Lists the tags of one repository of a DigitalOcean Container Registry
    (C(GET /v2/registries/{registry_name}/repositories/{repository_name}/tags), all pages) and says whether
    O(tag) is among them. Meant for a preflight check that the image a deploy names was pushed.
  - A registry or repository that does not exist is not an error; RV(exists) is then false.
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
  - do_solutions.gtc_demo.digitalocean.info
options:
  repository:
    description:
      - The image repository, as in an image reference without its tag, for example
        C(registry.digitalocean.com/my-registry/my/app); the host may be left out (C(my-registry/my/app)).
      - The first path segment is the registry's name, the rest the repository's (it may hold C(/)).
    type: str
    required: true
  tag:
    description: The tag to look for.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check the load generator's image was pushed
  do_solutions.gtc_demo.do_registry_tag_info:
    repository: registry.digitalocean.com/do-solutions-sfo3/gtc-demo-loadgen
    tag: 20260301-abc1234
  register: image

- name: Refuse to deploy an image that is not there
  ansible.builtin.assert:
    that: image.exists
    fail_msg: "{{ image.image }} is not in the registry; run playbooks/images.yml first"
"""

RETURN = r"""
exists:
  description: Whether the tag is in the repository.
  returned: always
  type: bool
image:
  description: The image reference looked up, C(registry.digitalocean.com/<registry>/<repository>:<tag>).
  returned: always
  type: str
registry_name:
  description: The registry's name.
  returned: always
  type: str
repository_name:
  description: The repository's name inside the registry.
  returned: always
  type: str
tag:
  description: The tag as the API returns it (C(manifest_digest), C(updated_at), sizes); empty when absent.
  returned: always
  type: dict
tags:
  description: Every tag of the repository (empty when the repository does not exist).
  returned: always
  type: list
  elements: str
api_attempts:
  description: HTTP requests made, retries included.
  returned: always
  type: int
api_retries_used:
  description: Requests repeated after a 429, a 5xx or a dropped connection.
  returned: always
  type: int
"""

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.digitalocean import DOError, new_module, parse_registry_repository, run


def lookup(module, client):
    try:
        registry, repository = parse_registry_repository(module.params["repository"])
    except ValueError as exc:
        raise DOError(str(exc)) from exc
    tag = module.params["tag"]
    # pydo URL-encodes the path parameters, so a '/' in the repository name becomes %2F as the API asks.
    tags = client.list_all("list the tags of {0}/{1}".format(registry, repository),
                           client.client.registries.list_repository_tags, "tags",
                           registry_name=registry, repository_name=repository)
    found = [t for t in tags if t.get("tag") == tag]
    return dict(changed=False, exists=bool(found), tag=found[0] if found else {},
                tags=sorted(t.get("tag") for t in tags if t.get("tag")),
                registry_name=registry, repository_name=repository,
                image="registry.digitalocean.com/{0}/{1}:{2}".format(registry, repository, tag))


def main():
    module = new_module(dict(repository=dict(type="str", required=True), tag=dict(type="str", required=True)))
    run(module, lookup)


if __name__ == "__main__":
    main()
