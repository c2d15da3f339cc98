#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_vpc_info
short_description: Look up a DigitalOcean VPC by name
version_added: 0.1.0
description:
  - Read-only; never creates or changes anything.
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
  - do_solutions.gtc_demo.digitalocean.info
options:
  name:
    description: VPC name.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Find the demo's VPC
  do_solutions.gtc_demo.do_vpc_info:
    name: gtc-demo-dev-vpc
  register: vpc
"""

RETURN = r"""
exists:
  description: Whether the VPC exists.
  returned: always
  type: bool
vpc:
  description: The VPC as the API returns it; empty when it does not exist.
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

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.digitalocean import find_vpc, new_module, run


def lookup(module, client):
    vpc = find_vpc(client, module.params["name"])
    return dict(changed=False, exists=vpc is not None, vpc=vpc or {})


def main():
    module = new_module(dict(name=dict(type="str", required=True)))
    run(module, lookup)


if __name__ == "__main__":
    main()
