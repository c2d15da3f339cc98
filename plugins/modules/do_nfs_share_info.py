#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_nfs_share_info
short_description: Look up a DigitalOcean NFS share by name and region
version_added: 0.1.0
description:
  - Read-only; never creates or changes anything.
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
  - do_solutions.gtc_demo.digitalocean.info
options:
  name:
    description: Share name.
    type: str
    required: true
  region:
    description: Region slug.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Find the demo's model share
  do_solutions.gtc_demo.do_nfs_share_info:
    name: gtc-demo-dev-models
    region: ams3
  register: nfs
"""

RETURN = r"""
exists:
  description: Whether the share exists.
  returned: always
  type: bool
share:
  description: The share as the API returns it (C(host) and C(mount_path) once active); empty when it does not exist.
  returned: always
  type: dict
api_attempts:
  description: HTTP requests made, retries included.
  returned: always
  type: int
api_retries_used:
  description: Requests repeated after a 429, a 5xx or a dropped connection.
  returned: always
  type: int
"""

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.digitalocean import find_nfs, new_module, run


def lookup(module, client):
    share = find_nfs(client, module.params["name"], module.params["region"])
    return dict(changed=False, exists=share is not None, share=share or {})


def main():
    module = new_module(dict(name=dict(type="str", required=True), region=dict(type="str", required=True)))
    run(module, lookup)


if __name__ == "__main__":
    main()
