#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_domain_info
short_description: Look up a DNS zone (domain) in a DigitalOcean account
version_added: 0.1.0
description:
  - Read-only; never creates or changes anything (C(GET /v2/domains/{domain_name})).
  - Meant for a preflight check that the zone external-dns and cert-manager's DNS-01 solver write into is
    managed by DigitalOcean DNS in this account, before anything is bought.
  - A zone that does not exist is not an error; RV(exists) is then false.
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
  - do_solutions.gtc_demo.digitalocean.info
options:
  name:
    description: The zone, for example C(digitalocean.solutions).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Look up the demo's DNS zone
  do_solutions.gtc_demo.do_domain_info:
    name: digitalocean.solutions
  register: zone

- name: Refuse a zone DigitalOcean does not serve
  ansible.builtin.assert:
    that: zone.exists
    fail_msg: "The DNS zone digitalocean.solutions is not in this DigitalOcean account"
"""

RETURN = r"""
exists:
  description: Whether the zone is in the account.
  returned: always
  type: bool
domain:
  description: The domain as the API returns it (C(name), C(ttl), C(zone_file)); empty when it does not exist.
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

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.digitalocean import new_module, run


def lookup(module, client):
    name = module.params["name"].strip().rstrip(".").lower()
    status, body = client.call("read the DNS zone {0}".format(name), client.client.domains.get, name)
    if status == 404 or not isinstance(body, dict):
        return dict(changed=False, exists=False, domain={})
    return dict(changed=False, exists=True, domain=body.get("domain") or {})


def main():
    module = new_module(dict(name=dict(type="str", required=True)))
    run(module, lookup)


if __name__ == "__main__":
    main()
