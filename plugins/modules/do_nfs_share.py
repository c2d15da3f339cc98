#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: DigitalOcean Solutions Engineering
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: do_nfs_share
short_description: Create, grow or delete a DigitalOcean Network File Storage (NFS) share
version_added: 0.1.0
description:
  - Finds the share by O(name) in O(region) and makes it match the options.
  - A share can grow in place (a C(resize) action); it cannot shrink or move to another VPC, and asking for
    that fails with a clear message.
  - Returns the C(host) and C(mount_path) that clients mount once the share is active.
author: DigitalOcean Solutions Engineering (@do-solutions)
extends_documentation_fragment:
  - do_solutions.gtc_demo.digitalocean
  - do_solutions.gtc_demo.digitalocean.wait
options:
  name:
    description: Share name, unique in the region.
    type: str
    required: true
  region:
    description: Region slug.
    type: str
    required: true
  state:
    description: V(present) creates or grows; V(absent) deletes and, with O(wait), waits until it is gone.
    type: str
    choices: [present, absent]
    default: present
  size_gib:
    description: Size in GiB, at least 50. Required to create.
    type: int
  vpc_ids:
    description: UUIDs of the VPCs the share is reachable from. Required to create.
    type: list
    elements: str
  performance_tier:
    description: Performance tier, when the account offers more than one.
    type: str
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the managed fields before and after.
"""

EXAMPLES = r"""
- name: A share for the model weights
  do_solutions.gtc_demo.do_nfs_share:
    name: gtc-demo-dev-models
    region: ams3
    size_gib: 100
    vpc_ids: ["{{ vpc.vpc.id }}"]
  register: nfs
"""

RETURN = r"""
share:
  description: The share as the API returns it (with C(host) and C(mount_path) once active); empty after deletion
    or when a check-mode run would create it.
  returned: always
  type: dict
  sample: {"id": "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", "name": "gtc-demo-dev-models", "size_gib": 100,
           "status": "ACTIVE", "host": "10.120.0.2", "mount_path": "/123456/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"}
api_attempts:
  description: HTTP requests made, retries included.
  returned: always
  type: int
api_retries_used:
  description: Requests repeated after a 429, a 5xx or a dropped connection.
  returned: always
  type: int
"""

from ansible_collections.do_solutions.gtc_demo.plugins.module_utils.digitalocean import DOError, find_nfs, get_nfs, make_diff, new_module, run

MIN_SIZE_GIB = 50


def view(share):
    if not share:
        return {}
    return dict(name=share.get("name"), region=share.get("region"), size_gib=share.get("size_gib"),
                vpc_ids=sorted(share.get("vpc_ids") or []))


def wait_active(module, client, share_id, size):
    p = module.params

    def done(share):
        if share is None:
            raise DOError("NFS share {0} disappeared while waiting for it".format(p["name"]))
        if share.get("status") == "FAILED":
            raise DOError("NFS share {0} failed to provision".format(p["name"]))
        return share.get("status") == "ACTIVE" and share.get("size_gib") == size and bool(share.get("host"))

    return client.wait_for("NFS share {0} to be active with {1} GiB".format(p["name"], size),
                           lambda: get_nfs(client, share_id, p["region"]), done, p["wait_timeout"], p["poll_interval"])


def present(module, client):
    p = module.params
    if p["size_gib"] is not None and p["size_gib"] < MIN_SIZE_GIB:
        raise DOError("size_gib must be at least {0}, got {1}".format(MIN_SIZE_GIB, p["size_gib"]))
    share = find_nfs(client, p["name"], p["region"])
    if share is None:
        if p["size_gib"] is None or not p["vpc_ids"]:
            raise DOError("size_gib and vpc_ids are required to create NFS share {0}".format(p["name"]))
        body = dict(name=p["name"], region=p["region"], size_gib=p["size_gib"], vpc_ids=list(p["vpc_ids"]))
        if p["performance_tier"]:
            body["performance_tier"] = p["performance_tier"]
        after = dict(name=p["name"], region=p["region"], size_gib=p["size_gib"], vpc_ids=sorted(p["vpc_ids"]))
        if module.check_mode:
            return dict(changed=True, share={}, diff=make_diff({}, after))
        _status, created = client.call("create NFS share {0}".format(p["name"]), client.client.nfs.create, body=body)
        share = created["share"]
        if p["wait"]:
            share = wait_active(module, client, share["id"], p["size_gib"])
        return dict(changed=True, share=share, diff=make_diff({}, view(share)))

    have = view(share)
    if p["vpc_ids"] is not None and sorted(p["vpc_ids"]) != have["vpc_ids"]:
        raise DOError("NFS share {0} is attached to VPCs {1}, not {2}; this module does not move shares "
                      "between VPCs.".format(p["name"], have["vpc_ids"], sorted(p["vpc_ids"])))
    size = p["size_gib"]
    if size is None or size == have["size_gib"]:
        if p["wait"] and not module.check_mode and share.get("status") != "ACTIVE":
            share = wait_active(module, client, share["id"], have["size_gib"])
        return dict(changed=False, share=share)
    if size < have["size_gib"]:
        raise DOError("NFS share {0} has {1} GiB; a share cannot shrink to {2} GiB.".format(
            p["name"], have["size_gib"], size))
    after = dict(have, size_gib=size)
    if module.check_mode:
        return dict(changed=True, share=share, diff=make_diff(have, after))
    client.call("grow NFS share {0} to {1} GiB".format(p["name"], size), client.client.nfs.create_action,
                share["id"], body=dict(type="resize", region=p["region"], params=dict(size_gib=size)))
    if p["wait"]:
        share = wait_active(module, client, share["id"], size)
    else:
        share = get_nfs(client, share["id"], p["region"]) or share
    return dict(changed=True, share=share, diff=make_diff(have, view(share)))


def absent(module, client):
    p = module.params
    share = find_nfs(client, p["name"], p["region"])
    if share is None:
        return dict(changed=False, share={})
    if module.check_mode:
        return dict(changed=True, share={}, diff=make_diff(view(share), {}))
    client.call("delete NFS share {0}".format(p["name"]), client.client.nfs.delete, share["id"], region=p["region"])
    if p["wait"]:
        client.wait_for("NFS share {0} to be deleted".format(p["name"]),
                        lambda: get_nfs(client, share["id"], p["region"]), lambda s: s is None,
                        p["wait_timeout"], p["poll_interval"])
    return dict(changed=True, share={}, diff=make_diff(view(share), {}))


def main():
    module = new_module(dict(
        name=dict(type="str", required=True),
        region=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        size_gib=dict(type="int"),
        vpc_ids=dict(type="list", elements="str"),
        performance_tier=dict(type="str"),
    ), wait=True)
    run(module, present if module.params["state"] == "present" else absent)


if __name__ == "__main__":
    main()
