#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_vpc
short_description: Create, update or delete a DigitalOcean VPC
version_added: 0.1.0
description:
  - Finds the VPC by O(name) and makes it match the options.
  - The description can change in place; region and IP range cannot, so a difference there fails with a clear message.
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
options:
  name:
    description: VPC name; letters, digits, dashes and dots. Unique in the account.
    type: str
    required: true
  state:
    description: V(present) creates or updates; V(absent) deletes.
    type: str
    choices: [present, absent]
    default: present
  region:
    description: Region slug. Required to create.
    type: str
  ip_range:
    description: CIDR of the VPC (between /28 and /16, RFC1918). DigitalOcean picks a /20 when not given.
    type: str
  description:
    description: Free text, up to 255 characters.
    type: str
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the VPC's fields before and after.
"""

EXAMPLES = r"""
- name: A VPC for the demo
  do_solutions.gtc_demo.do_vpc:
    name: gtc-demo-dev-vpc
    region: ams3
    ip_range: 10.120.0.0/20
"""

RETURN = r"""
vpc:
  description: The VPC as the API returns it; empty after deletion or when a check-mode run would create it.
  returned: always
  type: dict
  sample: {"id": "5a4981aa-9653-4bd1-bef5-d6bff52042e4", "name": "gtc-demo-dev-vpc", "region": "ams3", "ip_range": "10.120.0.0/20"}
api_attempts:
  description: HTTP requests made, retries included.
  returned: always
  type: int
api_retries_used:
  description: Requests repeated after a 429, a 5xx or a dropped connection.
  returned: always
  type: int
"""

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.digitalocean import DOError, diff_fields, find_vpc, make_diff, new_module, run

FIELDS = ("name", "region", "ip_range", "description")


def view(vpc):
    return dict((k, vpc.get(k)) for k in FIELDS) if vpc else {}


def present(module, client):
    p = module.params
    vpc = find_vpc(client, p["name"])
    if vpc is None:
        if not p["region"]:
            raise DOError("region is required to create VPC {0}".format(p["name"]))
        after = dict(name=p["name"], region=p["region"], ip_range=p["ip_range"], description=p["description"] or "")
        if module.check_mode:
            return dict(changed=True, vpc={}, diff=make_diff({}, after))
        body = dict((k, v) for k, v in after.items() if v)
        _status, created = client.call("create VPC {0}".format(p["name"]), client.client.vpcs.create, body=body)
        vpc = created["vpc"]
        return dict(changed=True, vpc=vpc, diff=make_diff({}, view(vpc)))

    for fixed in ("region", "ip_range"):
        if p[fixed] and vpc.get(fixed) != p[fixed]:
            raise DOError("VPC {0} exists with {1}={2}, but {3} was asked for; a VPC's {1} cannot change. "
                          "Delete the VPC or pick another name.".format(p["name"], fixed, vpc.get(fixed), p[fixed]))
    changes = diff_fields(dict(description=p["description"]), vpc)
    if not changes:
        return dict(changed=False, vpc=vpc)
    before = view(vpc)
    after = dict(before, **dict((k, v[1]) for k, v in changes.items()))
    if not module.check_mode:
        _status, patched = client.call("update VPC {0}".format(p["name"]), client.client.vpcs.patch, vpc["id"],
                                       body=dict((k, v[1]) for k, v in changes.items()))
        vpc = patched["vpc"]
    return dict(changed=True, vpc=vpc, diff=make_diff(before, after))


def absent(module, client):
    vpc = find_vpc(client, module.params["name"])
    if vpc is None:
        return dict(changed=False, vpc={})
    if not module.check_mode:
        client.call("delete VPC {0}".format(vpc["name"]), client.client.vpcs.delete, vpc["id"])
    return dict(changed=True, vpc={}, diff=make_diff(view(vpc), {}))


def main():
    module = new_module(dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        region=dict(type="str"),
        ip_range=dict(type="str"),
        description=dict(type="str"),
    ))
    run(module, present if module.params["state"] == "present" else absent)


if __name__ == "__main__":
    main()
